import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { RgbImage } from "./preprocess.js";

/** The Node-API addon built from native/jpeg-codec.c (packages/worker/scripts/build-jpeg-codec.mjs). */
export interface JpegCodec {
  /**
   * Decodes a plain JPEG (8-bit YCbCr or greyscale, no ICC profile, no damage) to RGB, byte for
   * byte what libvips gives; null for any other file, which the caller hands to sharp.
   */
  decodeRgb(jpeg: Buffer): RgbImage | null;
  /** Baseline JPEG, 4:2:0 chroma, standard Huffman tables, at `quality` (1–100). */
  encodeRgb(rgb: Buffer, width: number, height: number, quality: number): Buffer;
}

// Resolved from this file, so the same path works from src/ (tests) and dist/ (the build).
const ADDON_PATH = fileURLToPath(new URL("../build/jpeg-codec.node", import.meta.url));

function load(): { codec?: JpegCodec; problem?: string } {
  try {
    return { codec: createRequire(import.meta.url)(ADDON_PATH) as JpegCodec };
  } catch (error) {
    const reason = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    return { problem: `${ADDON_PATH} did not load (${reason}); npm run build builds it` };
  }
}

const loaded = load();

/**
 * The native JPEG codec (libjpeg-turbo on the calling thread), or undefined where it was not
 * built: then sharp decodes and encodes every JPEG, with the same pixels at two to three times the
 * CPU. Loaded once per thread.
 */
export const jpegCodec: JpegCodec | undefined = loaded.codec;

/** Why {@link jpegCodec} is undefined, for the worker's start-up log. */
export const jpegCodecProblem: string | undefined = loaded.problem;
