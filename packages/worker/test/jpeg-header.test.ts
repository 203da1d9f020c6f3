import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { readJpegHeader } from "../src/jpeg-header.js";
import { decodeImage, inspectImage } from "../src/preprocess.js";

const limits = { maxPixels: 1e8 };

/** What libvips says of a file's header, through sharp. */
async function libvipsHeader(bytes: Buffer) {
  const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  return { width: meta.width, height: meta.height, orientation: meta.orientation ?? 1 };
}

/** An APP1 EXIF block whose first directory holds one entry: Orientation, as `type` (3 = SHORT). */
function exifBlock(order: "II" | "MM", orientation: number, type = 3): Buffer {
  const little = order === "II";
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  tiff.write(order, 0, "latin1");
  const u16 = (v: number, at: number) => (little ? tiff.writeUInt16LE(v, at) : tiff.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (little ? tiff.writeUInt32LE(v, at) : tiff.writeUInt32BE(v, at));
  u16(42, 2);
  u32(8, 4);
  u16(1, 8);
  u16(0x0112, 10);
  u16(type, 12);
  u32(1, 14);
  if (type === 3) u16(orientation, 18);
  else u32(orientation, 18);
  const payload = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
  const header = Buffer.from([0xff, 0xe1, 0, 0]);
  header.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([header, payload]);
}

/** A JPEG with `blocks` inserted right after its start-of-image marker. */
function withBlocks(jpeg: Buffer, ...blocks: Buffer[]): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2), ...blocks, jpeg.subarray(2)]);
}

describe("readJpegHeader", () => {
  it("reads size and orientation exactly as libvips does, for the JPEGs that archives hold", async () => {
    const photo = await makePhoto(300, 200, 4);
    const plain = await sharp(photo).jpeg().toBuffer();
    const files: [string, Buffer][] = [
      ["baseline", plain],
      ["progressive", await sharp(photo).jpeg({ progressive: true }).toBuffer()],
      ["4:4:4", await sharp(photo).jpeg({ chromaSubsampling: "4:4:4" }).toBuffer()],
      ["greyscale", await sharp(photo).greyscale().jpeg().toBuffer()],
      ["CMYK", await sharp(photo).toColourspace("cmyk").jpeg().toBuffer()],
      ["with an ICC profile", await sharp(photo).withIccProfile("p3").jpeg().toBuffer()],
      [
        "with EXIF fields besides orientation",
        await sharp(photo)
          .withExif({ IFD0: { Orientation: "6", Copyright: "memscore", Artist: "test" } })
          .jpeg()
          .toBuffer(),
      ],
      ["big-endian EXIF", withBlocks(plain, exifBlock("MM", 8))],
      ["fill bytes before a marker", withBlocks(plain, Buffer.from([0xff, 0xff]))],
    ];
    for (let orientation = 1; orientation <= 8; orientation++) {
      files.push([
        `orientation ${orientation}`,
        await sharp(photo).withMetadata({ orientation }).jpeg().toBuffer(),
      ]);
    }
    for (const [name, bytes] of files) {
      const read = readJpegHeader(bytes);
      expect(read, name).toBeDefined();
      expect(read, name).toEqual(await libvipsHeader(bytes));
    }
  });

  it("leaves to libvips every file it does not plainly understand", async () => {
    const plain = await sharp(await makePhoto(120, 80, 2))
      .jpeg()
      .toBuffer();
    const unusual: [string, Buffer][] = [
      ["two EXIF blocks", withBlocks(plain, exifBlock("II", 6), exifBlock("II", 3))],
      ["orientation as a LONG", withBlocks(plain, exifBlock("II", 6, 4))],
      ["orientation 0", withBlocks(plain, exifBlock("II", 0))],
      ["orientation 9", withBlocks(plain, exifBlock("MM", 9))],
      [
        "a PNG",
        await sharp(await makePhoto(40, 30, 1))
          .png()
          .toBuffer(),
      ],
      ["only the start marker", plain.subarray(0, 3)],
      ["cut before the frame", plain.subarray(0, plain.indexOf(Buffer.from([0xff, 0xc0])) + 4)],
    ];
    for (const [name, bytes] of unusual) expect(readJpegHeader(bytes), name).toBeUndefined();
    // What libvips makes of them is still what inspectImage reports.
    const twoBlocks = unusual[0]?.[1] as Buffer;
    const expected = await libvipsHeader(twoBlocks);
    expect(await inspectImage(twoBlocks, limits)).toMatchObject({
      width: (expected.orientation >= 5 ? expected.height : expected.width) as number,
      format: "jpeg",
    });
  });

  it("never disagrees with libvips on a damaged file: agrees, declines, or the decode fails too", async () => {
    const original = await sharp(await makePhoto(160, 120, 7))
      .withMetadata({ orientation: 6 })
      .jpeg()
      .toBuffer();
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const sos = original.indexOf(Buffer.from([0xff, 0xda]));
    let read = 0;
    for (let i = 0; i < 300; i++) {
      // Damage the header, where this reader and libvips both look: cut the file, flip bytes.
      const damaged = Buffer.from(i % 3 === 0 ? original.subarray(0, 2 + random(sos + 8)) : original);
      for (let flips = 1 + random(3); flips > 0; flips--)
        damaged[random(Math.min(sos + 4, damaged.length))] = random(256);
      const ours = readJpegHeader(damaged);
      if (ours === undefined) continue;
      read++;
      const theirs = await libvipsHeader(damaged).catch(() => undefined);
      if (theirs) expect(ours, `mutation ${i}`).toEqual(theirs);
      else await expect(decodeImage(damaged, 1024, limits), `mutation ${i}`).rejects.toThrow();
    }
    // The damage left many headers readable, so the comparison above ran.
    expect(read).toBeGreaterThan(50);
  });
});
