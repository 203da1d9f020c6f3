import type { S3Client } from "@aws-sdk/client-s3";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "../support/archive.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, queueCounts, readResults, rowsByUri } from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "../support/workers.js";

const IMAGES = 160;
const CHUNK = 20;
// Small batches and two chunks at a time: each chunk takes a while, so a signal finds work in flight.
const WORKER_ARGS = ["--concurrency", "2", "--batch-size", "4"];

// SIGTERM is two-stage: the first drains in-flight chunks, a second one hands them back at once.
describe("graceful and forced stop of a worker (SIGTERM, SIGTERM twice, drain deadline)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let connection: Redis;
  let queue: Queue;
  const workers: WorkerProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output], extraEnv: { MEMSCORE_LOG_LEVEL: "info" } });
    ({ env, s3 } = fixture);
    const archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    connection = new Redis(env.REDIS_URL as string, { maxRetriesPerRequest: null });
    queue = new Queue(env.MEMSCORE_QUEUE as string, { connection });
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await queue?.close();
    connection?.disconnect();
    await fixture?.stop();
  });

  const start = (args: string[] = []) => {
    const worker = startWorkerProcess(env, [...WORKER_ARGS, ...args]);
    workers.push(worker);
    return worker;
  };

  /** Waits until exactly the given worker (the only live one) holds two chunks; returns their ids. */
  const activeChunks = async (): Promise<string[]> => {
    await sleepUntil(async () => (await queue.getActiveCount()) === 2, 120_000, 50);
    return (await queue.getActive()).map((job) => job.id as string);
  };

  it("drains on one SIGTERM (exit 143); a second SIGTERM or the drain deadline hands chunks back at once (exit 143)", async () => {
    const run = enqueueAndWait(env, [`s3://${input}/photos/`], `s3://${output}/scores/`, "stop-run", [
      "--chunk-size",
      String(CHUNK),
    ]);

    // 1. One SIGTERM: the worker stops taking chunks, finishes the two it holds, exits with 143.
    const draining = start();
    const drainedIds = await activeChunks();
    draining.child.kill("SIGTERM");
    const drained = await draining.exited;
    expect(drained.code, draining.output()).toBe(143);
    for (const id of drainedIds) {
      const job = await queue.getJob(id);
      expect(await job?.getState(), `chunk ${id}`).toBe("completed");
      expect(job?.attemptsStarted, `chunk ${id} was done once, by the draining worker`).toBe(1);
    }
    expect(await queue.getActiveCount()).toBe(0);

    // 2. SIGTERM twice: with a drain deadline far away, the worker still exits at once with 143,
    // and the chunks it held are back in the queue (not left locked until their lock lapses).
    const forced = start(["--shutdown-timeout", "600000"]);
    const forcedIds = await activeChunks();
    forced.child.kill("SIGTERM");
    await sleepUntil(() => forced.output().includes("shutting down gracefully"), 30_000);
    forced.child.kill("SIGTERM");
    const forcedExit = await forced.exited;
    expect(forcedExit.code, forced.output()).toBe(143);
    const states = await Promise.all(forcedIds.map(async (id) => (await queue.getJob(id))?.getState()));
    expect(
      states.every((s) => s === "waiting" || s === "completed"),
      states.join(","),
    ).toBe(true);
    const handedBack = forcedIds.filter((_, i) => states[i] === "waiting");
    expect(handedBack.length, "chunks handed back by the forced stop").toBeGreaterThan(0);
    expect(await queue.getActiveCount()).toBe(0);

    // 2b. One SIGTERM whose drain deadline passes (1 ms here): the stop is forced by the deadline,
    // as by a second signal — exit 143, chunks handed back rather than left locked.
    const deadline = start(["--shutdown-timeout", "1"]);
    const deadlineIds = await activeChunks();
    deadline.child.kill("SIGTERM");
    const deadlineExit = await deadline.exited;
    expect(deadlineExit.code, deadline.output()).toBe(143);
    expect(deadline.output()).toMatch(
      /forced stop: in-flight chunks handed back to the queue.*"timeoutMs":1\b/,
    );
    const deadlineStates = await Promise.all(
      deadlineIds.map(async (id) => (await queue.getJob(id))?.getState()),
    );
    expect(
      deadlineStates.every((s) => s === "waiting" || s === "completed"),
      deadlineStates.join(","),
    ).toBe(true);
    handedBack.push(...deadlineIds.filter((_, i) => deadlineStates[i] === "waiting"));
    expect(await queue.getActiveCount()).toBe(0);

    // 3. Another worker redoes the handed-back chunks and the run completes, nothing lost.
    start();
    const result = await run;
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);
    const rows = await readResults(s3, output, "scores/", "stop-run");
    expect(rows).toHaveLength(IMAGES);
    expect(rowsByUri(rows).size).toBe(IMAGES);
    for (const id of handedBack) {
      const job = await queue.getJob(id);
      expect(await job?.getState()).toBe("completed");
      expect(job?.attemptsStarted, `chunk ${id} was started again by another worker`).toBeGreaterThan(1);
    }
    expect(await queueCounts(env.REDIS_URL as string, env.MEMSCORE_QUEUE as string)).toMatchObject({
      active: 0,
      wait: 0,
      failed: 0,
    });
  });
});
