import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "../support/archive.js";
import {
  type CliProcess,
  exitOf,
  startWorkerProcess,
  stopProcesses,
  waitForOutput,
  workerName,
} from "../support/cli.js";
import { chunksHeldBy, openTestQueue, type TestQueue, unlessAChunkFails } from "../support/queue.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, readResults, rowsByUri } from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS, START_TIMEOUT_MS } from "../support/timeouts.js";

const IMAGES = 200;
const CHUNK = 20;
// Small batches and two chunks at a time: each chunk takes a while, so a signal finds work in flight.
const WORKER_ARGS = ["--concurrency", "2", "--batch-size", "4"];
/** A worker's start (model load) and its taking two chunks; then its exit. */
const STEP_WAIT_MS = 2 * START_TIMEOUT_MS;
const STEPS = 4;

// SIGTERM and SIGINT are two-stage: the first drains in-flight chunks, a second one hands them back at once.
describe("graceful and forced stop of a worker (SIGTERM, SIGINT, SIGTERM twice, drain deadline)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let queue: TestQueue;
  const workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    const archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    queue = openTestQueue(env);
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(workers);
    await queue?.close();
    await fixture?.stop();
  });

  const start = (args: string[] = []) => {
    const worker = startWorkerProcess(env, [...WORKER_ARGS, ...args]);
    workers.push(worker);
    return worker;
  };

  /**
   * Waits until `worker` (the only live one) holds two chunks, read in one call so that the ids
   * are the ones it holds at that moment; returns them.
   */
  const twoChunksHeldBy = async (worker: CliProcess): Promise<string[]> => {
    const name = workerName(worker);
    let held: string[] = [];
    await sleepUntil(
      async () => {
        held = await chunksHeldBy(queue, name);
        return held.length === 2;
      },
      {
        what: `worker ${name} to hold two chunks`,
        timeoutMs: STEP_WAIT_MS,
        state: async () => ({ held, counts: await queue.counts(), output: worker.tail() }),
        stopIf: () => (worker.running() ? undefined : "the worker exited"),
      },
    );
    return held;
  };

  const states = (ids: readonly string[]) =>
    Promise.all(ids.map(async (id) => (await queue.queue.getJob(id))?.getState()));

  it(
    "drains on one SIGTERM or SIGINT (exit 143, 130); a second SIGTERM or the drain deadline hands chunks back at once",
    async () => {
      // The run lasts through every step, then until the last worker has redone the rest.
      const run = enqueueAndWait(
        env,
        [`s3://${input}/photos/`],
        `s3://${output}/scores/`,
        "stop-run",
        ["--chunk-size", String(CHUNK)],
        STEPS * STEP_WAIT_MS + RUN_TIMEOUT_MS,
      );

      // 1. One SIGTERM, or one SIGINT (Ctrl-C): the worker stops taking chunks, finishes the two
      // it holds, and exits with the signal's code.
      for (const [signal, code] of [
        ["SIGTERM", 143],
        ["SIGINT", 130],
      ] as const) {
        const draining = start();
        const drainedIds = await twoChunksHeldBy(draining);
        draining.child.kill(signal);
        const drained = await exitOf(draining);
        expect(drained.code, `${signal}: ${draining.tail()}`).toBe(code);
        for (const id of drainedIds) {
          const job = await queue.queue.getJob(id);
          expect(await job?.getState(), `${signal}: chunk ${id}`).toBe("completed");
          expect(job?.attemptsStarted, `${signal}: chunk ${id} was done once, by the draining worker`).toBe(
            1,
          );
        }
        expect(await queue.queue.getActiveCount()).toBe(0);
      }

      // 2. SIGTERM twice: with a drain deadline far away, the worker still exits at once with 143,
      // and the chunks it held are back in the queue (not left locked until their lock lapses).
      const forced = start(["--shutdown-timeout", "600000"]);
      const forcedIds = await twoChunksHeldBy(forced);
      forced.child.kill("SIGTERM");
      await waitForOutput(forced, /shutting down gracefully/);
      forced.child.kill("SIGTERM");
      const forcedExit = await exitOf(forced);
      expect(forcedExit.code, forced.tail()).toBe(143);
      const forcedStates = await states(forcedIds);
      expect(
        forcedStates.every((s) => s === "waiting" || s === "completed"),
        forcedStates.join(","),
      ).toBe(true);
      const handedBack = forcedIds.filter((_, i) => forcedStates[i] === "waiting");
      expect(handedBack.length, "chunks handed back by the forced stop").toBeGreaterThan(0);
      expect(await queue.queue.getActiveCount()).toBe(0);

      // 2b. One SIGTERM whose drain deadline passes (1 ms here): the stop is forced by the deadline,
      // as by a second signal — exit 143, chunks handed back rather than left locked.
      const deadline = start(["--shutdown-timeout", "1"]);
      const deadlineIds = await twoChunksHeldBy(deadline);
      deadline.child.kill("SIGTERM");
      const deadlineExit = await exitOf(deadline);
      expect(deadlineExit.code, deadline.tail()).toBe(143);
      expect(deadline.output()).toMatch(
        /forced stop: in-flight chunks handed back to the queue.*"timeoutMs":1\b/,
      );
      const deadlineStates = await states(deadlineIds);
      expect(
        deadlineStates.every((s) => s === "waiting" || s === "completed"),
        deadlineStates.join(","),
      ).toBe(true);
      handedBack.push(...deadlineIds.filter((_, i) => deadlineStates[i] === "waiting"));
      expect(await queue.queue.getActiveCount()).toBe(0);

      // 3. Another worker redoes the handed-back chunks and the run completes, nothing lost.
      start();
      const result = await unlessAChunkFails(queue, run);
      expect(result.code, `${result.stderr}\n${workers.map((w) => w.tail()).join("\n")}`).toBe(0);
      const rows = await readResults(s3, output, "scores/", "stop-run");
      expect(rows).toHaveLength(IMAGES);
      expect(rowsByUri(rows).size).toBe(IMAGES);
      for (const id of handedBack) {
        const job = await queue.queue.getJob(id);
        expect(await job?.getState()).toBe("completed");
        expect(job?.attemptsStarted, `chunk ${id} was started again by another worker`).toBeGreaterThan(1);
      }
      expect(await queue.counts()).toMatchObject({ active: 0, waiting: 0, failed: 0 });
    },
    budget(STEPS * STEP_WAIT_MS, RUN_TIMEOUT_MS),
  );
});
