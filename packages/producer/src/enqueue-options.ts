import {
  ConfigError,
  type HeatmapFormat,
  isHeatmapFormat,
  type Logger,
  MAX_CHUNK_IMAGES,
  parseS3Uri,
  RUN_ID_PATTERN,
  type Storage,
  silentLogger,
} from "@memscore/shared";
import type { Redis } from "ioredis";

/** What to enqueue: every object under an S3 prefix, or the URIs listed in a local manifest file. */
export type EnqueueInput = { prefix: string } | { manifest: string };

/** Progress of an enqueue, reported after every checkpoint and while waiting for workers. */
export interface EnqueueProgress {
  runId: string;
  /** Images read from the input by this call (enqueued, skipped, or waiting in a partial chunk). */
  imagesListed: number;
  /** Run totals, as checkpointed. */
  imagesEnqueued: number;
  imagesSkipped: number;
  chunksEnqueued: number;
  /** True while the producer waits because `maxPending` chunks are unfinished. */
  waitingForWorkers: boolean;
}

export interface EnqueueRunOptions {
  storage: Storage;
  /** Connection for the queue and the run state (not closed by enqueueRun). */
  redis: Redis;
  queueName: string;
  /** Must match RUN_ID_PATTERN; reusing a run id resumes that run. */
  runId: string;
  input: EnqueueInput;
  /** `s3://bucket/prefix/` for the run's outputs; the bucket must be allowed. */
  outputPrefix: string;
  /** Images per chunk job. @defaultValue 64 */
  chunkSize?: number;
  /** Most unfinished chunks of this run in Redis at any time. @defaultValue 1000 */
  maxPending?: number;
  /** Leave out images whose output record is current (same input ETag and model). @defaultValue false */
  skipExisting?: boolean;
  /** sha256 of the model the workers run; required with `skipExisting`. @defaultValue "" */
  modelSha256?: string;
  /** How the run stores heatmaps (put in every chunk job; workers follow it). @defaultValue "jpeg" */
  heatmapFormat?: HeatmapFormat;
  /** List (and skip-check) only: nothing is written to Redis or S3. @defaultValue false */
  dryRun?: boolean;
  /** @defaultValue silentLogger */
  logger?: Logger;
  onProgress?: (progress: EnqueueProgress) => void;
  /** Stops the enqueue between chunks; what was checkpointed is kept, so the run can resume. */
  signal?: AbortSignal;
  /** How often to re-check the backlog while waiting for workers, in ms. @defaultValue 150 */
  pollMs?: number;
  /** HEAD requests in flight for `skipExisting`. @defaultValue 32 */
  headConcurrency?: number;
  /** Most chunks per `addBulk` call (one Redis round trip each). @defaultValue 50 */
  chunksPerAdd?: number;
}

/** {@link EnqueueRunOptions} with every default applied and every value checked. */
export interface ResolvedEnqueueOptions
  extends Required<Omit<EnqueueRunOptions, "onProgress" | "signal">>,
    Pick<EnqueueRunOptions, "onProgress" | "signal"> {}

function positiveInteger(key: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(key, `expected an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

/**
 * Applies defaults and validates, so the enqueue loop only ever sees good values. Bucket checks
 * happen here too: a forbidden output bucket is refused before anything is listed or enqueued.
 */
export function resolveEnqueueOptions(options: EnqueueRunOptions): ResolvedEnqueueOptions {
  if (!RUN_ID_PATTERN.test(options.runId))
    throw new ConfigError("runId", "use 1 to 64 of letters, digits, '_', '.', '-'");
  const modelSha256 = (options.modelSha256 ?? "").toLowerCase();
  if (modelSha256 !== "" && !/^[0-9a-f]{64}$/.test(modelSha256))
    throw new ConfigError("modelSha256", "expected 64 hex digits");
  if (options.skipExisting && modelSha256 === "") {
    throw new ConfigError(
      "modelSha256",
      "skip-existing needs the model's sha256 to tell current records from stale ones",
    );
  }
  const heatmapFormat = options.heatmapFormat ?? "jpeg";
  if (!isHeatmapFormat(heatmapFormat))
    throw new ConfigError("heatmapFormat", "expected one of jpeg, png, webp, none");
  const output = parseS3Uri(options.outputPrefix);
  options.storage.assertAllowed(output.bucket);
  return {
    ...options,
    chunkSize: positiveInteger("chunkSize", options.chunkSize ?? 64, MAX_CHUNK_IMAGES),
    maxPending: positiveInteger("maxPending", options.maxPending ?? 1000, 10_000_000),
    skipExisting: options.skipExisting ?? false,
    modelSha256,
    heatmapFormat,
    dryRun: options.dryRun ?? false,
    logger: options.logger ?? silentLogger,
    pollMs: positiveInteger("pollMs", options.pollMs ?? 150, 60_000),
    headConcurrency: positiveInteger("headConcurrency", options.headConcurrency ?? 32, 1024),
    chunksPerAdd: positiveInteger("chunksPerAdd", options.chunksPerAdd ?? 50, 10_000),
  };
}
