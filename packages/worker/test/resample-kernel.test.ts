import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { decodeImage, type RgbImage, toModelInput } from "../src/index.js";
import { resizeLanczos3 } from "../src/resample-kernel.js";

/** Pixels no resampler can flatter: uniform noise, seeded. */
function noise(width: number, height: number, seed: number): RgbImage {
  const data = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height };
}

/** What the worker asked sharp for before this kernel, and still asks where the kernel declines. */
function sharpResize(image: RgbImage, width: number, height: number): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: "fill", kernel: "lanczos3" })
    .raw()
    .toBuffer();
}

/** How many lengths from `out` to 1024 the kernel resizes to `out`, each checked against sharp. */
async function sweep(out: number): Promise<{ resized: number; declined: number; differing: string[] }> {
  let resized = 0;
  let declined = 0;
  const differing: string[] = [];
  for (let length = out; length <= 1024; length++) {
    for (const [w, h, ow, oh] of [
      [length, 2, out, 2],
      [3, length, 3, out],
    ] as const) {
      const image = noise(w, h, length);
      const ours = resizeLanczos3(image, ow, oh);
      if (!ours) {
        declined++;
        continue;
      }
      resized++;
      if (!ours.equals(await sharpResize(image, ow, oh))) differing.push(`${w}×${h} → ${ow}×${oh}`);
    }
  }
  return { resized, declined, differing };
}

describe("the model input's Lanczos 3 resize in WebAssembly", () => {
  it("gives sharp's bytes for every width and every height from 224 to 1024 resized to 224", async () => {
    const { resized, declined, differing } = await sweep(224);
    expect(differing).toEqual([]);
    // It declines only the odd lengths of 896 and more (a 2:1 box shrink of an odd length).
    expect(declined).toBe(2 * 64);
    expect(resized).toBe(2 * 801 - 128);
  });

  it("gives sharp's bytes for ResMem's stretch to 256 wherever it resizes", async () => {
    const { resized, differing } = await sweep(256);
    expect(differing).toEqual([]);
    expect(resized).toBeGreaterThan(1300);
  });

  it("gives sharp's bytes for decoded photographs of the common shapes, to 224 and to 256", async () => {
    for (const [width, height] of [
      [640, 480],
      [480, 640],
      [1024, 768],
      [768, 1024],
      [1024, 1024],
      [1000, 904],
      [1024, 683],
      [304, 264],
    ] as const) {
      const image = await decodeImage(await makePhoto(width, height, width + height), 1024, {
        maxPixels: 1e8,
      });
      for (const side of [224, 256]) {
        const ours = resizeLanczos3(image, side, side);
        expect(ours, `${width}×${height} → ${side}`).toBeDefined();
        expect(ours?.equals(await sharpResize(image, side, side)), `${width}×${height} → ${side}`).toBe(true);
      }
    }
  });

  it("declines what it does not reproduce: upsizing, odd lengths past 4:1, phase-boundary sizes", () => {
    expect(resizeLanczos3(noise(200, 300, 1), 224, 224)).toBeUndefined();
    expect(resizeLanczos3(noise(897, 300, 1), 224, 224)).toBeUndefined();
    expect(resizeLanczos3(noise(300, 1023, 1), 224, 224)).toBeUndefined();
    // 260 is 4 modulo 8: some output of 256 falls exactly between two of libvips' 64 phases.
    expect(resizeLanczos3(noise(260, 300, 1), 256, 256)).toBeUndefined();
    expect(resizeLanczos3(noise(224, 224, 1), 224, 224)?.equals(noise(224, 224, 1).data)).toBe(true);
  });

  it("leaves the model's input as it was: stretched, stretched and cropped, or declined to sharp", async () => {
    for (const [width, height] of [
      [640, 480],
      [897, 600],
      [260, 300],
    ] as const) {
      const image = noise(width, height, 7);
      for (const resize of [{ kind: "stretch" }, { kind: "stretch-crop", resizeSize: 256 }] as const) {
        const stretchTo = resize.kind === "stretch" ? 227 : resize.resizeSize;
        let expected = sharp(image.data, { raw: { width, height, channels: 3 } }).resize(
          stretchTo,
          stretchTo,
          {
            fit: "fill",
            kernel: "lanczos3",
          },
        );
        if (stretchTo !== 227) expected = expected.extract({ left: 14, top: 14, width: 227, height: 227 });
        const got = await toModelInput(image, { inputSize: 227, resize, resizeKernel: "lanczos3" });
        expect(got.equals(await expected.raw().toBuffer()), `${width}×${height}, ${resize.kind}`).toBe(true);
      }
    }
  });
});
