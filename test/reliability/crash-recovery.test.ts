import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "../support/archive.js";
import {
  type CliProcess,
  exitOf,
  startWorkerProcess,
  stopProcesses,
  workerName,
  workerStarted,
} from "../support/cli.js";
import { openTestQueue, type TestQueue, unlessAChunkFails } from "../support/queue.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, findCorruptOutputs, readResults, rowsByUri } from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS } from "../support/timeouts.js";

const IMAGES = 300;
const CHUNK = 10;
const KILLS = 3;
// Locks short enough that a killed worker's chunks go to the others within seconds, long enough
// that a live worker on two loaded cores always renews its locks in time (3 s was seen to lapse).
const WORKER_ARGS = ["--concurrency", "2", "--batch-size", "8", "--lock-duration", "10000"];
/** Each kill waits for its point in the run and for a worker that holds a chunk then. */
const KILL_WAIT_MS = 120_000;

/** One kill: whom, when, and the chunks it held at that moment. */
interface Kill {
  worker: CliProcess;
  at: number;
  heldChunks: string[];
}

// kill -9 of workers in the middle of their chunks: nothing is lost, nothing is counted twice.
describe("worker crashes (kill -9 of a worker holding chunks, three times in a 300-image run)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let queue: TestQueue;
  const workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    queue = openTestQueue(env);
    archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    for (let i = 0; i < 3; i++) workers.push(startWorkerProcess(env, WORKER_ARGS));
    await Promise.all(workers.map((w) => workerStarted(w)));
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(workers);
    await queue?.close();
    await fixture?.stop();
  });

  it(
    "redoes the chunks each killed worker held, with exactly one outcome per image and an empty queue",
    async () => {
      // The run lasts through the kills, then until the chunks they interrupted are redone.
      const run = enqueueAndWait(
        env,
        [`s3://${input}/photos/`],
        `s3://${output}/scores/`,
        "crash-run",
        ["--chunk-size", String(CHUNK)],
        KILLS * KILL_WAIT_MS + RUN_TIMEOUT_MS,
      );
      const outputs = () =>
        workers.map((w) => `--- ${w.command} (pid ${w.child.pid})\n${w.tail()}`).join("\n");

      // At three points spread over the run, kill -9 a worker that holds chunks right then (its
      // images are mid-fetch, mid-batch or mid-put), and start a replacement.
      const chunks = IMAGES / CHUNK;
      const kills: Kill[] = [];
      for (let k = 0; k < KILLS; k++) {
        const threshold = Math.round(((k + 1) * chunks) / (KILLS + 2));
        let victim: Kill | undefined;
        let seen = {};
        await sleepUntil(
          async () => {
            const counts = await queue.counts();
            // One read of the active chunks, so the holder found holds them at this moment.
            const active = await queue.queue.getActive();
            seen = { counts, active: active.map((j) => ({ id: j.id, processedBy: j.processedBy })) };
            if (counts.completed < threshold) return false;
            const holder = workers.find(
              (w) => w.running() && active.some((j) => j.processedBy === workerName(w)),
            );
            if (!holder) return false;
            const held = active
              .filter((j) => j.processedBy === workerName(holder))
              .map((j) => j.id as string);
            victim = { worker: holder, at: Date.now(), heldChunks: held };
            return true;
          },
          {
            what: `${threshold} chunks completed and a live worker holding a chunk (kill ${k + 1})`,
            timeoutMs: KILL_WAIT_MS,
            intervalMs: 100,
            state: () => `${JSON.stringify(seen)}\n${outputs()}`,
          },
        );
        const kill = victim as unknown as Kill;
        kill.worker.child.kill("SIGKILL");
        expect((await exitOf(kill.worker)).signal).toBe("SIGKILL");
        kills.push(kill);
        workers.push(startWorkerProcess(env, WORKER_ARGS));
      }

      const result = await unlessAChunkFails(queue, run);
      expect(result.code, `${result.stderr}\n${outputs()}`).toBe(0);
      expect(result.summary?.imagesEnqueued).toBe(IMAGES);
      // The run's counts: every image counted exactly once, however often its chunk was started.
      expect((result.summary?.final?.imagesScored ?? 0) + (result.summary?.final?.imagesFailed ?? 0)).toBe(
        IMAGES,
      );

      // Each chunk a killed worker held was either finished just before the kill or redone by
      // another worker; every kill left at least one chunk that had to be redone.
      for (const [i, kill] of kills.entries()) {
        let redone = 0;
        for (const id of kill.heldChunks) {
          const job = await queue.queue.getJob(id);
          const what = `kill ${i + 1}: chunk ${id} held by ${workerName(kill.worker)}`;
          expect(await job?.getState(), what).toBe("completed");
          const finishedBeforeKill = (job?.finishedOn ?? Number.POSITIVE_INFINITY) <= kill.at;
          if (finishedBeforeKill) continue;
          expect(job?.attemptsStarted, `${what}: started again after the kill`).toBeGreaterThan(1);
          expect(job?.processedBy, `${what}: finished by another worker`).not.toBe(workerName(kill.worker));
          redone++;
        }
        expect(redone, `kill ${i + 1}: chunks redone (held ${kill.heldChunks.join(", ")})`).toBeGreaterThan(
          0,
        );
      }

      // The results table: exactly one row per input (rowsByUri throws on a duplicate), each right.
      const rows = await readResults(s3, output, "scores/", "crash-run");
      expect(rows).toHaveLength(IMAGES);
      const byUri = rowsByUri(rows);
      for (const entry of archive) {
        const row = byUri.get(`s3://${input}/${entry.key}`);
        expect(row, entry.key).toBeDefined();
        if (entry.expect === "scored") expect(row?.status, entry.key).toBe("scored");
        else expect(row?.error_reason, entry.key).toBe(entry.expect.reason);
      }

      // Every record parses and every heatmap decodes: no half-written object became visible.
      expect(await findCorruptOutputs(s3, output, "scores/")).toEqual([]);

      // Nothing is left active or waiting (no chunk stuck behind a dead worker's lock).
      expect(await queue.counts()).toMatchObject({ active: 0, waiting: 0, delayed: 0, failed: 0 });
    },
    budget(KILLS * KILL_WAIT_MS, RUN_TIMEOUT_MS),
  );
});
