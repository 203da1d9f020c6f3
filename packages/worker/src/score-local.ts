import { mkdir, open, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describeError, ImageError, type ImageErrorReason } from "@memscore/shared";
import { normaliseGrid, renderHeatmap } from "./heatmap.js";
import type { LocalImageFile } from "./local-files.js";
import type { ModelRuntime } from "./model-runtime.js";
import { prepareImage, rgbToTensor } from "./preprocess.js";

export interface LocalScoreOptions {
  batchSize: number;
  maxImageBytes: number;
  maxImagePixels: number;
  /** When set, a Grad-CAM overlay PNG per image is written under this directory. */
  heatmapDir?: string;
  heatmapMaxSide: number;
}

export interface ScoredFile {
  file: string;
  score: number;
  /** Grad-CAM normalised to [0, 1], rows of the grid. */
  gradcam: number[][];
  width: number;
  height: number;
  heatmap?: string;
}

export interface FailedFile {
  file: string;
  error: { reason: ImageErrorReason; message: string };
}

export type LocalScoreResult = ScoredFile | FailedFile;

export function isFailed(result: LocalScoreResult): result is FailedFile {
  return "error" in result;
}

/** Reads a local file, refusing it by size before reading, with reasons a user can act on. */
export async function readImageFile(path: string, maxBytes: number): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ImageError("not_found", "no such file");
    if (code === "EACCES" || code === "EPERM") throw new ImageError("forbidden", "permission denied");
    if (code === "EISDIR") throw new ImageError("not_image", "is a directory");
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) throw new ImageError("too_large", `${size} bytes exceeds the limit of ${maxBytes}`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

function toRows(grid: Float32Array, size: number): number[][] {
  const rows: number[][] = [];
  for (let r = 0; r < size; r++) rows.push(Array.from(grid.subarray(r * size, (r + 1) * size)));
  return rows;
}

/** A file's failure as a result: an image error keeps its reason, anything else is decode_failed. */
export function failure(file: string, error: unknown): FailedFile {
  if (error instanceof ImageError) return { file, error: { reason: error.reason, message: error.message } };
  return { file, error: { reason: "decode_failed", message: describeError(error) } };
}

/**
 * Scores local image files in batches, without any queue, yielding one result per file in input
 * order. A file that cannot be scored yields an error result; it never stops the others.
 */
export async function* scoreLocalFiles(
  files: readonly LocalImageFile[],
  runtime: ModelRuntime,
  options: LocalScoreOptions,
): AsyncGenerator<LocalScoreResult> {
  const limits = { maxPixels: options.maxImagePixels };
  const { gridSize } = runtime.info;
  for (let start = 0; start < files.length; start += options.batchSize) {
    const group = files.slice(start, start + options.batchSize);
    const prepared = await Promise.all(
      group.map(async (f) => {
        try {
          const bytes = await readImageFile(f.path, options.maxImageBytes);
          return { file: f, image: await prepareImage(bytes, runtime.info, limits, options.heatmapMaxSide) };
        } catch (error) {
          return { file: f, failed: failure(f.name, error) };
        }
      }),
    );
    const ok = prepared.filter((p) => p.image !== undefined);
    const input = new Float32Array(ok.length * runtime.imageElements);
    for (const [i, p] of ok.entries())
      rgbToTensor(p.image!.rgb, runtime.info, input, i * runtime.imageElements);
    const outputs = ok.length > 0 ? await runtime.run(input, ok.length) : [];

    let next = 0;
    for (const p of prepared) {
      if (p.failed) {
        yield p.failed;
        continue;
      }
      const output = outputs[next++]!;
      const result: ScoredFile = {
        file: p.file.name,
        score: output.score,
        gradcam: toRows(normaliseGrid(output.gradcam), gridSize),
        width: p.image!.width,
        height: p.image!.height,
      };
      if (options.heatmapDir) {
        try {
          const png = await renderHeatmap(p.image!.heatmapBase, output.gradcam, gridSize);
          const target = join(
            options.heatmapDir,
            `${p.file.name.replace(/^(\.\.?\/)+|^\/+/g, "")}.heatmap.png`,
          );
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, png);
          result.heatmap = target;
        } catch (error) {
          yield failure(p.file.name, error);
          continue;
        }
      }
      yield result;
    }
  }
}
