import { type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { ChunkJobData } from "./job-schema.js";

/** BullMQ job name of a chunk job. */
export const CHUNK_JOB_NAME = "score-chunk";

/**
 * Defaults for chunk jobs. Transient faults (S3 5xx, timeouts, a killed worker) are retried with
 * exponential back-off; finished jobs are trimmed so Redis holds a window of the archive, not
 * the archive (a run's progress lives in its RunState, not in BullMQ's completed set).
 */
export const CHUNK_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: "exponential", delay: 1_000 },
  removeOnComplete: { age: 3_600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3_600, count: 100_000 },
};

/** Opens the run queue on an existing connection (BullMQ duplicates it where it must block). */
export function openChunkQueue(connection: Redis, queueName: string): Queue<ChunkJobData> {
  return new Queue<ChunkJobData>(queueName, { connection, defaultJobOptions: CHUNK_JOB_OPTIONS });
}
