import type { HeatmapFileFormat } from "@memscore/shared";
import sharp from "sharp";
import { TURBO_LUT } from "./colormap.js";
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
 * The blended value of every (heat level, image byte) pair, one table per channel:
 * round(image × (1 − alpha) + Turbo(level)[channel] × alpha), indexed level × 256 + image.
 * Colour-mapping and blending become one look-up per channel (3 × 64 KiB, kept per alpha).
 */
const overlayTables = new Map<number, [Uint8Array, Uint8Array, Uint8Array]>();
function overlayTable(alpha: number): [Uint8Array, Uint8Array, Uint8Array] {
  let tables = overlayTables.get(alpha);
  if (!tables) {
    const channel = (c: number) => {
      const table = new Uint8Array(256 * 256);
      for (let level = 0; level < 256; level++) {
        const colour = TURBO_LUT[level * 3 + c] as number;
        for (let d = 0; d < 256; d++) table[level * 256 + d] = Math.round(d * (1 - alpha) + colour * alpha);
      }
      return table;
    };
    tables = [channel(0), channel(1), channel(2)];
    if (overlayTables.size >= 8) overlayTables.clear();
    overlayTables.set(alpha, tables);
  }
  return tables;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Turbo as one little-endian word per level: red | green << 8 | blue << 16. */
const TURBO_WORDS = Uint32Array.from(
  { length: 256 },
  (_, level) =>
    (TURBO_LUT[level * 3] as number) |
    ((TURBO_LUT[level * 3 + 1] as number) << 8) |
    ((TURBO_LUT[level * 3 + 2] as number) << 16),
);

/** Per-pixel heat levels, reused between images of this thread (one byte per pixel). */
let levelScratch = new Uint8Array(0);

/**
 * The default blend, round((image + colour) / 2), which is (image + colour + 1) >> 1 per byte,
 * four bytes at a time: (a | b) − (((a ^ b) >> 1) & 0x7f7f7f7f) on 32-bit words is that average in
 * every byte lane. Four RGB pixels are three words, so the colours of four pixels are packed into
 * three words from {@link TURBO_WORDS} and blended with three reads and three writes, where the
 * byte loop did twelve of each (half the overlay's CPU, bench/cpu-per-image.mjs). The heat levels
 * are computed first, one pass, as the byte loop computed them; identical bytes.
 */
function blendHalfSwar(
  rgb: Uint8Array,
  width: number,
  height: number,
  along: Float64Array[],
  rows: { lo: Int32Array; hi: Int32Array; w: Float64Array },
  out: Uint8Array,
): void {
  const pixels = width * height;
  if (levelScratch.length < pixels) levelScratch = new Uint8Array(pixels);
  const levels = levelScratch;
  for (let y = 0, i = 0; y < height; y++) {
    const top = along[rows.lo[y] as number] as Float64Array;
    const bottom = along[rows.hi[y] as number] as Float64Array;
    const fy = rows.w[y] as number;
    const fTop = 1 - fy;
    for (let x = 0; x < width; x++, i++) {
      // heat·255 of a float32 heat is exact in float64, so adding 0.5 and truncating is Math.round.
      levels[i] = (Math.fround((top[x] as number) * fTop + (bottom[x] as number) * fy) * 255 + 0.5) | 0;
    }
  }
  const groups = pixels >> 2;
  const src = new Uint32Array(rgb.buffer, rgb.byteOffset, groups * 3);
  const dst = new Uint32Array(out.buffer, out.byteOffset, groups * 3);
  for (let g = 0, i = 0, w = 0; g < groups; g++, i += 4, w += 3) {
    const c0 = TURBO_WORDS[levels[i] as number] as number;
    const c1 = TURBO_WORDS[levels[i + 1] as number] as number;
    const c2 = TURBO_WORDS[levels[i + 2] as number] as number;
    const c3 = TURBO_WORDS[levels[i + 3] as number] as number;
    const b0 = c0 | (c1 << 24);
    const b1 = (c1 >>> 8) | (c2 << 16);
    const b2 = (c2 >>> 16) | (c3 << 8);
    const a0 = src[w] as number;
    const a1 = src[w + 1] as number;
    const a2 = src[w + 2] as number;
    dst[w] = (a0 | b0) - (((a0 ^ b0) >>> 1) & 0x7f7f7f7f);
    dst[w + 1] = (a1 | b1) - (((a1 ^ b1) >>> 1) & 0x7f7f7f7f);
    dst[w + 2] = (a2 | b2) - (((a2 ^ b2) >>> 1) & 0x7f7f7f7f);
  }
  // The last pixels of an image whose pixel count is not a multiple of four, byte by byte.
  for (let i = groups * 4, p = i * 3; i < pixels; i++, p += 3) {
    const colour = (levels[i] as number) * 3;
    out[p] = ((rgb[p] as number) + (TURBO_LUT[colour] as number) + 1) >> 1;
    out[p + 1] = ((rgb[p + 1] as number) + (TURBO_LUT[colour + 1] as number) + 1) >> 1;
    out[p + 2] = ((rgb[p + 2] as number) + (TURBO_LUT[colour + 2] as number) + 1) >> 1;
  }
}

/**
 * Blends the colour-mapped grid over RGB pixels: each pixel's heat is the grid upsampled
 * bilinearly ({@link upsampleGrid}'s sampling, rounded to float32 as it stores values, so the
 * bytes are the same), looked up in Turbo and blended with weight `alpha`. Fused into one pass
 * with the grid interpolated along x once per grid row, because the per-pixel work of a separate
 * upsample (a 4-byte-per-pixel array, four reads and three multiply-adds) was most of the overlay's
 * CPU; colour map and blend are one table look-up per channel, or at the default alpha of 0.5
 * word-wide arithmetic ({@link blendHalfSwar}). `out` may be `rgb` itself (each
 * byte is read before it is written): the renderer blends in place, saving a frame-sized
 * allocation per image and the garbage collections it causes.
 */
export function overlayHeatmap(
  rgb: Uint8Array,
  width: number,
  height: number,
  grid: Float32Array,
  gridSize: number,
  alpha: number,
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
  if (alpha === 0.5 && LITTLE_ENDIAN && rgb.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
    blendHalfSwar(rgb, width, height, along, rows, out);
    return out;
  }
  const [red, green, blue] = overlayTable(alpha);
  for (let y = 0, p = 0; y < height; y++) {
    const top = along[rows.lo[y] as number] as Float64Array;
    const bottom = along[rows.hi[y] as number] as Float64Array;
    const fy = rows.w[y] as number;
    for (let x = 0; x < width; x++, p += 3) {
      const heat = Math.fround((top[x] as number) * (1 - fy) + (bottom[x] as number) * fy);
      const level = Math.round(heat * 255) << 8;
      out[p] = red[level | (rgb[p] as number)] as number;
      out[p + 1] = green[level | (rgb[p + 1] as number)] as number;
      out[p + 2] = blue[level | (rgb[p + 2] as number)] as number;
    }
  }
  return out;
}

export interface HeatmapOptions {
  /** Weight of the colour map in the blend. @defaultValue 0.5 */
  alpha?: number;
  /** @defaultValue "jpeg" */
  format?: HeatmapFileFormat;
  /** JPEG and WebP quality, 1–100. @defaultValue 85 */
  quality?: number;
  /** The part of the image the grid covers (a cropping model's centre). @defaultValue the whole image */
  coverage?: GridCoverage;
}

/**
 * Encodes 8-bit RGB pixels in a heatmap format. JPEG and WebP go through libvips (on libuv's
 * pool, off the calling thread); PNG through {@link encodeRgbPng}. Both lossy encoders are set
 * for CPU, not the last percent of bytes (bench/cpu-per-image.mjs, 640×480 overlays, one libvips
 * thread): JPEG without Huffman-table optimisation 2.4 CPU-ms and 116 KiB instead of 5.2 ms and
 * 111 KiB; WebP at effort 0 15 ms and 115 KiB instead of 47 ms and 114 KiB (sharp's defaults).
 */
export async function encodeHeatmap(
  rgb: Buffer,
  width: number,
  height: number,
  format: HeatmapFileFormat,
  quality: number,
): Promise<Buffer> {
  if (format === "png") return encodeRgbPng(rgb, width, height);
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return (
    format === "jpeg" ? image.jpeg({ quality, optimiseCoding: false }) : image.webp({ quality, effort: 0 })
  ).toBuffer();
}

/**
 * Renders the Grad-CAM overlay for one decoded image ({@link PreparedImage.heatmapBase}): the
 * normalised grid upsampled to it, colour-mapped with Turbo and alpha-blended on top, encoded
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
  overlayHeatmap(
    data,
    width,
    height,
    normaliseGrid(gradcam),
    gridSize,
    options.alpha ?? 0.5,
    data,
    options.coverage ?? WHOLE_AXIS,
  );
  return encodeHeatmap(data, width, height, options.format ?? "jpeg", options.quality ?? 85);
}
