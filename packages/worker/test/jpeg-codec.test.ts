import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ImageError } from "@memscore/shared";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { type JpegCodec, jpegCodec, jpegCodecProblem } from "../src/jpeg-codec.js";
import { DECODE_MAX_SIDE, decodeImage, decodeWithLibvips } from "../src/preprocess.js";

const limits = { maxPixels: 1e8 };
const samplesDir = new URL("../../cli/samples/", import.meta.url);

/** The codec the worker uses; `npm run build` builds it, and these tests are about it. */
function codec() {
  if (!jpegCodec) throw new Error(`the native JPEG codec is not built: ${jpegCodecProblem}`);
  return jpegCodec;
}

/** What decodeImage gives against what libvips alone gives, for one file. */
async function bothDecodes(bytes: Buffer, maxSide = DECODE_MAX_SIDE) {
  const settle = (p: Promise<{ data: Buffer; width: number; height: number }>) =>
    p.then(
      (image) => ({ image, error: undefined }),
      (error: unknown) => ({
        image: undefined,
        error: error instanceof ImageError ? error.code : String(error),
      }),
    );
  return {
    worker: await settle(decodeImage(bytes, maxSide, limits)),
    libvips: await settle(decodeWithLibvips(bytes, maxSide, limits)),
  };
}

/** A photograph-like raw RGB image (the pixels behind makePhoto's JPEG). */
async function photoPixels(width: number, height: number, seed: number) {
  const { data } = await sharp(await makePhoto(width, height, seed))
    .raw()
    .toBuffer({ resolveWithObject: true });
  return data;
}

describe("the native JPEG codec", () => {
  it("is built, so the worker decodes plain JPEGs with libjpeg-turbo", () => {
    expect(jpegCodecProblem).toBeUndefined();
    expect(typeof codec().decodeRgb).toBe("function");
  });

  it("decodes plain JPEGs to exactly the pixels libvips gives", async () => {
    const photo = await makePhoto(640, 480, 3);
    const files: [string, Buffer][] = [
      ["baseline q90", photo],
      ["baseline q50", await sharp(photo).jpeg({ quality: 50 }).toBuffer()],
      ["baseline q100", await sharp(photo).jpeg({ quality: 100 }).toBuffer()],
      ["progressive", await sharp(photo).jpeg({ progressive: true }).toBuffer()],
      ["4:4:4 chroma", await sharp(photo).jpeg({ chromaSubsampling: "4:4:4" }).toBuffer()],
      ["optimised Huffman tables", await sharp(photo).jpeg({ optimiseCoding: true }).toBuffer()],
      ["mozjpeg (trellis, progressive scans)", await sharp(photo).jpeg({ mozjpeg: true }).toBuffer()],
      ["greyscale", await sharp(photo).greyscale().jpeg().toBuffer()],
      ["1×1", await makePhoto(1, 1, 1)],
      ["7×3", await makePhoto(7, 3, 2)],
      ["641×479 (partial blocks)", await makePhoto(641, 479, 4)],
      ["1024×683 (the decode size)", await makePhoto(1024, 683, 5)],
      ["480×640 portrait", await makePhoto(480, 640, 6)],
      ["written by the codec itself", codec().encodeRgb(await photoPixels(333, 222, 7), 333, 222, 85)],
    ];
    for (const [kind, bytes] of files) {
      expect(codec().decodeRgb(bytes), kind).not.toBeNull();
      const { worker, libvips } = await bothDecodes(bytes);
      expect(worker.error, kind).toBeUndefined();
      expect({ width: worker.image?.width, height: worker.image?.height }, kind).toEqual({
        width: libvips.image?.width,
        height: libvips.image?.height,
      });
      expect(worker.image?.data.equals(libvips.image?.data ?? Buffer.alloc(0)), kind).toBe(true);
    }
  });

  it("gives every JPEG layout libjpeg writes the pixels libvips gives", async () => {
    // test/fixtures/jpeg-kinds/make.sh (cjpeg): layouts sharp cannot write.
    const dir = new URL("../../../test/fixtures/jpeg-kinds/", import.meta.url);
    const names = readdirSync(dir).filter((name) => name.endsWith(".jpg"));
    expect(names).toHaveLength(11);
    for (const name of names) {
      const bytes = readFileSync(new URL(name, dir));
      // An RGB-coded JPEG (no YCbCr) is not the plain case: libvips decodes it.
      expect(codec().decodeRgb(bytes) === null, name).toBe(name === "rgb-not-ycbcr.jpg");
      const { worker, libvips } = await bothDecodes(bytes);
      expect(worker.error, name).toBeUndefined();
      expect({ width: worker.image?.width, height: worker.image?.height }, name).toEqual({
        width: 67,
        height: 45,
      });
      expect(worker.image?.data.equals(libvips.image?.data ?? Buffer.alloc(0)), name).toBe(true);
    }
  });

  it("gives the sample photographs the pixels libvips gives", async () => {
    const names = readdirSync(samplesDir).filter((name) => name.endsWith(".jpg"));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      const { worker, libvips } = await bothDecodes(readFileSync(new URL(name, samplesDir)));
      expect(worker.error, name).toBeUndefined();
      expect(worker.image?.data.equals(libvips.image?.data ?? Buffer.alloc(0)), name).toBe(true);
    }
  });

  it("leaves every other JPEG to libvips, which decides as before", async () => {
    const photo = await makePhoto(400, 300, 8);
    const large = await makePhoto(2000, 1500, 9);
    const declined: [string, Buffer][] = [
      ["CMYK", await sharp(photo).toColourspace("cmyk").jpeg().toBuffer()],
      ["an ICC profile", await sharp(photo).withIccProfile("p3").jpeg().toBuffer()],
      ["truncated", photo.subarray(0, Math.floor(photo.length * 0.6))],
      [
        "damaged entropy data",
        Buffer.concat([photo.subarray(0, 700), Buffer.alloc(200, 0xff), photo.subarray(900)]),
      ],
    ];
    for (const [kind, bytes] of declined) {
      expect(codec().decodeRgb(bytes), kind).toBeNull();
    }
    // Files the codec could decode but decodeImage does not give it: libvips must rotate or shrink.
    const passedOn: [string, Buffer, number][] = [
      [
        "EXIF orientation 6",
        await sharp(photo).withMetadata({ orientation: 6 }).jpeg().toBuffer(),
        DECODE_MAX_SIDE,
      ],
      ["larger than the decode size", large, DECODE_MAX_SIDE],
      ["larger than a smaller decode size", photo, 256],
    ];
    for (const [kind, bytes, maxSide] of [
      ...declined.map(([k, b]) => [k, b, DECODE_MAX_SIDE] as const),
      ...passedOn,
    ]) {
      const { worker, libvips } = await bothDecodes(bytes, maxSide);
      expect(worker.error, kind).toBe(libvips.error);
      expect(worker.image?.width, kind).toBe(libvips.image?.width);
      expect(worker.image?.height, kind).toBe(libvips.image?.height);
      expect(worker.image?.data.equals(libvips.image?.data ?? Buffer.alloc(0)) ?? true, kind).toBe(true);
    }
    // The rotated and shrunk files did reach libvips: their sizes say so.
    expect((await decodeImage(passedOn[0]?.[1] as Buffer, DECODE_MAX_SIDE, limits)).width).toBe(300);
    expect((await decodeImage(large, DECODE_MAX_SIDE, limits)).width).toBe(1024);
  });

  it("encodes RGB as a baseline 4:2:0 JPEG of the same size and close pixels", async () => {
    const [width, height] = [321, 203];
    const rgb = await photoPixels(width, height, 10);
    const jpeg = codec().encodeRgb(rgb, width, height, 85);
    const meta = await sharp(jpeg).metadata();
    expect(meta).toMatchObject({ format: "jpeg", width, height, channels: 3, chromaSubsampling: "4:2:0" });
    expect(meta.isProgressive).toBe(false);
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    let error = 0;
    for (let i = 0; i < rgb.length; i++) error += Math.abs((rgb[i] as number) - (data[i] as number));
    expect(error / rgb.length).toBeLessThan(8);
    // Quality is honoured: a lower one writes fewer bytes.
    expect(codec().encodeRgb(rgb, width, height, 30).length).toBeLessThan(jpeg.length);
  });

  it("refuses an encode whose arguments do not describe the pixels", () => {
    const rgb = Buffer.alloc(4 * 4 * 3);
    expect(() => codec().encodeRgb(rgb, 4, 5, 85)).toThrow(/width×height×3/);
    expect(() => codec().encodeRgb(rgb, 4, 4, 0)).toThrow(TypeError);
    expect(() => codec().encodeRgb(rgb, 0, 4, 85)).toThrow(TypeError);
    expect(() => codec().decodeRgb("not a buffer" as unknown as Buffer)).toThrow(TypeError);
  });
});

describe("build-jpeg-codec.mjs", () => {
  const script = fileURLToPath(new URL("../scripts/build-jpeg-codec.mjs", import.meta.url));
  const build = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [script, ...args], { encoding: "utf8", env: { ...process.env, ...env } });

  it("builds an addon that loads and decodes, and says what is missing when it cannot", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jpeg-codec-"));
    try {
      const out = join(dir, "jpeg-codec.node");
      expect(build(["--out", out]).status).toBe(0);
      const built = createRequire(import.meta.url)(out) as JpegCodec;
      expect(built.decodeRgb(await makePhoto(64, 48, 1))).toMatchObject({ width: 64, height: 48 });

      // No compiler: the build goes on without the codec (sharp decodes), unless it is required.
      const missing = join(dir, "missing.node");
      const lenient = build(["--out", missing], { CC: "/bin/false" });
      expect(lenient.status).toBe(0);
      expect(lenient.stderr).toMatch(
        /jpeg codec not built: \/bin\/false failed.*apt-get install gcc libjpeg-dev/s,
      );
      expect(existsSync(missing)).toBe(false);
      expect(build(["--out", missing, "--require"], { CC: "/bin/false" }).status).toBe(1);
      const usage = build(["--out"]);
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/usage: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
