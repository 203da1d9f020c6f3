import { access, copyFile, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { type ImageRecord, MemscoreError } from "@memscore/shared";
import type { LocalImageFile } from "./local-files.js";
import type { ModelMetadata } from "./model-metadata.js";
import type { FailedFile } from "./pipeline-protocol.js";
import { encodeRgbPng } from "./png-encoder.js";
import { DECODE_MAX_SIDE, prepareImage } from "./preprocess.js";
import { recordModel } from "./run-model.js";
import { fileFailure, readImageFile } from "./score-image.js";

/** Written next to the images: which model's geometry and normalisation they were made for. */
export const PREPROCESS_MANIFEST = "memscore-preprocess.json";

/** The model a preprocessed directory was made for, as its manifest records it. */
export type PreprocessModel = Pick<
  ModelMetadata,
  | "name"
  | "version"
  | "inputSize"
  | "resize"
  | "resizeKernel"
  | "mean"
  | "std"
  | "trained"
  | "trainingData"
  | "license"
> & { sha256: string };

/** The manifest's content (snake_case, read by model/preprocess.py). */
export interface PreprocessManifest {
  model: ImageRecord["model"];
  input_size: number;
  resize: "stretch" | "stretch-crop";
  resize_size: number | null;
  resize_kernel: string;
  mean: number[];
  std: number[];
  decode_max_side: number;
}

export interface PreprocessOptions {
  outDir: string;
  maxImageBytes: number;
  maxImagePixels: number;
  /** Images decoded at once. */
  concurrency: number;
}

/** One image written: its model input as an inputSize × inputSize RGB PNG. */
export interface PreprocessedFile {
  file: string;
  output: string;
}

export type PreprocessResult = PreprocessedFile | FailedFile;

/**
 * Where the preprocessed PNG of an image named `name` goes under `outDir`: `<name>.png`, as
 * heatmaps are `<name>.heatmap.png`. Leading `../` and `/` are dropped, so it stays inside.
 */
export function preprocessedPath(outDir: string, name: string): string {
  const inside = normalize(name).replace(/^([/\\]|\.\.([/\\]|$))+/, "");
  return join(outDir, `${inside}.png`);
}

function manifestFor(model: PreprocessModel): PreprocessManifest {
  return {
    model: recordModel(model),
    input_size: model.inputSize,
    resize: model.resize.kind,
    resize_size: model.resize.kind === "stretch-crop" ? model.resize.resizeSize : null,
    resize_kernel: model.resizeKernel,
    mean: [...model.mean],
    std: [...model.std],
    decode_max_side: DECODE_MAX_SIDE,
  };
}

/** The pixels depend on these only: a directory must not mix images made with different ones. */
function geometryOf(m: PreprocessManifest): string {
  return JSON.stringify([m.input_size, m.resize, m.resize_size, m.resize_kernel, m.decode_max_side]);
}

async function readManifest(outDir: string): Promise<PreprocessManifest | undefined> {
  const text = await readFile(join(outDir, PREPROCESS_MANIFEST), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as PreprocessManifest;
  } catch {
    throw new MemscoreError("preprocess_manifest", `${join(outDir, PREPROCESS_MANIFEST)} is not valid JSON`);
  }
}

/**
 * Writes each image's exact model input (the worker's decode, then the model's geometry, as
 * {@link prepareImage} makes it) as a lossless RGB PNG without a colour profile, so training
 * and evaluation read the very pixels the worker scores. Yields one result per file, in order;
 * a file that fails yields an error result and never stops the others. Refuses, before writing
 * anything, a directory already holding images made with another geometry.
 */
export async function* preprocessLocalFiles(
  files: readonly LocalImageFile[],
  model: PreprocessModel,
  options: PreprocessOptions,
): AsyncGenerator<PreprocessResult> {
  const previous = await readManifest(options.outDir);
  const manifest = manifestFor(model);
  if (previous && geometryOf(previous) !== geometryOf(manifest)) {
    throw new MemscoreError(
      "preprocess_geometry",
      `${options.outDir} already holds images preprocessed for ${previous.model?.name} ` +
        `(${previous.input_size}×${previous.input_size}, ${previous.resize}); use another --out for ${model.name}`,
    );
  }
  const limits = { maxPixels: options.maxImagePixels };
  const size = model.inputSize;
  for (let start = 0; start < files.length; start += options.concurrency) {
    const group = files.slice(start, start + options.concurrency);
    const results = await Promise.all(
      group.map(async (f): Promise<PreprocessResult> => {
        let rgb: Buffer;
        try {
          rgb = (await prepareImage(await readImageFile(f.path, options.maxImageBytes), model, limits)).rgb;
        } catch (error) {
          return fileFailure(f.name, error);
        }
        // A failure to write is the output directory's problem, not the image's: it stops the run.
        const output = preprocessedPath(options.outDir, f.name);
        await mkdir(dirname(output), { recursive: true });
        // Write then rename: an interrupted run never leaves a half-written PNG behind.
        const partial = `${output}.${process.pid}.partial`;
        await writeFile(partial, await encodeRgbPng(rgb, size, size));
        await rename(partial, output);
        return { file: f.name, output };
      }),
    );
    yield* results;
  }
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, PREPROCESS_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
}

/** The split files copied by {@link copySplitFiles}, and the images they name that are missing. */
export interface CopiedSplits {
  dir: string;
  files: string[];
  missing: string[];
}

/**
 * Copies LaMem-style split files (`splitsDir/*.txt`, lines `<image> <score>`) to
 * `outDir/splits/`, so `outDir` is a dataset model/train.py reads as it is, and lists the images
 * they name that have no preprocessed PNG (not found, or failed to decode).
 */
export async function copySplitFiles(splitsDir: string, outDir: string): Promise<CopiedSplits> {
  const names = (await readdir(splitsDir).catch(() => undefined))?.filter((f) => f.endsWith(".txt")).sort();
  if (!names || names.length === 0) {
    throw new MemscoreError("splits", `${splitsDir} holds no split files (*.txt)`);
  }
  const dir = join(outDir, "splits");
  await mkdir(dir, { recursive: true });
  const missing = new Set<string>();
  for (const name of names) {
    const text = await readFile(join(splitsDir, name), "utf8");
    for (const [i, line] of text.split("\n").entries()) {
      const parts = line.trim().split(/\s+/);
      if (parts[0] === "") continue;
      if (parts.length !== 2 || !Number.isFinite(Number(parts[1]))) {
        throw new MemscoreError(
          "splits",
          `${join(splitsDir, name)}:${i + 1}: expected "<image> <score>", got "${line.trim()}"`,
        );
      }
      const image = parts[0] as string;
      if (
        !missing.has(image) &&
        !(await access(preprocessedPath(outDir, image)).then(
          () => true,
          () => false,
        ))
      ) {
        missing.add(image);
      }
    }
    await copyFile(join(splitsDir, name), join(dir, name));
  }
  return { dir, files: names, missing: [...missing] };
}
