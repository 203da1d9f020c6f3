import type { S3Client } from "@aws-sdk/client-s3";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, metricsPortOf, startWorkerProcess, stopProcesses } from "../support/cli.js";
import { makePhoto } from "../support/images.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, readResults } from "../support/run-outcome.js";
import { getBytes, putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";

const IMAGES = 40;
const TIMEOUT_MS = 2_000;
/** The documented bound: the timeout, plus the watchdog's check interval (at most 1 s). */
const DETECTED_WITHIN_MS = TIMEOUT_MS + 1_000;

// A worker whose inference engine hangs mid-batch (a model whose every batch runs in native code
// without end, as on a GPU fault) must not sit on its chunks: the watchdog hands them back, the
// worker takes no more and fails /healthz, and another worker redoes the chunks, once each.
describe("inference watchdog: an engine that stalls mid-batch", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  const workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output], extraEnv: { MEMSCORE_LOG_LEVEL: "info" } });
    ({ env, s3 } = fixture);
    const photos = new Map<string, Buffer>();
    for (let i = 0; i < IMAGES; i++)
      photos.set(`photos/${String(i).padStart(4, "0")}.jpg`, await makePhoto(160, 120, i + 1));
    await putObjects(s3, input, photos);
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL");
    await stopProcesses(workers);
    await fixture?.stop();
  });

  it("fails /healthz within the timeout, hands the chunks back, and another worker redoes them once", async () => {
    const run = enqueueAndWait(env, [`s3://${input}/photos/`], `s3://${output}/scores/`, "stall-run", [
      "--chunk-size",
      "10",
    ]);
    const stalled = startWorkerProcess(
      {
        ...env,
        MEMSCORE_MODEL: "test/fixtures/models/stalls-mid-batch.onnx",
        MEMSCORE_INFERENCE_TIMEOUT_MS: String(TIMEOUT_MS),
      },
      ["--concurrency", "2", "--batch-size", "4"],
    );
    workers.push(stalled);
    const port = await metricsPortOf(stalled);
    const health = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      return { status: res.status, body: (await res.json()) as { reason?: string } };
    };

    // The stalled worker takes two chunks and starts its first batch; healthy until the timeout.
    const connection = new Redis(env.REDIS_URL as string, { maxRetriesPerRequest: null });
    const queue = new Queue(env.MEMSCORE_QUEUE as string, { connection });
    try {
      await sleepUntil(async () => (await queue.getActiveCount()) === 2, {
        what: "the stalled worker to hold two chunks",
        timeoutMs: 120_000,
        state: () => stalled.tail(),
      });
      const held = Date.now();
      expect((await health()).status).toBe(200);
      await sleepUntil(async () => (await health()).status === 503, {
        what: "/healthz to fail",
        timeoutMs: 30_000,
        intervalMs: 100,
        state: () => stalled.tail(),
      });
      const detectedAfter = Date.now() - held;
      const unhealthy = await health();
      expect(unhealthy.body.reason, stalled.output()).toMatch(/inference engine wedged/);
      // From the moment it held the chunks (its batch started a little later), within the bound.
      expect(detectedAfter, stalled.output()).toBeLessThan(DETECTED_WITHIN_MS + 2_000);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^memscore_inference_wedged 1$/m);
      expect(metrics).toMatch(/^memscore_worker_ready 0$/m);

      // Its chunks are back in the queue, and it takes no others.
      await sleepUntil(async () => (await queue.getActiveCount()) === 0, {
        what: "the chunks to leave the stalled worker",
        timeoutMs: 30_000,
        state: () => stalled.tail(),
      });
      expect(await queue.getWaitingCount()).toBe(IMAGES / 10);
    } finally {
      await queue.close();
      connection.disconnect();
    }

    // A healthy worker redoes every chunk; each image gets exactly one outcome, from its model.
    const healthy = startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "4"]);
    workers.push(healthy);
    const result = await run;
    expect(result.code, result.stderr).toBe(0);
    expect(result.summary?.final).toMatchObject({ imagesScored: IMAGES, imagesFailed: 0 });
    const rows = await readResults(s3, output, "scores/", "stall-run");
    expect(rows).toHaveLength(IMAGES);
    expect(new Set(rows.map((r) => r.uri)).size).toBe(IMAGES);
    expect(rows.every((r) => r.status === "scored")).toBe(true);
    const record = JSON.parse((await getBytes(s3, output, "scores/0000.jpg.json")).toString());
    expect(record.model.name).toBe("resmemnet-tiny");
    expect(stalled.output()).toMatch(/chunks of the wedged worker handed back to the queue/);
  });
});
