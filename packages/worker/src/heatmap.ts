import type { HeatmapFileFormat } from "@memscore/shared";
import sharp from "sharp";
import { jpegCodec } from "./jpeg-codec.js";
import { blendRows } from "./overlay-kernel.js";
import { encodeRgbPng } from "./png-encoder.js";
import type { PreparedImage, RgbImage } from "./preprocess.js";

/**
 * Scales a raw Grad-CAM grid to [0, 1] by dividing by its maximum. An all-zero (or non-positive)
 * grid stays all zero: there is no evidence to show, and inventing contrast would mislead.
 */
/**
 * The part of each image axis a Grad-CAM grid covers, as fractions: all of it for a stretched
 * input, the centre for a stretched and cropped one ({@link inputCoverage}).
 */
export interface GridCoverage {
  start: number;
  end: number;
}

const WHOLE_AXIS: GridCoverage = { start: 0, end: 1 };

export function normaliseGrid(grid: ArrayLike<number>): Float32Array {
  let max = 0;
  for (let i = 0; i < grid.length; i++) max = Math.max(max, grid[i] as number);
  const out = new Float32Array(grid.length);
  if (max <= 0 || !Number.isFinite(max)) return out;
  for (let i = 0; i < grid.length; i++) out[i] = Math.max(0, (grid[i] as number) / max);
  return out;
}

/**
 * Where each output pixel along one axis of `size` pixels samples a grid of `gridSize` cells:
 * the two cells either side of it and the weight of the second, with each grid value at the
 * centre of its cell (as Grad-CAM cells cover the image), clamped at the edges. Computed once per
 * axis, so the per-pixel loop is two table look-ups and a multiply-add.
 */
function axisWeights(gridSize: number, size: number, coverage: GridCoverage = WHOLE_AXIS) {
  const lo = new Int32Array(size);
  const hi = new Int32Array(size);
  const w = new Float64Array(size);
  // The grid spans pixels coverage.start·size to coverage.end·size (all of them by default).
  const first = coverage.start * size;
  const scale = gridSize / ((coverage.end - coverage.start) * size);
  for (let i = 0; i < size; i++) {
    const g = Math.min(gridSize - 1, Math.max(0, (i + 0.5 - first) * scale - 0.5));
    const g0 = Math.floor(g);
    lo[i] = g0;
    hi[i] = Math.min(gridSize - 1, g0 + 1);
    w[i] = g - g0;
  }
  return { lo, hi, w };
}

/** Bilinear upsampling of a square grid to width×height (cell centres on the grid values, clamped edges). */
export function upsampleGrid(
  grid: Float32Array,
  gridSize: number,
  width: number,
  height: number,
  coverage: GridCoverage = WHOLE_AXIS,
): Float32Array {
  const out = new Float32Array(width * height);
  const cols = axisWeights(gridSize, width, coverage);
  const rows = axisWeights(gridSize, height, coverage);
  for (let y = 0; y < height; y++) {
    const r0 = (rows.lo[y] as number) * gridSize;
    const r1 = (rows.hi[y] as number) * gridSize;
    const fy = rows.w[y] as number;
    const line = y * width;
    for (let x = 0; x < width; x++) {
      const x0 = cols.lo[x] as number;
      const x1 = cols.hi[x] as number;
      const fx = cols.w[x] as number;
      const top = (grid[r0 + x0] as number) * (1 - fx) + (grid[r0 + x1] as number) * fx;
      const bottom = (grid[r1 + x0] as number) * (1 - fx) + (grid[r1 + x1] as number) * fx;
      out[line + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/**
 * Blends the colour-mapped grid over RGB pixels, half and half: each pixel's heat is the grid
 * upsampled bilinearly ({@link upsampleGrid}'s sampling, rounded to float32 as it stores values,
 * so the bytes are the same), looked up in Turbo, and the pixel becomes round((pixel + colour) / 2)
 * per channel. The grid is interpolated along x once per grid row here; the per-pixel work runs in
 * the WebAssembly kernel ({@link blendRows}). `out` may be `rgb` itself: the renderer blends in
 * place, saving a frame-sized allocation per image and the garbage collections it causes.
 */
export function overlayHeatmap(
  rgb: Uint8Array,
  width: number,
  height: number,
  grid: Float32Array,
  gridSize: number,
  out: Uint8Array = Buffer.allocUnsafe(width * height * 3),
  coverage: GridCoverage = WHOLE_AXIS,
): Uint8Array {
  if (rgb.length !== width * height * 3 || out.length !== rgb.length) {
    throw new RangeError(
      `expected ${width * height * 3} RGB bytes for ${width}×${height}, got ${rgb.length}`,
    );
  }
  const cols = axisWeights(gridSize, width, coverage);
  const rows = axisWeights(gridSize, height, coverage);
  // along[r][x]: grid row r interpolated at output column x.
  const along = Array.from({ length: gridSize }, (_, r) => {
    const line = new Float64Array(width);
    for (let x = 0; x < width; x++) {
      const fx = cols.w[x] as number;
      line[x] =
        (grid[r * gridSize + (cols.lo[x] as number)] as number) * (1 - fx) +
        (grid[r * gridSize + (cols.hi[x] as number)] as number) * fx;
    }
    return line;
  });
  blendRows(rgb, width, height, along, rows, out);
  return out;
}

export interface HeatmapOptions {
  /** @defaultValue "jpeg" */
  format?: HeatmapFileFormat;
  /** JPEG and WebP quality, 1–100. @defaultValue 85 */
  quality?: number;
  /** The part of the image the grid covers (a cropping model's centre). @defaultValue the whole image */
  coverage?: GridCoverage;
}

/**
 * Encodes 8-bit RGB pixels in a heatmap format. JPEG goes to libjpeg-turbo on the calling thread
 * ({@link jpegCodec}; libvips where it is not built), WebP through libvips (on libuv's pool), PNG
 * through {@link encodeRgbPng}. Both lossy encoders are set for CPU, not the last percent of bytes
 * (bench/cpu-per-image.mjs, 640×480 overlays, one libvips thread; libvips figures): JPEG without Huffman-table
 * optimisation 2.4 CPU-ms and 116 KiB instead of 5.2 ms and 111 KiB; WebP at effort 0 15 ms and
 * 115 KiB instead of 47 ms and 114 KiB (sharp's defaults).
 */
export async function encodeHeatmap(
  rgb: Buffer,
  width: number,
  height: number,
  format: HeatmapFileFormat,
  quality: number,
): Promise<Buffer> {
  if (format === "png") return encodeRgbPng(rgb, width, height);
  if (format === "jpeg" && jpegCodec) return jpegCodec.encodeRgb(rgb, width, height, quality);
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return (
    format === "jpeg" ? image.jpeg({ quality, optimiseCoding: false }) : image.webp({ quality, effort: 0 })
  ).toBuffer();
}

/**
 * Renders the Grad-CAM overlay for one decoded image ({@link PreparedImage.heatmapBase}): the
 * normalised grid upsampled to it, colour-mapped with Turbo and blended on top, encoded
 * in `options.format`. The blend is drawn into `image.data` itself: the caller's pixels become
 * the overlay.
 */
export async function renderHeatmap(
  image: RgbImage,
  gradcam: ArrayLike<number>,
  gridSize: number,
  options: HeatmapOptions = {},
): Promise<Buffer> {
  const { data, width, height } = image;
  overlayHeatmap(data, width, height, normaliseGrid(gradcam), gridSize, data, options.coverage ?? WHOLE_AXIS);
  return encodeHeatmap(data, width, height, options.format ?? "jpeg", options.quality ?? 85);
}
