import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { encodeRgbPng, upFilteredScanlines } from "../src/png-encoder.js";

function noisyRgb(width: number, height: number, seed: number): Buffer {
  const rgb = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let i = 0; i < rgb.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    // A gradient with noise: both the filter and the run-length matches have work to do.
    rgb[i] = ((i % (width * 3)) + (s >>> 28)) & 255;
  }
  return rgb;
}

describe("encodeRgbPng", () => {
  it.each([
    [1, 1],
    [7, 3],
    [640, 480],
    [1024, 17],
  ])("writes a %i×%i PNG that decodes to exactly its pixels", async (width, height) => {
    const rgb = noisyRgb(width, height, width * 31 + height);
    const png = await encodeRgbPng(rgb, width, height);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.format, info.width, info.height, info.channels]).toEqual(["raw", width, height, 3]);
    expect(data.equals(rgb)).toBe(true);
  });

  it("compresses a flat image to almost nothing", async () => {
    const flat = Buffer.alloc(512 * 512 * 3, 200);
    const png = await encodeRgbPng(flat, 512, 512);
    expect(png.length).toBeLessThan(4096);
    expect((await sharp(png).raw().toBuffer()).equals(flat)).toBe(true);
  });

  it("refuses pixels that do not match the size", async () => {
    await expect(encodeRgbPng(Buffer.alloc(10), 2, 2)).rejects.toThrow(/expected 12 RGB bytes/);
    await expect(encodeRgbPng(Buffer.alloc(0), 0, 0)).rejects.toThrow(/invalid PNG size/);
  });
});

describe("upFilteredScanlines", () => {
  it("stores each row as its difference from the row above, after a filter-type byte", () => {
    const rgb = Uint8Array.from([10, 20, 30, 5, 250, 0]); // 1 pixel wide, 2 rows
    expect(Array.from(upFilteredScanlines(rgb, 1, 2))).toEqual([2, 10, 20, 30, 2, 251, 230, 226]);
  });
});
