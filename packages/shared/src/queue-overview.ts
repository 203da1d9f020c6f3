import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { describeError } from "./errors.js";
import { type RunSnapshot, RunState } from "./run-state.js";

/** BullMQ job states memscore reports (chunk jobs are never paused or waiting for children). */
export const QUEUE_JOB_STATES = [
  "waiting",
  "active",
  "delayed",
  "prioritized",
  "failed",
  "completed",
] as const;
export type QueueJobState = (typeof QUEUE_JOB_STATES)[number];

/** A queue's state at one moment: backlog, workers and the runs it holds. */
export interface QueueOverview {
  queueName: string;
  /** `Date.now()` when it was read. */
  readAt: number;
  jobs: Record<QueueJobState, number>;
  /** Seconds since the oldest waiting chunk job was enqueued; 0 when nothing waits. */
  oldestWaitingAgeSeconds: number;
  /**
   * BullMQ workers connected to the queue (named Redis connections, from CLIENT LIST), or
   * undefined when Redis refuses CLIENT LIST (some managed services do); the rest is still read.
   */
  workers: QueueWorkers | undefined;
  /** Why `workers` is undefined: Redis's answer to CLIENT LIST. */
  workersUnavailable?: string;
  /** Snapshots of the newest runs, finished ones included (they carry `completedAt`). */
  runs: RunSnapshot[];
}

/** The worker connections of a queue. */
export interface QueueWorkers {
  count: number;
  /** Each worker connection's address and age in seconds, as CLIENT LIST reports them. */
  connections: { addr: string; age: number }[];
}

/**
 * BullMQ's answer when CLIENT is an unknown command (e.g. GCP Memorystore): a fake one-item
 * list, which would count as one worker.
 */
const NO_CLIENT_LIST_MARKER = "GCP does not support client list";

/** The queue's worker connections, or why Redis would not list them (ACL NOPERM, unknown command). */
async function readQueueWorkers(queue: Queue): Promise<QueueWorkers | { unavailable: string }> {
  try {
    const clients = await queue.getWorkers();
    if (clients.some((c) => c.name === NO_CLIENT_LIST_MARKER))
      return { unavailable: "CLIENT LIST is not supported by this Redis" };
    return {
      count: clients.length,
      connections: clients.map((c) => ({ addr: String(c.addr ?? ""), age: Number(c.age ?? 0) })),
    };
  } catch (error) {
    return { unavailable: describeError(error) };
  }
}

export interface QueueOverviewOptions {
  /** How many of the newest runs to read. @defaultValue 50 */
  maxRuns?: number;
  /** Runs not to read again (e.g. known to be finished). @defaultValue none */
  skipRunIds?: ReadonlySet<string>;
  /** Runs to read even when older than the newest `maxRuns`. @defaultValue none */
  includeRunIds?: readonly string[];
}

/**
 * Reads a queue's overview from Redis: job counts, the age of the oldest waiting job, connected
 * workers and recent runs. Used by `memscore status` and by every process's metrics collector.
 * Rejects when Redis cannot be read, except for CLIENT LIST alone: a Redis that refuses it gives
 * an overview without `workers`.
 */
export async function readQueueOverview(
  queue: Queue,
  redis: Redis,
  options: QueueOverviewOptions = {},
): Promise<QueueOverview> {
  const [counts, oldest, workers, recentRunIds] = await Promise.all([
    queue.getJobCounts(...QUEUE_JOB_STATES),
    // asc=true: BullMQ pushes new jobs on the left and takes them from the right, so index 0
    // in ascending order is the oldest waiting job.
    queue.getJobs(["waiting"], 0, 0, true),
    readQueueWorkers(queue),
    RunState.listRunIds(redis, queue.name, options.maxRuns ?? 50),
  ]);
  const readAt = Date.now();
  const runIds = [...new Set([...recentRunIds, ...(options.includeRunIds ?? [])])].filter(
    (id) => !options.skipRunIds?.has(id),
  );
  const snapshots = await Promise.all(runIds.map((id) => new RunState(redis, queue.name, id).snapshot()));
  const jobs = Object.fromEntries(QUEUE_JOB_STATES.map((s) => [s, counts[s] ?? 0])) as Record<
    QueueJobState,
    number
  >;
  const oldestTimestamp = oldest[0]?.timestamp;
  return {
    queueName: queue.name,
    readAt,
    jobs,
    oldestWaitingAgeSeconds: oldestTimestamp ? Math.max(0, (readAt - oldestTimestamp) / 1000) : 0,
    ...("unavailable" in workers
      ? { workers: undefined, workersUnavailable: workers.unavailable }
      : { workers }),
    runs: snapshots.filter((s): s is RunSnapshot => s !== undefined),
  };
}

/** Images with an outcome (scored or failed) and images enqueued so far, for progress displays. */
export function runImageCounts(run: RunSnapshot): { done: number; total: number } {
  const done = run.imagesScored + run.imagesFailed;
  return { done, total: Math.max(run.imagesEnqueued, done) };
}
