import {
  type ChunkCounts,
  type ChunkImage,
  type ChunkJobData,
  describeError,
  type HeatmapFormat,
  type ImageErrorReason,
  type Logger,
  MemscoreError,
  type ResultRow,
} from "@memscore/shared";
import type { PipelinePool } from "./pipeline-pool.js";
import type { Semaphore } from "./semaphore.js";

/** Everything a chunk needs from its worker: shared by all chunks in flight. */
export interface ChunkContext {
  /** The pipeline threads that carry each image from fetch to put. */
  pipeline: PipelinePool;
  /** Bounds images between fetch and put across all chunks: the worker's memory bound. */
  inFlight: Semaphore;
  /** The model's sha256, for the rows of images that never reached it (retries exhausted). */
  modelSha256?: string;
  logger: Logger;
}

/** The heatmap format of jobs that name none: they come from producers that only wrote PNG. */
const UNNAMED_HEATMAP_FORMAT: HeatmapFormat = "png";

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

/**
 * Processes a chunk: every image is handed to the pipeline threads at once (bounded by the
 * worker-wide in-flight limit), so images of all chunks share inference batches. The main thread
 * only dispatches and collects rows. Resolves with one row per image; rejects with
 * {@link ChunkRetryError} if any image hit a transient fault, after the others have finished.
 */
export async function processChunk(
  ctx: ChunkContext,
  job: ChunkJobData,
  attempt: { rerun: boolean; final: boolean },
): Promise<ChunkOutcome> {
  let reused = 0;
  let reusedFailed = 0;
  const heatmapFormat = job.heatmapFormat ?? UNNAMED_HEATMAP_FORMAT;
  const settled = await Promise.allSettled(
    job.images.map((image) =>
      ctx.inFlight.use(async () => {
        const result = await ctx.pipeline.score({
          kind: "s3",
          runId: job.runId,
          outputPrefix: job.outputPrefix,
          heatmapFormat,
          image,
          rerun: attempt.rerun,
        });
        if (result.reused) {
          reused++;
          if (result.row.status !== "scored") reusedFailed++;
        }
        return result.row;
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
            ...(ctx.modelSha256 && { model_sha256: ctx.modelSha256 }),
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
