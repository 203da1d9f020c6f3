import { type ChildProcess, spawn } from "node:child_process";
import { chunkJobId, parseS3Uri, RunState, resultsUri, type Storage } from "@memscore/shared";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_BIN, runCli } from "../../../test/support/cli.js";
import {
  sleepUntil,
  startTestServices,
  type TestServices,
  uniqueName,
} from "../../../test/support/services.js";
import { startRecordingConsumer, testQueue, testRedis, testStorage } from "./support.js";

const IMAGES = 2000;
const CHUNK = 5;

describe("resuming an enqueue killed mid-listing", () => {
  let services: TestServices;
  let storage: Storage;
  let redis: Redis;
  let child: ChildProcess | undefined;
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
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    storage?.close();
    await redis?.quit();
    await services?.stop();
  });

  it("re-runs with the same run id to enqueue every image exactly once", async () => {
    const queueName = uniqueName("q");
    const runId = "resume-run";
    const q = testQueue(services.env, queueName);
    // A slow consumer keeps the backpressure window full, so the listing takes a while.
    const consumer = startRecordingConsumer(services.env, queueName, storage, { delayMs: 8, concurrency: 2 });
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
      child = spawn(process.execPath, [CLI_BIN, ...args], {
        env: { ...process.env, ...services.env },
        stdio: "ignore",
      });
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      await sleepUntil(async () => ((await run.snapshot())?.chunksEnqueued ?? 0) >= 40, 60_000, 10);
      child.kill("SIGKILL");
      await exited;
      const killed = await run.snapshot();
      expect(killed?.listingDone).toBe(false); // it really died mid-listing
      expect(killed?.chunksEnqueued).toBeLessThan(IMAGES / CHUNK);

      const resumed = await runCli(args, services.env);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout)).toMatchObject({
        runId,
        resumed: true,
        imagesEnqueued: IMAGES,
        chunks: IMAGES / CHUNK,
      });
      expect(JSON.parse(resumed.stdout).imagesListed).toBeLessThan(IMAGES);

      await sleepUntil(async () => (await run.snapshot())?.finalizedAt !== undefined, 60_000);
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
      await q.close();
    }
  });
});
