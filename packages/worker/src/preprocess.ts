import { ImageError } from "@memscore/shared";
import sharp, { type Metadata, type Sharp } from "sharp";
import type { ModelMetadata } from "./model-metadata.js";

// Photograph formats we decode. SVG/PDF are refused: they are documents, not photographs, and
// rasterising them would let a job payload make the worker render arbitrary vector content.
const ACCEPTED_FORMATS = new Set(["jpeg", "png", "webp", "gif", "tiff", "avif", "heif"]);

/** Limits checked from the image header, before any pixel is decoded. */
export interface DecodeLimits {
  /** Largest width×height accepted. */
  maxPixels: number;
}

/** A decoded image ready for the model, plus the facts that go into its output record. */
export interface PreparedImage {
  /**
   * The model's input pixels: inputSize × inputSize RGB, HWC, uint8. Kept as bytes until the
   * batch is assembled ({@link rgbToTensor} writes them into the batch tensor), because a
   * float32 copy per image is 4× the memory while it waits for a batch, and garbage to collect.
   */
  rgb: Buffer;
  /** Dimensions of the stored image as displayed (after EXIF orientation). */
  width: number;
  height: number;
  format: string;
}

/** Header facts of an image, or an {@link ImageError} if it is not one we will decode. */
export async function inspectImage(
  bytes: Buffer,
  limits: DecodeLimits,
): Promise<{ width: number; height: number; format: string }> {
  if (bytes.length === 0) throw new ImageError("not_image", "empty file");
  let meta: Metadata;
  try {
    // Header only: no pixels are decoded here, so a decompression bomb costs nothing yet.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new ImageError("not_image", "not a recognised image format", { cause: error });
  }
  const format = meta.format ?? "unknown";
  if (!ACCEPTED_FORMATS.has(format)) {
    throw new ImageError("unsupported_format", `${format} is not an accepted photograph format`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width < 1 || height < 1) throw new ImageError("decode_failed", "image header has no dimensions");
  if (width * height > limits.maxPixels) {
    throw new ImageError("too_large", `${width}×${height} pixels exceeds the limit of ${limits.maxPixels}`);
  }
  // EXIF orientations 5–8 rotate by 90°: report what a viewer shows.
  const rotated = (meta.orientation ?? 1) >= 5;
  return { width: rotated ? height : width, height: rotated ? width : height, format };
}

/** sharp options shared by every decode: pixel limit enforced by libvips too, truncation is an error. */
export function sharpInput(bytes: Buffer, limits: DecodeLimits): Sharp {
  return sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error", sequentialRead: true });
}

/**
 * Decodes, orients and resizes an image to the model's square input without cropping (the
 * aspect ratio is not kept, per the contract), and returns RGB bytes (HWC, uint8).
 */
export async function decodeToModelRgb(
  bytes: Buffer,
  inputSize: number,
  limits: DecodeLimits,
): Promise<Buffer> {
  try {
    return await sharpInput(bytes, limits)
      .rotate() // apply EXIF orientation
      .flatten({ background: "#ffffff" }) // transparent pixels show as white, as in a viewer
      .toColourspace("srgb") // CMYK, grey, 16-bit and palette images all become 8-bit sRGB
      .resize(inputSize, inputSize, { fit: "fill", kernel: "lanczos3" })
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer();
  } catch (error) {
    if (error instanceof Error && /pixel limit/i.test(error.message)) {
      throw new ImageError("too_large", error.message, { cause: error });
    }
    throw new ImageError(
      "decode_failed",
      error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error),
      {
        cause: error,
      },
    );
  }
}

/**
 * Converts HWC uint8 RGB into a normalised CHW float32 tensor: x/255, then (x − mean)/std per
 * channel, with mean and std read from the model's metadata. Writes into `out` at `offset` so a
 * batch can be filled in place without extra copies.
 */
export function rgbToTensor(
  rgb: Uint8Array,
  metadata: Pick<ModelMetadata, "inputSize" | "mean" | "std">,
  out: Float32Array = new Float32Array(3 * metadata.inputSize * metadata.inputSize),
  offset = 0,
): Float32Array {
  const plane = metadata.inputSize * metadata.inputSize;
  if (rgb.length !== plane * 3) throw new RangeError(`expected ${plane * 3} RGB bytes, got ${rgb.length}`);
  for (let c = 0; c < 3; c++) {
    // Fold the two affine steps into one multiply-add per pixel.
    const scale = 1 / (255 * (metadata.std[c] as number));
    const shift = -(metadata.mean[c] as number) / (metadata.std[c] as number);
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = (rgb[i * 3 + c] as number) * scale + shift;
  }
  return out;
}

/** Inspects and decodes one image for the model. Every failure is an {@link ImageError}. */
export async function prepareImage(
  bytes: Buffer,
  metadata: Pick<ModelMetadata, "inputSize">,
  limits: DecodeLimits,
): Promise<PreparedImage> {
  const header = await inspectImage(bytes, limits);
  const rgb = await decodeToModelRgb(bytes, metadata.inputSize, limits);
  return { rgb, ...header };
}
