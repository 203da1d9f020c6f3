import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { makePhoto, writeBadInputs } from "./images.js";

/** An S3 object of the hostile set and the outcome it must get: scored, or an error reason. */
export interface HostileObject {
  key: string;
  body: Buffer;
  expect: "scored" | string;
}

/**
 * A JPEG carrying about 1 MB of metadata: an EXIF APP1 segment and fifteen Photoshop APP13
 * segments of 64 KB each (a JPEG segment cannot be larger), all before the image data.
 */
export async function jpegWithHugeMetadata(): Promise<Buffer> {
  const photo = await makePhoto(96, 64, 3);
  const segments: Buffer[] = [];
  for (let i = 0; i < 16; i++) {
    const length = 65_533; // the 2 length bytes included: the largest a segment may be
    const segment = Buffer.alloc(length + 2, i);
    segment[0] = 0xff;
    segment[1] = i === 0 ? 0xe1 : 0xed;
    segment.writeUInt16BE(length, 2);
    segment.write(i === 0 ? "Exif\0\0" : "Photoshop 3.0\0", 4, "latin1");
    segments.push(segment);
  }
  return Buffer.concat([photo.subarray(0, 2), ...segments, photo.subarray(2)]);
}

/**
 * A key of exactly S3's 1024-byte limit under `prefix`: a valid input, whose outputs under any
 * output prefix would need longer keys. Made of 200-byte segments, as file-system names allow.
 */
function longestKey(prefix: string): string {
  let key = prefix;
  while (1024 - Buffer.byteLength(key) > 200 + "last.jpg".length) key += `${"k".repeat(199)}/`;
  key += "x".repeat(1024 - Buffer.byteLength(key) - "last.jpg".length);
  return `${key}last.jpg`;
}

/**
 * The hostile and broken inputs of issue #6, as S3 objects under `prefix`: the local bad-input
 * set (empty, text, truncated, PNG bomb, 16-bit, CMYK, animated GIF, SVG named .jpg, ...) plus a
 * truncated PNG, a real .svg, a 1×100000 image, a TIFF, ~1 MB of metadata, an object over
 * `maxImageBytes`, keys with unicode, spaces, `%` and dots, and a key of 1024 bytes (the most S3
 * allows) whose outputs cannot be written (`invalid_uri`).
 */
export async function makeHostileObjects(prefix: string, maxImageBytes: number): Promise<HostileObject[]> {
  const dir = await mkdtemp(join(tmpdir(), "memscore-hostile-"));
  const objects: HostileObject[] = [];
  try {
    const expected = await writeBadInputs(dir);
    for (const name of await readdir(dir)) {
      const outcome = expected.get(name);
      if (!outcome) continue;
      objects.push({
        key: `${prefix}bad/${name}`,
        body: await readFile(join(dir, name)),
        expect: outcome.kind === "score" ? "scored" : outcome.reason,
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const photo = await makePhoto(160, 120, 5);
  const png = await sharp(photo).png().toBuffer();
  const add = (key: string, body: Buffer | string, expect: HostileObject["expect"]) =>
    objects.push({ key: `${prefix}${key}`, body: Buffer.from(body), expect });

  add("bad/truncated.png", png.subarray(0, png.length >> 1), "decode_failed");
  add(
    "bad/drawing.svg",
    '<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000"><circle r="2000"/></svg>',
    "unsupported_format",
  );
  const tall = await sharp({ create: { width: 1, height: 100_000, channels: 3, background: "#7f7f7f" } })
    .png()
    .toBuffer();
  add("odd/tall-1x100000.png", tall, "scored");
  add("odd/photo.tiff", await sharp(photo).tiff().toBuffer(), "scored");
  add("odd/huge-metadata.jpg", await jpegWithHugeMetadata(), "scored");
  // Larger than the limit: must be refused from its listed size, without being downloaded.
  add("odd/oversized.jpg", Buffer.alloc(maxImageBytes + 1024 * 1024, 0xff), "too_large");
  add(longestKey(`${prefix}long/`).slice(prefix.length), photo, "invalid_uri");
  for (const name of [
    "café ünïcödé 🖼.jpg",
    "with  spaces .jpg",
    "100% real%20photo%2F.jpg",
    "a..b.jpg",
    "..hidden.jpg",
    ".../three-dots.jpg",
    "dots../x.jpg",
    "plus+and&amp=.jpg",
  ]) {
    add(`names/${name}`, photo, "scored");
  }
  return objects;
}
