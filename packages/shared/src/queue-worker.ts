import { type Processor, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { describeError } from "./errors.js";
import type { Logger } from "./logger.js";

export interface QueueWorkerOptions {
  connection: Redis;
  concurrency: number;
  /** How soon a crashed process's jobs go to others. @defaultValue 30000 */
  lockDurationMs?: number;
  /** Times a job whose process died is handed back before it fails. @defaultValue BullMQ's (1) */
  maxStalledCount?: number;
  /** The process's name, stored on the jobs it takes (`job.processedBy`). */
  name?: string;
  logger: Logger;
  /** What the jobs are, for log lines ("chunk", "scan"). */
  what: string;
}

/**
 * A BullMQ worker set up as every memscore service wants it: not running until `run()`, stalled
 * jobs looked for as often as a lock can lapse (not only every 30 s, BullMQ's default: a short
 * lock then really hands the jobs of a crashed process over quickly), errors logged.
 */
export function createQueueWorker<Data, Result>(
  queueName: string,
  processor: Processor<Data, Result>,
  options: QueueWorkerOptions,
): Worker<Data, Result> {
  const lockDuration = options.lockDurationMs ?? 30_000;
  const worker = new Worker<Data, Result>(queueName, processor, {
    connection: options.connection,
    concurrency: options.concurrency,
    lockDuration,
    stalledInterval: Math.min(lockDuration, 30_000),
    ...(options.maxStalledCount !== undefined && { maxStalledCount: options.maxStalledCount }),
    ...(options.name !== undefined && { name: options.name }),
    autorun: false,
  });
  worker.on("error", (error) =>
    options.logger.error(`${options.what} worker error`, { error: describeError(error) }),
  );
  return worker;
}
