import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeToModelRgb, inspectImage, rgbToTensor } from "../src/index.js";

describe("preprocessing", () => {
  it("resizes to the model input without cropping: both halves of a wide image survive", async () => {
    // Left half red, right half blue, 400×100: a centre crop would lose most of both colours.
    const wide = Buffer.alloc(400 * 100 * 3);
    for (let i = 0; i < 400 * 100; i++) {
      const left = i % 400 < 200;
      wide[i * 3] = left ? 255 : 0;
      wide[i * 3 + 2] = left ? 0 : 255;
    }
    const png = await sharp(wide, { raw: { width: 400, height: 100, channels: 3 } })
      .png()
      .toBuffer();
    const rgb = await decodeToModelRgb(png, 224, { maxPixels: 1e8 });
    expect(rgb.length).toBe(224 * 224 * 3);
    const at = (x: number, y: number) => Array.from(rgb.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    expect(at(10, 10)).toEqual([255, 0, 0]);
    expect(at(213, 213)).toEqual([0, 0, 255]);
  });

  it("normalises per the metadata into CHW order", () => {
    const rgb = new Uint8Array(2 * 2 * 3);
    rgb.set([255, 0, 51], 0); // first pixel R, G, B
    const t = rgbToTensor(rgb, { inputSize: 2, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(t[0]).toBeCloseTo(1, 6); // R plane, pixel 0
    expect(t[4]).toBeCloseTo(-1, 6); // G plane, pixel 0
    expect(t[8]).toBeCloseTo(51 / 127.5 - 1, 6); // B plane, pixel 0
    expect(t[1]).toBeCloseTo(-1, 6); // R plane, pixel 1 (black)
  });

  it("reports orientation-corrected dimensions and refuses oversized headers before decoding", async () => {
    const portrait = await sharp({ create: { width: 300, height: 200, channels: 3, background: "#123456" } })
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    expect(await inspectImage(portrait, { maxPixels: 1e8 })).toMatchObject({
      width: 200,
      height: 300,
      format: "jpeg",
    });
    await expect(inspectImage(portrait, { maxPixels: 1000 })).rejects.toMatchObject({ reason: "too_large" });
  });
});
