import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createDeflate } from "node:zlib";
import sharp from "sharp";

/** A photograph-like test image: smooth gradients plus noise, so JPEG/PNG encoders behave normally. */
export async function makePhoto(width: number, height: number, seed = 1): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  let s = seed * 2654435761;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = (s >>> 24) % 32;
      const i = (y * width + x) * 3;
      rgb[i] = ((x * 255) / width + noise + seed * 37) % 256;
      rgb[i + 1] = ((y * 255) / height + noise) % 256;
      rgb[i + 2] = (((x + y) * 128) / (width + height) + seed * 11) % 256;
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * Writes a real, valid 1-bit greyscale PNG of width×height whose pixels are all zero: a
 * decompression bomb (a 30000×30000 one is ~110 kB on disk and 900 megapixels decoded).
 */
export async function writePngBomb(path: string, width: number, height: number): Promise<void> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, filter 0, no interlace
  const row = Buffer.alloc(1 + Math.ceil(width / 8)); // filter byte + packed bits
  const deflate = createDeflate({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve) => deflate.on("end", resolve));
  for (let y = 0; y < height; y++) {
    if (!deflate.write(row)) await new Promise((r) => deflate.once("drain", r));
  }
  deflate.end();
  await done;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  await pipeline(async function* () {
    yield signature;
    yield pngChunk("IHDR", ihdr);
    yield pngChunk("IDAT", Buffer.concat(chunks));
    yield pngChunk("IEND", Buffer.alloc(0));
  }, createWriteStream(path));
}

/** Expected outcome of scoring one hostile/broken file: a score, or an error with this reason. */
export type ExpectedOutcome = { kind: "score" } | { kind: "error"; reason: string };

/**
 * Writes the "bad input" set of issue #2 into `dir` and returns file name → expected outcome.
 * Every file is generated here, so the repository carries no binary fixtures for it.
 */
export async function writeBadInputs(dir: string): Promise<Map<string, ExpectedOutcome>> {
  await mkdir(dir, { recursive: true });
  const photo = await makePhoto(320, 240);
  const expected = new Map<string, ExpectedOutcome>();
  const put = async (name: string, bytes: Buffer | string, outcome: ExpectedOutcome) => {
    await writeFile(join(dir, name), bytes);
    expected.set(name, outcome);
  };

  await put("empty.jpg", Buffer.alloc(0), { kind: "error", reason: "not_image" });
  await put("text.jpg", "this is not an image, just text with a .jpg name\n", {
    kind: "error",
    reason: "not_image",
  });
  await put("truncated.jpg", photo.subarray(0, Math.floor(photo.length / 2)), {
    kind: "error",
    reason: "decode_failed",
  });
  await writePngBomb(join(dir, "bomb-30000x30000.png"), 30_000, 30_000);
  expected.set("bomb-30000x30000.png", { kind: "error", reason: "too_large" });

  const rgb = await sharp(photo).raw().toBuffer();
  const raw = { raw: { width: 320, height: 240, channels: 3 as const } };
  await put("sixteen-bit.png", await sharp(rgb, raw).toColourspace("rgb16").png().toBuffer(), {
    kind: "score",
  });
  await put("cmyk.jpg", await sharp(rgb, raw).toColourspace("cmyk").jpeg().toBuffer(), { kind: "score" });
  await put("grayscale.jpg", await sharp(rgb, raw).grayscale().jpeg().toBuffer(), { kind: "score" });
  await put("with-alpha.png", await sharp(rgb, raw).ensureAlpha(0.5).png().toBuffer(), { kind: "score" });

  // Three frames stacked vertically, encoded as one animated GIF; the first frame is scored.
  const frames = Buffer.concat([rgb, Buffer.from(rgb).reverse(), rgb]);
  const gif = await sharp(frames, { raw: { width: 320, height: 240 * 3, channels: 3, pageHeight: 240 } })
    .gif({ loop: 0, delay: [100, 100, 100] })
    .toBuffer();
  await put("animated.gif", gif, { kind: "score" });
  await put("vector.svg.jpg", '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', {
    kind: "error",
    reason: "unsupported_format",
  });
  await put("good.jpg", photo, { kind: "score" });
  return expected;
}
