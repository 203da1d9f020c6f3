import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { DECODE_MAX_SIDE, inspectImage, prepareImage, rgbToTensor } from "../src/index.js";

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
    const { rgb } = await prepareImage(png, { inputSize: 224 }, { maxPixels: 1e8 });
    expect(rgb.length).toBe(224 * 224 * 3);
    const at = (x: number, y: number) => Array.from(rgb.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    expect(at(10, 10)).toEqual([255, 0, 0]);
    expect(at(213, 213)).toEqual([0, 0, 255]);
  });

  it("resizes to the model input with Lanczos 3: the bytes of a lanczos3 resize, not of any other kernel", async () => {
    // Vertical stripes of 64 and 192, 5 px wide, 500×300: every kernel gives other bytes here.
    const stripes = Buffer.alloc(500 * 300 * 3);
    for (let i = 0; i < 500 * 300; i++)
      stripes.fill(Math.floor((i % 500) / 5) % 2 ? 192 : 64, i * 3, i * 3 + 3);
    const raw = { raw: { width: 500, height: 300, channels: 3 as const } };
    const png = await sharp(stripes, raw).png().toBuffer();
    const { rgb } = await prepareImage(png, { inputSize: 224 }, { maxPixels: 1e8 });
    type Kernel = "nearest" | "linear" | "cubic" | "mitchell" | "lanczos2" | "lanczos3";
    const resized = async (kernel: Kernel) =>
      sharp(stripes, raw).resize(224, 224, { fit: "fill", kernel }).raw().toBuffer();
    expect(rgb.equals(await resized("lanczos3"))).toBe(true);
    for (const other of ["nearest", "linear", "cubic", "mitchell", "lanczos2"] as const) {
      expect(rgb.equals(await resized(other)), other).toBe(false);
    }
    // Lanczos' hallmark, independent of sharp: its negative lobes ring past the input's range at
    // an edge, where a linear filter stays inside it.
    const range = (bytes: Uint8Array) =>
      bytes.reduce<[number, number]>(([lo, hi], v) => [Math.min(lo, v), Math.max(hi, v)], [255, 0]);
    const [lo, hi] = range(rgb);
    expect(lo < 64 || hi > 192, `lanczos3 range ${lo}..${hi}`).toBe(true);
    expect(range(await resized("linear"))).toEqual([64, 192]);
  });

  it("flattens transparency over white, for the model and the heatmap alike", async () => {
    // Left half: transparent black; right half: red at half opacity (alpha 128).
    const rgba = Buffer.alloc(64 * 64 * 4);
    for (let i = 0; i < 64 * 64; i++) if (i % 64 >= 32) rgba.set([255, 0, 0, 128], i * 4);
    const png = await sharp(rgba, { raw: { width: 64, height: 64, channels: 4 } })
      .png()
      .toBuffer();
    const prepared = await prepareImage(png, { inputSize: 224 }, { maxPixels: 1e8 });
    const pixel = (data: Uint8Array, width: number, x: number, y: number) =>
      Array.from(data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
    // Red over white at alpha 128/255: red stays 255, green and blue are white's 255 × 127/255.
    const halfRed = [255, 127, 127].map((v) => expect.closeTo(v, -0.5)); // within ±1 of rounding
    expect(pixel(prepared.rgb, 224, 20, 100)).toEqual([255, 255, 255]);
    expect(pixel(prepared.rgb, 224, 200, 100)).toEqual(halfRed);
    expect([prepared.heatmapBase.width, prepared.heatmapBase.height]).toEqual([64, 64]);
    expect(pixel(prepared.heatmapBase.data, 64, 5, 30)).toEqual([255, 255, 255]);
    expect(pixel(prepared.heatmapBase.data, 64, 60, 30)).toEqual(halfRed);
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

  it("normalises bit for bit as the written-out definition: float64 multiply-add, then float32", () => {
    // The definition rgbToTensor documents (and model/preprocess.py repeats), one value at a time.
    const reference = (rgb: Uint8Array, size: number, mean: number[], std: number[]) => {
      const out = new Float32Array(3 * size * size);
      for (let c = 0; c < 3; c++) {
        const scale = 1 / (255 * (std[c] as number));
        const shift = -(mean[c] as number) / (std[c] as number);
        for (let i = 0; i < size * size; i++)
          out[c * size * size + i] = (rgb[i * 3 + c] as number) * scale + shift;
      }
      return out;
    };
    let s = 5;
    for (const [size, mean, std] of [
      [224, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
      [227, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
      [7, [0.1, 0.9, 0.33], [0.7, 0.05, 1.3]],
      [1, [0, 0, 0], [1, 1, 1]],
    ] as const) {
      const rgb = new Uint8Array(size * size * 3);
      for (let i = 0; i < rgb.length; i++) {
        s = (s * 1103515245 + 12345) >>> 0;
        rgb[i] = s >>> 24;
      }
      rgb.set([0, 255, 128], 0);
      const expected = reference(rgb, size, [...mean], [...std]);
      // Written at an offset into a larger batch tensor, as the engine does.
      const batch = new Float32Array(expected.length * 2 + 5).fill(7);
      rgbToTensor(rgb, { inputSize: size, mean: [...mean], std: [...std] }, batch, expected.length + 3);
      const got = batch.subarray(expected.length + 3, 2 * expected.length + 3);
      expect(
        Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(expected.buffer)),
      ).toBe(true);
      // Nothing outside its place in the batch was touched.
      expect(batch.subarray(0, expected.length + 3).every((v) => v === 7)).toBe(true);
      expect(batch.subarray(2 * expected.length + 3).every((v) => v === 7)).toBe(true);
    }
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

  it("decodes once for both model and heatmap; the model input does not depend on the heatmap size", async () => {
    const photo = await sharp(await makePhoto(400, 200, 3))
      .resize(2400, 1200)
      .jpeg()
      .toBuffer();
    const limits = { maxPixels: 1e8 };
    const byDefault = await prepareImage(photo, { inputSize: 224 }, limits);
    expect(byDefault).toMatchObject({ width: 2400, height: 1200, format: "jpeg" });
    expect([byDefault.heatmapBase.width, byDefault.heatmapBase.height]).toEqual([DECODE_MAX_SIDE, 512]);
    expect(byDefault.heatmapBase.data.length).toBe(DECODE_MAX_SIDE * 512 * 3);

    const small = await prepareImage(photo, { inputSize: 224 }, limits, 300);
    expect([small.heatmapBase.width, small.heatmapBase.height]).toEqual([300, 150]);
    const large = await prepareImage(photo, { inputSize: 224 }, limits, 2048);
    expect([large.heatmapBase.width, large.heatmapBase.height]).toEqual([2048, 1024]);
    // The same score whatever heatmap size is configured: identical model input bytes.
    expect(small.rgb.equals(byDefault.rgb)).toBe(true);
    expect(large.rgb.equals(byDefault.rgb)).toBe(true);
    expect(byDefault.rgb.length).toBe(224 * 224 * 3);

    // An image smaller than the decode size keeps its size whatever the heatmap size.
    const modest = await prepareImage(await makePhoto(300, 200, 3), { inputSize: 224 }, limits, 2048);
    expect([modest.heatmapBase.width, modest.heatmapBase.height]).toEqual([300, 200]);
  });

  it("turns a truncated image into a decode_failed image error", async () => {
    const photo = await makePhoto(300, 200, 4);
    await expect(
      prepareImage(photo.subarray(0, photo.length / 2), { inputSize: 224 }, { maxPixels: 1e8 }),
    ).rejects.toMatchObject({ name: "ImageError", reason: "decode_failed" });
  });
});
