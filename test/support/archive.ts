import sharp from "sharp";
import { makePhoto } from "./images.js";

/** An input object of a test archive and the outcome it must get. */
export interface ArchiveEntry {
  key: string;
  body: Buffer | string;
  expect: "scored" | { reason: string };
}

const FORMATS = ["jpeg", "png", "webp", "gif"] as const;

/**
 * A mixed archive under `prefix`: `total` objects of several formats and sizes, in nested
 * folders with awkward names, `broken` of them unreadable in different ways.
 */
export async function makeArchive(prefix: string, total: number): Promise<ArchiveEntry[]> {
  const photo = await makePhoto(200, 150, 7);
  const broken: ArchiveEntry[] = [
    { key: `${prefix}broken/empty.jpg`, body: Buffer.alloc(0), expect: { reason: "not_image" } },
    { key: `${prefix}broken/notes.jpg`, body: "plain text, not a JPEG\n", expect: { reason: "not_image" } },
    {
      key: `${prefix}broken/truncated.jpg`,
      body: photo.subarray(0, photo.length >> 1),
      expect: { reason: "decode_failed" },
    },
    {
      key: `${prefix}broken/drawing.svg`,
      body: '<svg xmlns="http://www.w3.org/2000/svg" width="50" height="50"><rect width="50" height="50"/></svg>',
      expect: { reason: "unsupported_format" },
    },
  ];
  const entries: ArchiveEntry[] = [...broken];
  for (let i = 0; entries.length < total; i++) {
    const format = FORMATS[i % FORMATS.length] as (typeof FORMATS)[number];
    const width = 40 + ((i * 37) % 600);
    const height = 40 + ((i * 53) % 400);
    const base = sharp(await makePhoto(width, height, i));
    const body = await base.toFormat(format).toBuffer();
    const folder = ["a", "b/c", "café", "with space"][i % 4];
    const ext = format === "jpeg" ? "jpg" : format;
    entries.push({
      key: `${prefix}${folder}/img ${i}+${i % 3 === 0 ? "%" : ""}.${ext}`,
      body,
      expect: "scored",
    });
  }
  return entries;
}
