import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "../support/archive.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import {
  enqueueAndWait,
  findCorruptOutputs,
  queueCounts,
  readResults,
  rowsByUri,
} from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "../support/workers.js";

const IMAGES = 300;
const KILLS = 3;
// Short locks, so chunks of a killed worker are handed to the others within seconds.
const WORKER_ARGS = ["--concurrency", "2", "--batch-size", "8", "--lock-duration", "3000"];

// kill -9 of workers in the middle of their batches: nothing is lost, nothing is counted twice.
describe("worker crashes (kill -9 three times during a 300-image run with 3 workers)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  const workers: WorkerProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    for (let i = 0; i < 3; i++) workers.push(startWorkerProcess(env, WORKER_ARGS));
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await fixture?.stop();
  });

  it("completes with exactly one outcome per image, no corrupt output and an empty queue", async () => {
    const run = enqueueAndWait(env, [`s3://${input}/photos/`], `s3://${output}/scores/`, "crash-run", [
      "--chunk-size",
      "10",
    ]);

    // Kill the oldest live worker (it is busy: the queue still has chunks waiting) at three points
    // spread over the run, so it dies with images mid-fetch, mid-batch or mid-put; replace it.
    const counts = () => queueCounts(env.REDIS_URL as string, env.MEMSCORE_QUEUE as string);
    const chunks = IMAGES / 10;
    const killed: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const threshold = Math.round(((k + 1) * chunks) / (KILLS + 2));
      await sleepUntil(async () => ((await counts()).completed ?? 0) >= threshold, 180_000, 100);
      const victim = workers.find((w) => w.child.exitCode === null && w.child.signalCode === null);
      if (!victim) throw new Error("no live worker to kill");
      victim.child.kill("SIGKILL");
      expect((await victim.exited).signal).toBe("SIGKILL");
      killed.push(victim.child.pid as number);
      workers.push(startWorkerProcess(env, WORKER_ARGS));
    }
    expect(killed).toHaveLength(KILLS);

    const result = await run;
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);
    expect(result.summary?.imagesEnqueued).toBe(IMAGES);
    expect((result.summary?.final?.imagesScored ?? 0) + (result.summary?.final?.imagesFailed ?? 0)).toBe(
      IMAGES,
    );

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
    expect(await counts()).toMatchObject({ active: 0, wait: 0, delayed: 0, failed: 0 });
  });
});
