import { MemscoreError } from "./errors.js";
import { type HeatmapFormat, isHeatmapFormat } from "./heatmap-format.js";
import { assertBucketAllowed, parseS3Uri } from "./s3-uri.js";

/** One image of a chunk: where to read it and where (relative to the run's output prefix) to write. */
export interface ChunkImage {
  /** `s3://bucket/key` of the input image. */
  uri: string;
  /** Output path relative to the output prefix (outputs are `<rel>.json`, `<rel>.heatmap.<ext>`). */
  rel: string;
  /** Size from the listing, when known: lets the worker refuse oversized objects before any GET. */
  size?: number;
}

/**
 * A queue job: a chunk of images of one run. One job per chunk, not per image, keeps Redis
 * memory and per-job overhead small at archive scale; every image still gets its own outcome.
 */
export interface ChunkJobData {
  /** Payload format version, so old jobs are recognised after an upgrade. */
  v: 1;
  runId: string;
  chunkIndex: number;
  /** `s3://bucket/prefix/` of this run's outputs. */
  outputPrefix: string;
  /** How the run stores heatmaps; absent in jobs of earlier versions, which wrote PNG. */
  heatmapFormat?: HeatmapFormat;
  images: ChunkImage[];
}

/** Largest chunk accepted from a job payload (bounds the work one job can ask for). */
export const MAX_CHUNK_IMAGES = 10_000;
export const RUN_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** A job payload that can never be processed: failed as unrecoverable, never retried. */
export class InvalidJobError extends MemscoreError {
  constructor(message: string) {
    super("invalid_job", `invalid job payload: ${message}`);
  }
}

export interface JobValidationOptions {
  allowedBuckets: readonly string[];
  /** When set, the output prefix must be in this bucket (the worker's configured output bucket). */
  outputBucket?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** BullMQ job id of a chunk: deterministic, so re-adding the same chunk is a no-op. */
export function chunkJobId(runId: string, chunkIndex: number): string {
  return `${runId}-${String(chunkIndex).padStart(8, "0")}`;
}

/**
 * Validates a job payload read from Redis. Anything outside the contract — unknown version, a
 * non-s3 URI, a bucket outside the allow-list, an output prefix in another bucket, malformed
 * fields — throws {@link InvalidJobError}; a payload is never trusted just because it is queued.
 */
export function validateChunkJob(data: unknown, options: JobValidationOptions): ChunkJobData {
  const fail = (m: string): never => {
    throw new InvalidJobError(m);
  };
  if (!isRecord(data)) return fail("not an object");
  if (data.v !== 1) fail(`unsupported version ${JSON.stringify(data.v)}`);
  if (typeof data.runId !== "string" || !RUN_ID_PATTERN.test(data.runId))
    fail("runId must match [A-Za-z0-9_.-]{1,64}");
  if (!Number.isInteger(data.chunkIndex) || (data.chunkIndex as number) < 0)
    fail("chunkIndex must be an integer ≥ 0");
  if (typeof data.outputPrefix !== "string") fail("outputPrefix must be an s3:// URI");
  let output: ReturnType<typeof parseS3Uri>;
  try {
    output = parseS3Uri(data.outputPrefix as string);
    assertBucketAllowed(output.bucket, options.allowedBuckets);
  } catch (error) {
    return fail(`outputPrefix: ${(error as Error).message}`);
  }
  if (options.outputBucket && output.bucket !== options.outputBucket) {
    fail(
      `outputPrefix bucket "${output.bucket}" is not the configured output bucket "${options.outputBucket}"`,
    );
  }
  if (data.heatmapFormat !== undefined && !isHeatmapFormat(data.heatmapFormat))
    fail(`heatmapFormat must be one of jpeg, png, webp, none, got ${JSON.stringify(data.heatmapFormat)}`);
  if (!Array.isArray(data.images) || data.images.length === 0 || data.images.length > MAX_CHUNK_IMAGES) {
    fail(`images must be a list of 1 to ${MAX_CHUNK_IMAGES} entries`);
  }
  const images: ChunkImage[] = [];
  for (const [i, image] of (data.images as unknown[]).entries()) {
    if (
      !isRecord(image) ||
      typeof image.uri !== "string" ||
      typeof image.rel !== "string" ||
      image.rel === ""
    ) {
      return fail(`images[${i}] must have string uri and rel`);
    }
    if (image.size !== undefined && (!Number.isInteger(image.size) || (image.size as number) < 0)) {
      fail(`images[${i}].size must be a non-negative integer`);
    }
    try {
      assertBucketAllowed(parseS3Uri(image.uri).bucket, options.allowedBuckets);
    } catch (error) {
      return fail(`images[${i}].uri: ${(error as Error).message}`);
    }
    images.push({
      uri: image.uri,
      rel: image.rel,
      ...(image.size !== undefined && { size: image.size as number }),
    });
  }
  return {
    v: 1,
    runId: data.runId as string,
    chunkIndex: data.chunkIndex as number,
    outputPrefix: data.outputPrefix as string,
    ...(data.heatmapFormat !== undefined && { heatmapFormat: data.heatmapFormat as HeatmapFormat }),
    images,
  };
}
