import sharp from "sharp";
import { describeError } from "../errors.js";
import { parseS3Uri } from "../s3-uri.js";
import type { Storage } from "../storage.js";

/** A heatmap shrunk for the report, embedded as a data: URI; or why there is none. */
export type Thumbnail = { dataUri: string; width: number; height: number; bytes: number } | { error: string };

export interface ThumbnailOptions {
  /** Longest side in pixels. @defaultValue 240 */
  maxSide?: number;
  /** JPEG quality. @defaultValue 72 */
  quality?: number;
  /** Heatmaps larger than this are not downloaded. @defaultValue 64 MiB */
  maxBytes?: number;
  /**
   * Heatmaps fetched and shrunk at once. Each holds its file and decoded pixels while it is made
   * (a 1024 px PNG overlay: a few MB), so one at a time keeps the report's memory low; 48
   * thumbnails then take a few seconds. @defaultValue 1
   */
  concurrency?: number;
}

/**
 * Fetches one heatmap overlay and shrinks it to a JPEG of at most `maxSide` pixels (about
 * 10–25 kB at 240 px), so the report stays one self-contained file. Any failure (a missing or
 * undecodable heatmap, a URI outside the allowed buckets) becomes the thumbnail's `error`.
 */
export async function makeThumbnail(
  storage: Storage,
  heatmapUri: string,
  options: ThumbnailOptions = {},
): Promise<Thumbnail> {
  const maxSide = options.maxSide ?? 240;
  try {
    const { body } = await storage.get(parseS3Uri(heatmapUri), options.maxBytes ?? 64 * 1024 * 1024);
    const { data, info } = await sharp(body, { failOn: "error" })
      .rotate()
      .resize(maxSide, maxSide, { fit: "inside", withoutEnlargement: true })
      .flatten({ background: "#ffffff" })
      .jpeg({ quality: options.quality ?? 72 })
      .toBuffer({ resolveWithObject: true });
    return {
      dataUri: `data:image/jpeg;base64,${data.toString("base64")}`,
      width: info.width,
      height: info.height,
      bytes: data.length,
    };
  } catch (error) {
    return { error: describeError(error) };
  }
}

/** Thumbnails for some heatmap URIs (each fetched once). */
export async function makeThumbnails(
  storage: Storage,
  heatmapUris: readonly string[],
  options: ThumbnailOptions = {},
): Promise<Map<string, Thumbnail>> {
  const pending = [...new Set(heatmapUris)];
  const out = new Map<string, Thumbnail>();
  const work = async () => {
    for (let uri = pending.shift(); uri !== undefined; uri = pending.shift()) {
      out.set(uri, await makeThumbnail(storage, uri, options));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 1 }, work));
  return out;
}
