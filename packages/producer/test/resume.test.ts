import { chunkJobId, parseS3Uri, RunState, resultsUri, type Storage } from "@memscore/shared";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, exitOf, runCli, startCli } from "../../../test/support/cli.js";
import { openTestQueue, testRedis } from "../../../test/support/queue.js";
import { startRecordingConsumer } from "../../../test/support/recording-consumer.js";
import { testStorage } from "../../../test/support/s3.js";
import {
  sleepUntil,
  startTestServices,
  type TestServices,
  uniqueName,
} from "../../../test/support/services.js";
import {
  budget,
  HEAVY_SETUP_TIMEOUT_MS,
  RUN_TIMEOUT_MS,
  START_TIMEOUT_MS,
} from "../../../test/support/timeouts.js";

const IMAGES = 2000;
const CHUNK = 5;

describe("resuming an enqueue killed mid-listing", () => {
  let services: TestServices;
  let storage: Storage;
  let redis: Redis;
  let child: CliProcess | undefined;
  const inBucket = uniqueName("in");
  const outBucket = uniqueName("out");

  beforeAll(async () => {
    services = await startTestServices();
    await services.s3.createBucket(inBucket);
    await services.s3.createBucket(outBucket);
    storage = testStorage(services.env);
    redis = testRedis(services.env);
    const keys = Array.from({ length: IMAGES }, (_, i) => `img/${String(i).padStart(5, "0")}.jpg`);
    // 32 uploads in flight: s3rver writes each object to disk.
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(
        keys
          .slice(i, i + 32)
          .map((key) => storage.put({ bucket: inBucket, key }, key, { contentType: "image/jpeg" })),
      );
    }
  }, HEAVY_SETUP_TIMEOUT_MS);
  afterAll(async () => {
    if (child?.running()) child.child.kill("SIGKILL");
    storage?.close();
    await redis?.quit();
    await services?.stop();
  });

  it(
    "re-runs with the same run id to enqueue every image exactly once",
    async () => {
      const queueName = uniqueName("q");
      const runId = "resume-run";
      const q = openTestQueue(services.env, queueName);
      // A slow consumer keeps the backpressure window full, so the listing takes a while.
      const consumer = startRecordingConsumer(services.env, queueName, storage, {
        delayMs: 8,
        concurrency: 2,
      });
      const args = [
        "enqueue",
        `s3://${inBucket}/img/`,
        "--out",
        `s3://${outBucket}/scores/`,
        "--run-id",
        runId,
        "--chunk-size",
        String(CHUNK),
        "--max-pending",
        "8",
        "--queue",
        queueName,
        "--json",
      ];
      const run = new RunState(redis, queueName, runId);
      try {
        const enqueue = startCli(args, services.env);
        child = enqueue;
        await sleepUntil(async () => ((await run.snapshot())?.chunksEnqueued ?? 0) >= 40, {
          what: "40 chunks enqueued",
          timeoutMs: START_TIMEOUT_MS,
          intervalMs: 10,
          state: async () => ({ run: await run.snapshot(), enqueue: enqueue.tail() }),
          stopIf: () => (enqueue.running() ? undefined : "enqueue exited before it could be killed"),
        });
        enqueue.child.kill("SIGKILL");
        await exitOf(enqueue);
        const killed = await run.snapshot();
        expect(killed?.listingDone).toBe(false); // it really died mid-listing
        expect(killed?.chunksEnqueued).toBeLessThan(IMAGES / CHUNK);

        const resumed = await runCli(args, services.env, RUN_TIMEOUT_MS);
        expect(resumed.code, resumed.stderr).toBe(0);
        expect(JSON.parse(resumed.stdout)).toMatchObject({
          runId,
          resumed: true,
          imagesEnqueued: IMAGES,
          chunks: IMAGES / CHUNK,
        });
        expect(JSON.parse(resumed.stdout).imagesListed).toBeLessThan(IMAGES);

        await sleepUntil(async () => (await run.snapshot())?.completedAt !== undefined, {
          what: "the run finalized by the consumer",
          timeoutMs: RUN_TIMEOUT_MS,
          state: () => run.snapshot(),
        });
        const expectedIds = Array.from({ length: IMAGES / CHUNK }, (_, i) => chunkJobId(runId, i));
        expect([...consumer.jobs.keys()].sort()).toEqual(expectedIds);
        expect(consumer.processed()).toBe(IMAGES / CHUNK); // no chunk ran twice
        const uris = [...consumer.jobs.values()].flatMap((d) => d.images.map((i) => i.uri));
        expect(uris.length).toBe(IMAGES);
        expect(new Set(uris).size).toBe(IMAGES);
        expect(await run.snapshot()).toMatchObject({
          imagesEnqueued: IMAGES,
          imagesScored: IMAGES,
          chunksDone: IMAGES / CHUNK,
        });
        const table = await storage.getText(
          parseS3Uri(resultsUri(`s3://${outBucket}/scores/`, runId, "jsonl")),
        );
        expect(table?.trim().split("\n").length).toBe(IMAGES);
      } finally {
        await consumer.close();
        await q.close({ obliterate: true });
      }
    },
    budget(START_TIMEOUT_MS, RUN_TIMEOUT_MS, RUN_TIMEOUT_MS),
  );
});
