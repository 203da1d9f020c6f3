import {
  type ChunkCounts,
  type ChunkImage,
  type ChunkJobData,
  describeError,
  formatS3Uri,
  ImageError,
  type ImageErrorReason,
  type ImageRecord,
  type Logger,
  MemscoreError,
  outputLocations,
  parseS3Uri,
  RECORD_METADATA,
  type ResultRow,
  type Storage,
} from "@memscore/shared";
import { normaliseGrid } from "./heatmap.js";
import type { InferenceEngine } from "./inference-engine.js";
import type { ModelInfo } from "./model-runtime.js";
import { prepareImage } from "./preprocess.js";
import type { HeatmapRenderer } from "./render-pool.js";
import type { Semaphore } from "./semaphore.js";
import { type StageObserver, timed } from "./stage-timings.js";

/** Everything a chunk needs from its worker: shared by all chunks in flight. */
export interface ChunkContext {
  storage: Storage;
  engine: InferenceEngine;
  /** Renders heatmap overlays: on the main thread or in a pool of render threads. */
  render: HeatmapRenderer;
  model: ModelInfo;
  limits: { maxImageBytes: number; maxImagePixels: number; heatmapMaxSide: number };
  /** Bounds images between fetch and put across all chunks: the worker's memory bound. */
  inFlight: Semaphore;
  observe?: StageObserver;
  logger: Logger;
}

/** What a chunk produced: one row per image, in chunk order, and the counts for the run. */
export interface ChunkOutcome {
  rows: ResultRow[];
  counts: ChunkCounts;
  /** Images whose earlier outputs (from a previous attempt) were reused. */
  reused: number;
  /** Of `reused`, those whose earlier outcome was an error (metrics count them apart). */
  reusedFailed: number;
}

/** Some images hit transient faults: the chunk must be retried (finished images are reused). */
export class ChunkRetryError extends MemscoreError {
  constructor(failed: number, total: number, first: string) {
    super(
      "chunk_retry",
      `${failed} of ${total} images hit transient faults (first: ${first}); the chunk will be retried`,
    );
  }
}

function gridRows(grid: Float32Array, size: number): number[][] {
  const rows: number[][] = [];
  for (let r = 0; r < size; r++) {
    rows.push(Array.from(grid.subarray(r * size, (r + 1) * size), (v) => Math.round(v * 1e6) / 1e6));
  }
  return rows;
}

function rowFromRecord(record: ImageRecord): ResultRow {
  if (record.status === "scored") {
    return {
      uri: record.uri,
      status: "scored",
      score: record.score as number,
      ...(record.heatmap && { heatmap: record.heatmap }),
    };
  }
  return {
    uri: record.uri,
    status: "error",
    error_reason: String(record.error?.reason ?? "unknown"),
    error_message: record.error?.message ?? "",
  };
}

/**
 * On a retried or re-run chunk, an image whose record this run already wrote with this model is
 * not scored again: the record is its outcome. Records are written last (after the heatmap), so
 * a visible record means the image's outputs are complete.
 */
async function previousOutcome(
  ctx: ChunkContext,
  job: ChunkJobData,
  image: ChunkImage,
): Promise<ResultRow | undefined> {
  const { record } = outputLocations(job.outputPrefix, image.rel);
  const text = await ctx.storage.getText(record);
  if (!text) return undefined;
  try {
    const previous = JSON.parse(text) as ImageRecord;
    if (
      previous.run_id === job.runId &&
      previous.model?.sha256 === ctx.model.sha256 &&
      previous.uri === image.uri
    ) {
      return rowFromRecord(previous);
    }
  } catch {
    // An unreadable record is simply rewritten.
  }
  return undefined;
}

function modelSummary(model: ModelInfo): ImageRecord["model"] {
  return {
    name: model.name,
    version: model.version,
    sha256: model.sha256,
    trained: model.trained,
    training_data: model.trainingData,
    license: model.license,
  };
}

async function putRecord(
  ctx: ChunkContext,
  job: ChunkJobData,
  image: ChunkImage,
  record: ImageRecord,
  etag: string,
) {
  const { record: location } = outputLocations(job.outputPrefix, image.rel);
  await ctx.storage.put(location, JSON.stringify(record), {
    contentType: "application/json",
    // ASCII-only values: S3 user metadata does not carry other characters reliably.
    metadata: {
      [RECORD_METADATA.inputEtag]: etag,
      [RECORD_METADATA.modelSha256]: ctx.model.sha256,
      [RECORD_METADATA.status]: record.status,
    },
  });
}

/**
 * Scores one image end to end: fetch → decode → infer (batched with other images) → render →
 * put heatmap → put record. A permanent failure becomes an error record and row; a transient
 * one is rethrown so the chunk is retried.
 */
async function processImage(ctx: ChunkContext, job: ChunkJobData, image: ChunkImage): Promise<ResultRow> {
  const startedAt = new Date().toISOString();
  const base = { uri: image.uri, model: modelSummary(ctx.model), run_id: job.runId, started_at: startedAt };
  let etag = "";
  let input: ImageRecord["input"] = {};
  try {
    if (image.size !== undefined && image.size > ctx.limits.maxImageBytes) {
      throw new ImageError(
        "too_large",
        `${image.size} bytes exceeds the limit of ${ctx.limits.maxImageBytes}`,
      );
    }
    const source = parseS3Uri(image.uri);
    const fetched = await timed("fetch", ctx.observe, () =>
      ctx.storage.get(source, ctx.limits.maxImageBytes),
    );
    etag = fetched.etag;
    input = { etag, size: fetched.size };
    const prepared = await timed("decode", ctx.observe, () =>
      prepareImage(
        fetched.body,
        ctx.model,
        { maxPixels: ctx.limits.maxImagePixels },
        ctx.limits.heatmapMaxSide,
      ),
    );
    input = { ...input, width: prepared.width, height: prepared.height, format: prepared.format };
    const output = await ctx.engine.infer(prepared.rgb);
    const png = await timed("render", ctx.observe, () =>
      ctx.render(prepared.heatmapBase, output.gradcam, ctx.model.gridSize),
    );
    const { heatmap } = outputLocations(job.outputPrefix, image.rel);
    let max = 0;
    for (const v of output.gradcam) max = Math.max(max, v);
    const record: ImageRecord = {
      ...base,
      status: "scored",
      score: output.score,
      gradcam: gridRows(normaliseGrid(output.gradcam), ctx.model.gridSize),
      gradcam_max: max,
      heatmap: formatS3Uri(heatmap),
      input,
      finished_at: new Date().toISOString(),
    };
    await timed("put", ctx.observe, async () => {
      await ctx.storage.put(heatmap, png, { contentType: "image/png" });
      await putRecord(ctx, job, image, record, etag);
    });
    return rowFromRecord(record);
  } catch (error) {
    if (!(error instanceof ImageError) && !(error instanceof MemscoreError && error.code === "invalid_uri"))
      throw error;
    const reason = (error instanceof ImageError ? error.reason : "invalid_uri") as ImageErrorReason;
    const record: ImageRecord = {
      ...base,
      status: "error",
      error: { reason, message: error.message },
      input,
      finished_at: new Date().toISOString(),
    };
    if (reason !== "invalid_uri") {
      await timed("put", ctx.observe, () => putRecord(ctx, job, image, record, etag));
    }
    return rowFromRecord(record);
  }
}

/**
 * Processes a chunk: every image concurrently (bounded by the worker-wide in-flight limit), so
 * images of all chunks share inference batches. Resolves with one row per image; rejects with
 * {@link ChunkRetryError} if any image hit a transient fault, after the others have finished.
 */
export async function processChunk(
  ctx: ChunkContext,
  job: ChunkJobData,
  attempt: { rerun: boolean; final: boolean },
): Promise<ChunkOutcome> {
  let reused = 0;
  let reusedFailed = 0;
  const settled = await Promise.allSettled(
    job.images.map((image) =>
      ctx.inFlight.use(async () => {
        if (attempt.rerun) {
          const previous = await previousOutcome(ctx, job, image);
          if (previous) {
            reused++;
            if (previous.status !== "scored") reusedFailed++;
            return previous;
          }
        }
        return processImage(ctx, job, image);
      }),
    ),
  );
  const transient = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
  if (transient.length > 0 && !attempt.final) {
    ctx.logger.warn("chunk hit transient faults", {
      runId: job.runId,
      chunk: job.chunkIndex,
      failed: transient.length,
      error: describeError(transient[0]?.reason),
    });
    throw new ChunkRetryError(transient.length, job.images.length, describeError(transient[0]?.reason));
  }
  // On the last attempt, images still failing transiently get an error row: the run completes
  // and says exactly which images could not be read, rather than waiting forever.
  const rows = settled.map(
    (s, i): ResultRow =>
      s.status === "fulfilled"
        ? s.value
        : {
            uri: (job.images[i] as ChunkImage).uri,
            status: "error",
            error_reason: "retries_exhausted",
            error_message: describeError(s.reason),
          },
  );
  const counts: ChunkCounts = { scored: 0, failed: 0, failuresByReason: {} };
  for (const row of rows) {
    if (row.status === "scored") counts.scored++;
    else {
      counts.failed++;
      const reason = (row.error_reason ?? "unknown") as ImageErrorReason;
      counts.failuresByReason[reason] = (counts.failuresByReason[reason] ?? 0) + 1;
    }
  }
  return { rows, counts, reused, reusedFailed };
}
