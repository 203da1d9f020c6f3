import { setTimeout as sleep } from "node:timers/promises";
import {
  type ChunkJobData,
  completeRun,
  RunState,
  type Storage,
  silentLogger,
  writeResultsPart,
} from "@memscore/shared";
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import { testRedis } from "./queue.js";

/**
 * A stand-in for the real worker: records each chunk it is given (by job id), reports it done in
 * the run state after `delayMs` with a results part of "scored" rows, and writes the results
 * table when it finishes the run.
 */
export function startRecordingConsumer(
  env: NodeJS.ProcessEnv,
  queueName: string,
  storage: Storage,
  options: { delayMs?: number; concurrency?: number } = {},
): { jobs: Map<string, ChunkJobData>; processed: () => number; close(): Promise<void> } {
  const jobs = new Map<string, ChunkJobData>();
  let processed = 0;
  const state = testRedis(env, "recording-consumer-state");
  const connection = testRedis(env, "recording-consumer");
  const worker = new Worker<ChunkJobData>(
    queueName,
    async (job) => {
      if (options.delayMs) await sleep(options.delayMs);
      jobs.set(job.id as string, job.data);
      processed++;
      const rows = job.data.images.map((i) => ({ uri: i.uri, status: "scored" as const, score: 0.5 }));
      await writeResultsPart(
        storage,
        job.data.outputPrefix,
        job.data.runId,
        { kind: "chunk", index: job.data.chunkIndex },
        rows,
      );
      const run = new RunState(state, queueName, job.data.runId);
      const { completes } = await run.recordChunk(
        job.data.chunkIndex,
        { scored: job.data.images.length, failed: 0, failuresByReason: {} },
        "test-consumer",
      );
      if (completes) await completeRun(storage, run, silentLogger);
    },
    { connection, concurrency: options.concurrency ?? 1 },
  );
  // A failing stand-in would only show up as a timeout: say why, loudly.
  worker.on("failed", (job, error) =>
    console.error(`test consumer: job ${job?.id} failed: ${error.message}`),
  );
  return {
    jobs,
    processed: () => processed,
    close: async () => {
      await worker.close();
      await state.quit();
      await connection.quit();
    },
  };
}

/** memscore's own keys for a queue (run state, checkpoints), for "nothing was written" checks. */
export async function runKeys(redis: Redis, queueName: string): Promise<string[]> {
  return redis.keys(`memscore:${queueName}:*`);
}
