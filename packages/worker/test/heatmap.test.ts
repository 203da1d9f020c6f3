import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { TURBO_LUT } from "../src/colormap.js";
import {
  decodeImage,
  encodeHeatmap,
  inputCoverage,
  normaliseGrid,
  overlayHeatmap,
  renderHeatmap,
  upsampleGrid,
} from "../src/index.js";

describe("Grad-CAM grid", () => {
  it("normalises by the maximum and leaves an all-zero grid at zero", () => {
    expect(Array.from(normaliseGrid([0, 2, 4, 1]))).toEqual([0, 0.5, 1, 0.25]);
    expect(Array.from(normaliseGrid([0, 0, 0, 0]))).toEqual([0, 0, 0, 0]);
  });

  it("upsamples bilinearly with cell centres on the grid values", () => {
    const grid = new Float32Array([0, 1, 0, 1]); // 2×2, columns 0 and 1
    const up = upsampleGrid(grid, 2, 4, 1);
    // Pixel centres 0.5..3.5 map to grid x -0.25, 0.25, 0.75, 1.25 → clamped and interpolated.
    expect(Array.from(up)).toEqual([0, 0.25, 0.75, 1]);
  });
});

describe("renderHeatmap", () => {
  it("blends the Turbo colour map over the image: hot cells red, cold cells blue", async () => {
    const grey = { data: Buffer.alloc(140 * 140 * 3, 128), width: 140, height: 140 };
    const grid = new Float32Array(49);
    grid[0] = 5; // top-left cell hot, everything else zero
    const png = await renderHeatmap(grey, grid, 7, { format: "png" });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([140, 140]);
    const px = (x: number, y: number) => Array.from(data.subarray((y * 140 + x) * 3, (y * 140 + x) * 3 + 3));
    const hot = TURBO_LUT.subarray(255 * 3, 256 * 3);
    const cold = TURBO_LUT.subarray(0, 3);
    expect(px(5, 5)).toEqual(Array.from(hot).map((c) => Math.round(128 * 0.5 + c * 0.5)));
    expect(px(135, 135)).toEqual(Array.from(cold).map((c) => Math.round(128 * 0.5 + c * 0.5)));
  });

  it("equals upsample, colour-map and blend done step by step, pixel for pixel", async () => {
    const photo = await decodeImage(await makePhoto(333, 211, 5), 1024, { maxPixels: 1e8 });
    const base = Buffer.from(photo.data); // renderHeatmap draws on the pixels it is given
    const grid = Float32Array.from({ length: 49 }, (_, i) => ((i * 7919) % 13) / 3);
    const png = await renderHeatmap(photo, grid, 7, { format: "png" });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const heat = upsampleGrid(normaliseGrid(grid), 7, 333, 211);
    const expected = Buffer.alloc(base.length);
    for (let i = 0; i < heat.length; i++) {
      const level = Math.round((heat[i] as number) * 255);
      for (let c = 0; c < 3; c++) {
        const colour = TURBO_LUT[level * 3 + c] as number;
        expected[i * 3 + c] = Math.round((base[i * 3 + c] as number) * 0.5 + colour * 0.5);
      }
    }
    expect(data.equals(expected)).toBe(true);
    // Pixels at any byte offset, drawn after a larger image has grown the kernel's memory: the
    // same bytes again.
    overlayHeatmap(Buffer.alloc(1024 * 768 * 3), 1024, 768, normaliseGrid(grid), 7);
    const unaligned = Buffer.alloc(base.length + 1).subarray(1);
    base.copy(unaligned);
    overlayHeatmap(unaligned, 333, 211, normaliseGrid(grid), 7, unaligned);
    expect(unaligned.equals(expected)).toBe(true);
  });
});

describe("encodeHeatmap", () => {
  it("writes JPEG (default quality 85), PNG and WebP that decode to the overlay's size", async () => {
    const photo = await decodeImage(await makePhoto(301, 157, 2), 1024, { maxPixels: 1e8 });
    for (const format of ["jpeg", "png", "webp"] as const) {
      const bytes = await encodeHeatmap(photo.data, photo.width, photo.height, format, 85);
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      expect([info.format, info.width, info.height, info.channels]).toEqual([
        format === "jpeg" ? "raw" : "raw",
        301,
        157,
        3,
      ]);
      expect((await sharp(bytes).metadata()).format).toBe(format);
      if (format === "png") expect(data.equals(photo.data)).toBe(true); // lossless
    }
    // Lower quality, fewer bytes: the quality setting reaches the encoder.
    const q85 = await encodeHeatmap(photo.data, photo.width, photo.height, "jpeg", 85);
    const q30 = await encodeHeatmap(photo.data, photo.width, photo.height, "jpeg", 30);
    expect(q30.length).toBeLessThan(q85.length);
  });
});

describe("heatmap over the part of the image the model sees", () => {
  it("spreads the grid over the crop of a stretch-crop model, and over all of a stretched one", () => {
    // ResMem's geometry: stretched to 256, the centre 227 cut out at offset 14.
    const crop = inputCoverage({
      inputSize: 227,
      resize: { kind: "stretch-crop", resizeSize: 256 },
      resizeKernel: "linear",
    });
    expect(crop).toEqual({ start: 14 / 256, end: 241 / 256 });
    expect(inputCoverage({ inputSize: 224, resize: { kind: "stretch" }, resizeKernel: "lanczos3" })).toEqual({
      start: 0,
      end: 1,
    });
    // A 2×2 grid, cold left column, hot right: over 256 px, the crop's cell centres sit at
    // 14 + 227/4 and 14 + 3·227/4; outside the crop the edge values hold.
    const grid = new Float32Array([0, 1, 0, 1]);
    const row = Array.from(upsampleGrid(grid, 2, 256, 1, crop));
    const left = 14 + 227 / 4;
    const right = 14 + (3 * 227) / 4;
    for (let x = 0; x < 256; x++) {
      const centre = x + 0.5;
      const expected = centre <= left ? 0 : centre >= right ? 1 : (centre - left) / (right - left);
      expect(row[x], `x ${x}`).toBeCloseTo(expected, 5);
    }
    // The whole-image default is what it always was: cell centres at 64 and 192.
    const whole = Array.from(upsampleGrid(grid, 2, 256, 1));
    expect(whole[63]).toBe(0);
    expect(whole[192]).toBe(1);
    expect(whole[127]).toBeCloseTo((127.5 - 64) / 128, 5);
  });
});
