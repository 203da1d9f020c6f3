import { mkdir, open, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  describeError,
  formatS3Uri,
  type HeatmapFormat,
  heatmapContentType,
  heatmapSuffix,
  ImageError,
  type ImageErrorReason,
  type ImageRecord,
  MemscoreError,
  outputLocations,
  parseS3Uri,
  RECORD_METADATA,
  type ResultRow,
  S3UriError,
  type Storage,
} from "@memscore/shared";
import { type GridCoverage, normaliseGrid, renderHeatmap } from "./heatmap.js";
import type { InferenceClient } from "./inference-client.js";
import type { ModelInfo } from "./model-runtime.js";
import type {
  FailedFile,
  FileImageResult,
  FileImageTask,
  LocalScoreResult,
  PipelineSettings,
  S3ImageResult,
  S3ImageTask,
  StageSeconds,
} from "./pipeline-protocol.js";
import { inputCoverage, prepareImage, rgbToTensor } from "./preprocess.js";
import { recordModel } from "./run-model.js";
import type { Stage } from "./stage-timings.js";

/**
 * A normalised Grad-CAM grid as rows, rounded to 1e-6: the one form the grid takes in S3 records
 * and in `memscore score --json` alike, so the two agree value for value.
 */
export function gradcamRows(raw: Float32Array, size: number): number[][] {
  const grid = normaliseGrid(raw);
  const rows: number[][] = [];
  for (let r = 0; r < size; r++) {
    rows.push(Array.from(grid.subarray(r * size, (r + 1) * size), (v) => Math.round(v * 1e6) / 1e6));
  }
  return rows;
}

/** The results-table row of a record. */
export function rowFromRecord(record: ImageRecord): ResultRow {
  if (record.status === "scored") {
    return {
      uri: record.uri,
      status: "scored",
      score: record.score as number,
      ...(record.heatmap && { heatmap: record.heatmap }),
      model_sha256: record.model.sha256,
    };
  }
  return {
    uri: record.uri,
    status: "error",
    error_reason: String(record.error?.reason ?? "unknown"),
    error_message: record.error?.message ?? "",
    model_sha256: record.model.sha256,
  };
}

/** Times each stage of one image. */
class StageClock {
  readonly seconds: StageSeconds = {};
  async time<T>(stage: Stage, task: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await task();
    } finally {
      this.seconds[stage] = (this.seconds[stage] ?? 0) + (performance.now() - start) / 1000;
    }
  }
}

/** An image's score and raw Grad-CAM, with the facts of the image and its rendered overlay. */
interface ScoredBytes {
  score: number;
  gradcam: Float32Array;
  width: number;
  height: number;
  format: string;
  heatmap: Buffer | undefined;
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

/**
 * The per-image work of a pipeline thread: fetch → decode + resize → infer (batched in the
 * inference thread with images from every pipeline thread) → render → put. Everything here runs
 * in the pipeline thread that holds it; only the model's input crosses to the inference thread.
 */
export class ImageScorer {
  constructor(
    private readonly model: ModelInfo,
    private readonly inference: InferenceClient,
    private readonly settings: PipelineSettings,
    private readonly storage: Storage | undefined,
  ) {
    this.coverage = inputCoverage(model);
  }

  /** The part of each image the model sees, which its Grad-CAM grid covers. */
  private readonly coverage: GridCoverage;

  /** Decodes once, infers, and renders the overlay unless the format is `none`. Throws ImageError. */
  private async scoreBytes(bytes: Buffer, format: HeatmapFormat, clock: StageClock): Promise<ScoredBytes> {
    const prepared = await clock.time("decode", async () => {
      const image = await prepareImage(
        bytes,
        this.model,
        { maxPixels: this.settings.maxImagePixels },
        this.settings.heatmapMaxSide,
      );
      return { image, input: rgbToTensor(image.rgb, this.model, this.inference.inputTensor()) };
    });
    const { image } = prepared;
    const output = await this.inference.infer(prepared.input);
    clock.seconds.infer = output.seconds;
    const heatmap =
      format === "none"
        ? undefined
        : await clock.time("render", () =>
            renderHeatmap(image.heatmapBase, output.gradcam, this.model.gridSize, {
              format,
              quality: this.settings.heatmapQuality,
              coverage: this.coverage,
            }),
          );
    return {
      score: output.score,
      gradcam: output.gradcam,
      width: image.width,
      height: image.height,
      format: image.format,
      heatmap,
    };
  }

  /**
   * Scores one image of a chunk and writes its outputs: the heatmap, then the record (written
   * last, so a visible record means complete outputs). A permanent failure becomes an error
   * record and row; a transient one (S3 5xx, timeouts) rejects, so the chunk is retried.
   */
  async scoreS3(task: S3ImageTask): Promise<S3ImageResult> {
    const storage = this.requireStorage();
    const clock = new StageClock();
    if (task.rerun) {
      const previous = await this.previousOutcome(storage, task);
      if (previous) return { row: previous, reused: true, stages: clock.seconds };
    }
    const { image } = task;
    const base = {
      uri: image.uri,
      model: recordModel(this.model),
      run_id: task.runId,
      started_at: new Date().toISOString(),
    };
    let etag = "";
    let input: ImageRecord["input"] = {};
    try {
      // First: outputs that S3 could never store (a key over 1024 bytes) are known before any work.
      const locations = outputLocations(task.outputPrefix, image.rel, task.heatmapFormat);
      if (image.size !== undefined && image.size > this.settings.maxImageBytes) {
        throw new ImageError(
          "too_large",
          `${image.size} bytes exceeds the limit of ${this.settings.maxImageBytes}`,
        );
      }
      const source = parseS3Uri(image.uri);
      const fetched = await clock.time("fetch", () => storage.get(source, this.settings.maxImageBytes));
      etag = fetched.etag;
      input = { etag, size: fetched.size };
      const scored = await this.scoreBytes(fetched.body, task.heatmapFormat, clock);
      input = { ...input, width: scored.width, height: scored.height, format: scored.format };
      let max = 0;
      for (const v of scored.gradcam) max = Math.max(max, v);
      const record: ImageRecord = {
        ...base,
        status: "scored",
        score: scored.score,
        gradcam: gradcamRows(scored.gradcam, this.model.gridSize),
        gradcam_max: max,
        ...(locations.heatmap && { heatmap: formatS3Uri(locations.heatmap) }),
        input,
        finished_at: new Date().toISOString(),
      };
      await clock.time("put", async () => {
        if (locations.heatmap && scored.heatmap && task.heatmapFormat !== "none") {
          await storage.put(locations.heatmap, scored.heatmap, {
            contentType: heatmapContentType(task.heatmapFormat),
          });
        }
        await this.putRecord(storage, task, record, etag);
      });
      return { row: rowFromRecord(record), reused: false, stages: clock.seconds };
    } catch (error) {
      const reason = permanentReason(error);
      if (reason === undefined) throw error;
      const record: ImageRecord = {
        ...base,
        status: "error",
        error: { reason, message: (error as Error).message },
        input,
        finished_at: new Date().toISOString(),
      };
      // An invalid URI has no place for outputs that stays inside the output prefix.
      if (reason !== "invalid_uri") {
        await clock.time("put", () => this.putRecord(storage, task, record, etag));
      }
      return { row: rowFromRecord(record), reused: false, stages: clock.seconds };
    }
  }

  /** Scores one local file; its heatmap, when asked for, goes under the task's directory. */
  async scoreFile(task: FileImageTask): Promise<FileImageResult> {
    const clock = new StageClock();
    const result = await this.scoreFileOutcome(task, clock);
    return { result, stages: clock.seconds };
  }

  private async scoreFileOutcome(task: FileImageTask, clock: StageClock): Promise<LocalScoreResult> {
    try {
      const bytes = await clock.time("fetch", () => readImageFile(task.path, this.settings.maxImageBytes));
      const format = task.heatmapDir === undefined ? "none" : task.heatmapFormat;
      const scored = await this.scoreBytes(bytes, format, clock);
      const result: LocalScoreResult = {
        file: task.name,
        score: scored.score,
        gradcam: gradcamRows(scored.gradcam, this.model.gridSize),
        width: scored.width,
        height: scored.height,
      };
      if (task.heatmapDir !== undefined && scored.heatmap && format !== "none") {
        // The heatmap stays inside the directory whatever the file's name says.
        const target = join(
          task.heatmapDir,
          task.name.replace(/^(\.\.?\/)+|^\/+/g, "") + heatmapSuffix(format),
        );
        await clock.time("put", async () => {
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, scored.heatmap as Buffer);
        });
        result.heatmap = target;
      }
      return result;
    } catch (error) {
      return fileFailure(task.name, error);
    }
  }

  private requireStorage(): Storage {
    if (!this.storage) throw new MemscoreError("no_storage", "this pipeline thread has no S3 access");
    return this.storage;
  }

  private async putRecord(storage: Storage, task: S3ImageTask, record: ImageRecord, etag: string) {
    const { record: location } = outputLocations(task.outputPrefix, task.image.rel, task.heatmapFormat);
    await storage.put(location, JSON.stringify(record), {
      contentType: "application/json",
      // ASCII-only values: S3 user metadata does not carry other characters reliably.
      metadata: {
        [RECORD_METADATA.inputEtag]: etag,
        [RECORD_METADATA.modelSha256]: this.model.sha256,
        [RECORD_METADATA.status]: record.status,
        [RECORD_METADATA.heatmapFormat]: task.heatmapFormat,
      },
    });
  }

  /**
   * On a retried or re-run chunk, an image whose record this run already wrote with this model is
   * not scored again: the record is its outcome. Records are written last (after the heatmap), so
   * a visible record means the image's outputs are complete.
   */
  private async previousOutcome(storage: Storage, task: S3ImageTask): Promise<ResultRow | undefined> {
    let record: ReturnType<typeof outputLocations>["record"];
    try {
      ({ record } = outputLocations(task.outputPrefix, task.image.rel, task.heatmapFormat));
    } catch (error) {
      // No record can exist where none can be written: the image gets its invalid_uri again.
      if (error instanceof S3UriError) return undefined;
      throw error;
    }
    const text = await storage.getText(record);
    if (!text) return undefined;
    try {
      const previous = JSON.parse(text) as ImageRecord;
      if (
        previous.run_id === task.runId &&
        previous.model?.sha256 === this.model.sha256 &&
        previous.uri === task.image.uri
      ) {
        return rowFromRecord(previous);
      }
    } catch {
      // An unreadable record is simply rewritten.
    }
    return undefined;
  }
}

/** The reason of a failure that retrying cannot fix, or undefined for a transient one. */
function permanentReason(error: unknown): ImageErrorReason | undefined {
  if (error instanceof ImageError) return error.reason;
  if (error instanceof MemscoreError && error.code === "invalid_uri") return "invalid_uri";
  return undefined;
}

/** A file's failure as a result: an image error keeps its reason, anything else is decode_failed. */
export function fileFailure(file: string, error: unknown): FailedFile {
  if (error instanceof ImageError) return { file, error: { reason: error.reason, message: error.message } };
  return { file, error: { reason: "decode_failed", message: describeError(error) } };
}
