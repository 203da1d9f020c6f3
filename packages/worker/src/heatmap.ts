import sharp from "sharp";
import { TURBO_LUT } from "./colormap.js";
import { type DecodeLimits, sharpInput } from "./preprocess.js";

/**
 * Scales a raw Grad-CAM grid to [0, 1] by dividing by its maximum. An all-zero (or non-positive)
 * grid stays all zero: there is no evidence to show, and inventing contrast would mislead.
 */
export function normaliseGrid(grid: ArrayLike<number>): Float32Array {
  let max = 0;
  for (let i = 0; i < grid.length; i++) max = Math.max(max, grid[i] as number);
  const out = new Float32Array(grid.length);
  if (max <= 0 || !Number.isFinite(max)) return out;
  for (let i = 0; i < grid.length; i++) out[i] = Math.max(0, (grid[i] as number) / max);
  return out;
}

/**
 * Bilinear upsampling of a square grid to width×height, treating each grid value as the centre
 * of its cell (as Grad-CAM cells cover the image), clamped at the edges.
 */
export function upsampleGrid(
  grid: Float32Array,
  gridSize: number,
  width: number,
  height: number,
): Float32Array {
  const out = new Float32Array(width * height);
  const sx = gridSize / width;
  const sy = gridSize / height;
  for (let y = 0; y < height; y++) {
    const gy = Math.min(gridSize - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(gy);
    const y1 = Math.min(gridSize - 1, y0 + 1);
    const fy = gy - y0;
    for (let x = 0; x < width; x++) {
      const gx = Math.min(gridSize - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(gx);
      const x1 = Math.min(gridSize - 1, x0 + 1);
      const fx = gx - x0;
      const top = (grid[y0 * gridSize + x0] as number) * (1 - fx) + (grid[y0 * gridSize + x1] as number) * fx;
      const bottom =
        (grid[y1 * gridSize + x0] as number) * (1 - fx) + (grid[y1 * gridSize + x1] as number) * fx;
      out[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

export interface HeatmapOptions extends DecodeLimits {
  /** Long side of the overlay; smaller images keep their size. @defaultValue 1024 */
  maxSide?: number;
  /** Weight of the colour map in the blend. @defaultValue 0.5 */
  alpha?: number;
  /** zlib level of the PNG (0–9). @defaultValue 6 */
  compressionLevel?: number;
}

/**
 * Renders the Grad-CAM overlay for one image: the image (oriented, at most `maxSide` on its long
 * side), the normalised grid upsampled to it, colour-mapped with Turbo and alpha-blended on top,
 * encoded as PNG.
 */
export async function renderHeatmap(
  imageBytes: Buffer,
  gradcam: ArrayLike<number>,
  gridSize: number,
  options: HeatmapOptions,
): Promise<Buffer> {
  const maxSide = options.maxSide ?? 1024;
  const alpha = options.alpha ?? 0.5;
  const { data, info } = await sharpInput(imageBytes, options)
    .rotate()
    .flatten({ background: "#ffffff" })
    .toColourspace("srgb")
    .resize(maxSide, maxSide, { fit: "inside", withoutEnlargement: true })
    .removeAlpha()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const heat = upsampleGrid(normaliseGrid(gradcam), gridSize, width, height);
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const level = Math.round((heat[i] as number) * 255) * 3;
    for (let c = 0; c < 3; c++) {
      out[i * 3 + c] = Math.round(
        (data[i * 3 + c] as number) * (1 - alpha) + (TURBO_LUT[level + c] as number) * alpha,
      );
    }
  }
  return sharp(out, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: options.compressionLevel ?? 6 })
    .toBuffer();
}
