import { type ChunkJobData, createRedisConnection, openChunkQueue } from "@memscore/shared";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";

/** A Redis connection to the test services' Redis (`rediss://` and passwords included). */
export function testRedis(env: NodeJS.ProcessEnv, name = "memscore-test"): Redis {
  return createRedisConnection(env.REDIS_URL as string, { name });
}

/** BullMQ job counts by state, as the tests read them. */
export interface JobCounts {
  active: number;
  waiting: number;
  delayed: number;
  prioritized: number;
  failed: number;
  completed: number;
}

/** A run queue on a connection of its own, for adding jobs by hand and inspecting them. */
export interface TestQueue {
  queue: Queue<ChunkJobData>;
  redis: Redis;
  counts(): Promise<JobCounts>;
  /** Closes the queue and its connection; with `obliterate`, removes the queue's keys first. */
  close(options?: { obliterate?: boolean }): Promise<void>;
}

/** Opens the run queue `name` (default: the env's MEMSCORE_QUEUE) of the test Redis. */
export function openTestQueue(env: NodeJS.ProcessEnv, name = env.MEMSCORE_QUEUE as string): TestQueue {
  const redis = testRedis(env, "memscore-test-queue");
  const queue = openChunkQueue(redis, name);
  let closing: Promise<void> | undefined;
  return {
    queue,
    redis,
    counts: async () => {
      const c = await queue.getJobCounts(
        "active",
        "waiting",
        "delayed",
        "prioritized",
        "failed",
        "completed",
      );
      return {
        active: c.active ?? 0,
        waiting: c.waiting ?? 0,
        delayed: c.delayed ?? 0,
        prioritized: c.prioritized ?? 0,
        failed: c.failed ?? 0,
        completed: c.completed ?? 0,
      };
    },
    close: (options = {}) => {
      closing ??= (async () => {
        if (options.obliterate) await queue.obliterate({ force: true }).catch(() => {});
        await queue.close();
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}

/** The ids of the chunks a worker holds now (its BullMQ name: see workerName), read in one call. */
export async function chunksHeldBy(queue: TestQueue, name: string): Promise<string[]> {
  return (await queue.queue.getActive())
    .filter((job) => job.processedBy === name)
    .map((job) => job.id as string);
}

/**
 * Resolves with `run`, or rejects as soon as a chunk of the queue has failed for good, naming the
 * chunks and why: a run with a failed chunk can never complete, so waiting longer says nothing.
 */
export async function unlessAChunkFails<T>(queue: TestQueue, run: Promise<T>): Promise<T> {
  let settled = false;
  const watch = (async (): Promise<never> => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (settled) return new Promise<never>(() => {});
      const failed = await queue.queue.getFailed();
      if (failed.length > 0) {
        const why = failed.map((job) => `${job.id}: ${job.failedReason}`).join("\n");
        throw new Error(`chunks failed for good, so the run cannot complete:\n${why}`);
      }
    }
  })();
  try {
    return await Promise.race([run, watch]);
  } finally {
    settled = true;
  }
}

/** The job counts of a queue right now, on a connection opened and closed for the purpose. */
export async function queueCounts(
  env: NodeJS.ProcessEnv,
  name = env.MEMSCORE_QUEUE as string,
): Promise<JobCounts> {
  const q = openTestQueue(env, name);
  try {
    return await q.counts();
  } finally {
    await q.close();
  }
}
