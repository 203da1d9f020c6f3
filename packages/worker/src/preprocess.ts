import { ImageError } from "@memscore/shared";
import sharp, { type Metadata, type Sharp } from "sharp";
import { jpegCodec } from "./jpeg-codec.js";
import { readJpegHeader } from "./jpeg-header.js";
import { type ModelMetadata, ORIGINAL_GEOMETRY } from "./model-metadata.js";
import { resizeLanczos3 } from "./resample-kernel.js";
import { type ChannelAffine, normaliseRgb } from "./tensor-kernel.js";

// Photograph formats we decode. SVG/PDF are refused: they are documents, not photographs, and
// rasterising them would let a job payload make the worker render arbitrary vector content.
const ACCEPTED_FORMATS = new Set(["jpeg", "png", "webp", "gif", "tiff", "avif", "heif"]);

/** Limits checked from the image header, before any pixel is decoded. */
export interface DecodeLimits {
  /** Largest width×height accepted. */
  maxPixels: number;
}

/** 8-bit RGB pixels, row-major (HWC). */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Long side at which every image is decoded, once: the model's input is resized from these
 * pixels and the heatmap is drawn on them (at the default heatmap size, the same pixels). A
 * constant, so an image's score never depends on the heatmap size configured.
 */
export const DECODE_MAX_SIDE = 1024;

/** A decoded image ready for the model and the heatmap, plus the facts for its output record. */
export interface PreparedImage {
  /**
   * The model's input pixels ({@link toModelInput}): inputSize × inputSize RGB, HWC, uint8.
   * Kept as bytes until the batch is assembled ({@link rgbToTensor} writes them into the batch
   * tensor), because a float32 copy per image is 4× the memory while it waits for a batch, and
   * garbage to collect.
   */
  rgb: Buffer;
  /** The oriented sRGB image at most `heatmapMaxSide` on its long side, to draw the heatmap on. */
  heatmapBase: RgbImage;
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
  // Header only: no pixels are decoded here, so a decompression bomb costs nothing yet. A plain
  // JPEG's header is read here; every other file is read by libvips.
  const jpeg = readJpegHeader(bytes);
  const { format, width, height, orientation } = jpeg
    ? { format: "jpeg", ...jpeg }
    : await libvipsHeader(bytes);
  if (!ACCEPTED_FORMATS.has(format)) {
    throw new ImageError("unsupported_format", `${format} is not an accepted photograph format`);
  }
  if (width < 1 || height < 1) throw new ImageError("decode_failed", "image header has no dimensions");
  if (width * height > limits.maxPixels) {
    throw new ImageError("too_large", `${width}×${height} pixels exceeds the limit of ${limits.maxPixels}`);
  }
  // EXIF orientations 5–8 rotate by 90°: report what a viewer shows.
  const rotated = orientation >= 5;
  return { width: rotated ? height : width, height: rotated ? width : height, format };
}

/** Format, size and EXIF orientation of any image libvips can open, from its header alone. */
async function libvipsHeader(
  bytes: Buffer,
): Promise<{ format: string; width: number; height: number; orientation: number }> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new ImageError("not_image", "not a recognised image format", { cause: error });
  }
  return {
    format: meta.format ?? "unknown",
    width: meta.width ?? 0,
    height: meta.height ?? 0,
    orientation: meta.orientation ?? 1,
  };
}

/** sharp options shared by every decode: pixel limit enforced by libvips too, truncation is an error. */
export function sharpInput(bytes: Buffer, limits: DecodeLimits): Sharp {
  return sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error", sequentialRead: true });
}

function decodeError(error: unknown): ImageError {
  if (error instanceof Error && /pixel limit/i.test(error.message)) {
    return new ImageError("too_large", error.message, { cause: error });
  }
  const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
  return new ImageError("decode_failed", message, { cause: error });
}

/**
 * Decodes an image as a viewer shows it, at most `maxSide` on its long side (smaller images
 * keep their size): EXIF orientation applied, transparency over white, any colour space or
 * depth as 8-bit sRGB. Large JPEGs are shrunk while decoding (libjpeg's DCT scaling). A plain JPEG
 * is decoded by libjpeg-turbo itself ({@link decodePlainJpeg}); every other image by libvips.
 */
export async function decodeImage(bytes: Buffer, maxSide: number, limits: DecodeLimits): Promise<RgbImage> {
  return decodePlainJpeg(bytes, maxSide, limits) ?? decodeWithLibvips(bytes, maxSide, limits);
}

/** {@link decodeImage} by libvips alone, for every kind of image. */
export async function decodeWithLibvips(
  bytes: Buffer,
  maxSide: number,
  limits: DecodeLimits,
): Promise<RgbImage> {
  try {
    const { data, info } = await sharpInput(bytes, limits)
      .rotate() // apply EXIF orientation
      .flatten({ background: "#ffffff" }) // transparent pixels show as white, as in a viewer
      .toColourspace("srgb") // CMYK, grey, 16-bit and palette images all become 8-bit sRGB
      .resize(maxSide, maxSide, { fit: "inside", withoutEnlargement: true })
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height };
  } catch (error) {
    throw decodeError(error);
  }
}

/**
 * The plain JPEG, decoded by libjpeg-turbo on this thread ({@link jpegCodec}): upright (EXIF
 * orientation 1), no larger than `maxSide`, within the pixel limit, and one the codec takes (8-bit
 * YCbCr or grey, no ICC profile, no damage). For such a file every step of sharp's pipeline in
 * {@link decodeImage} is a no-op but the decode, and libjpeg-turbo's decode is libvips' byte for
 * byte (a test holds them equal), at a half to a third of the CPU. Anything else: undefined.
 */
function decodePlainJpeg(bytes: Buffer, maxSide: number, limits: DecodeLimits): RgbImage | undefined {
  if (!jpegCodec) return undefined;
  const header = readJpegHeader(bytes);
  if (header?.orientation !== 1) return undefined;
  if (Math.max(header.width, header.height) > maxSide || header.width * header.height > limits.maxPixels) {
    return undefined;
  }
  const decoded = jpegCodec.decodeRgb(bytes);
  return decoded && decoded.width === header.width && decoded.height === header.height ? decoded : undefined;
}

/**
 * Resizes decoded pixels (Lanczos 3): to exactly width×height with `fill` (the aspect ratio is
 * not kept), or to fit inside it. The model's input is made by {@link toModelInput}.
 */
export async function resizePixels(
  image: RgbImage,
  width: number,
  height: number,
  fit: "fill" | "inside",
): Promise<RgbImage> {
  const { data, info } = await sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .resize(width, height, { fit, kernel: "lanczos3", withoutEnlargement: fit === "inside" })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/**
 * Converts HWC uint8 RGB into a normalised CHW float32 tensor: x/255, then (x − mean)/std per
 * channel, with mean and std read from the model's metadata. Writes into `out` at `offset` so a
 * batch can be filled in place without extra copies. The one definition of normalisation:
 * computed in float64 as x·(1/(255·std)) + (−mean/std), then rounded to float32, which
 * model/preprocess.py repeats operation for operation so training sees the same bits.
 */
export function rgbToTensor(
  rgb: Uint8Array,
  metadata: Pick<ModelMetadata, "inputSize" | "mean" | "std">,
  out: Float32Array = new Float32Array(3 * metadata.inputSize * metadata.inputSize),
  offset = 0,
): Float32Array {
  const plane = metadata.inputSize * metadata.inputSize;
  if (rgb.length !== plane * 3) throw new RangeError(`expected ${plane * 3} RGB bytes, got ${rgb.length}`);
  // Fold the two affine steps into one multiply-add per value; tensor.wat does the arithmetic.
  const affine = [0, 1, 2].flatMap((c) => [
    1 / (255 * (metadata.std[c] as number)),
    -(metadata.mean[c] as number) / (metadata.std[c] as number),
  ]) as ChannelAffine;
  normaliseRgb(rgb, affine, out, offset);
  return out;
}

/** What of a model's metadata turns decoded pixels into its input pixels. */
export type InputGeometry = Pick<ModelMetadata, "inputSize" | "resize" | "resizeKernel">;

/**
 * The model's input pixels from decoded ones, as its metadata says: inputSize × inputSize RGB
 * (HWC, uint8), stretched to inputSize (the aspect ratio is not kept), or stretched to R×R and
 * centre-cropped at offset ⌊(R − inputSize)/2⌋ on both axes, with the model's resize kernel.
 * An image already at the stretch size is not resampled.
 */
export async function toModelInput(image: RgbImage, geometry: InputGeometry): Promise<Buffer> {
  const size = geometry.inputSize;
  const stretchTo = geometry.resize.kind === "stretch-crop" ? geometry.resize.resizeSize : size;
  const offset = Math.floor((stretchTo - size) / 2);
  // Lanczos 3 downsizing in WebAssembly, byte for byte sharp's, without a sharp call's fixed
  // cost; sizes it does not reproduce fall through to sharp.
  const stretched =
    geometry.resizeKernel === "lanczos3" ? resizeLanczos3(image, stretchTo, stretchTo) : undefined;
  if (stretched) {
    if (stretchTo === size) return stretched;
    const rowBytes = size * 3;
    const crop = Buffer.allocUnsafe(size * rowBytes);
    for (let y = 0; y < size; y++) {
      const from = ((y + offset) * stretchTo + offset) * 3;
      stretched.copy(crop, y * rowBytes, from, from + rowBytes);
    }
    return crop;
  }
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).resize(
    stretchTo,
    stretchTo,
    { fit: "fill", kernel: geometry.resizeKernel },
  );
  if (stretchTo !== size) {
    pipeline = pipeline.extract({ left: offset, top: offset, width: size, height: size });
  }
  return pipeline.raw({ depth: "uchar" }).toBuffer();
}

/**
 * Which part of the image the model's input shows, as the fraction of each axis from `start` to
 * `end`: the whole image when stretched, the centre when stretched and cropped. The Grad-CAM grid
 * covers that part only, so the heatmap is drawn over it ({@link toModelInput}'s crop, exactly).
 */
export function inputCoverage(geometry: InputGeometry): { start: number; end: number } {
  if (geometry.resize.kind !== "stretch-crop") return { start: 0, end: 1 };
  const stretchTo = geometry.resize.resizeSize;
  const offset = Math.floor((stretchTo - geometry.inputSize) / 2);
  return { start: offset / stretchTo, end: (offset + geometry.inputSize) / stretchTo };
}

/**
 * Inspects and decodes one image, once, for both the model and its heatmap: decoded at
 * {@link DECODE_MAX_SIDE}, turned into the model's input by {@link toModelInput}, and kept (or
 * shrunk to `heatmapMaxSide`) as the heatmap's base. Every failure is an {@link ImageError}.
 * Pass the model's metadata (a ModelInfo will do): geometry fields left out mean the original
 * contract ({@link ORIGINAL_GEOMETRY}: stretch, Lanczos 3), so a caller that passes only
 * `inputSize` gets what it always got.
 */
export async function prepareImage(
  bytes: Buffer,
  metadata: Pick<ModelMetadata, "inputSize"> & Partial<InputGeometry>,
  limits: DecodeLimits,
  heatmapMaxSide = DECODE_MAX_SIDE,
): Promise<PreparedImage> {
  const header = await inspectImage(bytes, limits);
  const decoded = await decodeImage(bytes, DECODE_MAX_SIDE, limits);
  try {
    const rgb = await toModelInput(decoded, {
      inputSize: metadata.inputSize,
      resize: metadata.resize ?? ORIGINAL_GEOMETRY.resize,
      resizeKernel: metadata.resizeKernel ?? ORIGINAL_GEOMETRY.resizeKernel,
    });
    let heatmapBase = decoded;
    if (heatmapMaxSide > DECODE_MAX_SIDE && Math.max(header.width, header.height) > DECODE_MAX_SIDE) {
      // A heatmap larger than the shared decode of a large image needs its own decode.
      heatmapBase = await decodeImage(bytes, heatmapMaxSide, limits);
    } else if (Math.max(decoded.width, decoded.height) > heatmapMaxSide) {
      heatmapBase = await resizePixels(decoded, heatmapMaxSide, heatmapMaxSide, "inside");
    }
    return { rgb, heatmapBase, ...header };
  } catch (error) {
    // A resize that fails on decoded pixels is this image's problem: permanent, never retried.
    throw error instanceof ImageError ? error : decodeError(error);
  }
}
