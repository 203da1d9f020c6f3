import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outputLocations, parseS3Uri, RECORD_METADATA, resultsUri, type Storage } from "@memscore/shared";
import { BUNDLED_MODEL_PATH } from "@memscore/worker";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../../test/support/cli.js";
import { openTestQueue, testRedis } from "../../../test/support/queue.js";
import { startRecordingConsumer } from "../../../test/support/recording-consumer.js";
import { testStorage } from "../../../test/support/s3.js";
import {
  startClosedPort,
  startTestServices,
  type TestServices,
  uniqueName,
} from "../../../test/support/services.js";
import { budget, COMMAND_TIMEOUT_MS } from "../../../test/support/timeouts.js";

describe("memscore enqueue", () => {
  let services: TestServices;
  let storage: Storage;
  let redis: Redis;
  let dir: string;
  const inBucket = uniqueName("in");
  const otherBucket = uniqueName("other");
  const outBucket = uniqueName("out");
  const out = `s3://${outBucket}/scores/`;

  beforeAll(async () => {
    services = await startTestServices();
    for (const b of [inBucket, otherBucket, outBucket]) await services.s3.createBucket(b);
    storage = testStorage(services.env);
    redis = testRedis(services.env);
    dir = await mkdtemp(join(tmpdir(), "memscore-enqueue-cli-"));
    for (let i = 0; i < 12; i++) {
      await storage.put({ bucket: inBucket, key: `set/${i}.jpg` }, `image ${i}`, {
        contentType: "image/jpeg",
      });
    }
  });
  afterAll(async () => {
    storage?.close();
    await redis?.quit();
    await services?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    [[], /exactly one input/],
    [[`s3://${"in-x"}/p/`, "--manifest", "m.txt", "--out", "s3://out-x/o/"], /exactly one input/],
    [["s3://in-x/p/"], /--out is required/],
    [["s3://in-x/p/", "--out", "s3://out-x/o/", "--chunk-size", "0"], /--chunk-size: expected an integer/],
    [["s3://in-x/p/", "--out", "s3://out-x/o/", "--run-id", "a/b"], /--run-id/],
    [["http://in-x/p/", "--out", "s3://out-x/o/"], /s3:\/\/bucket\/key/],
    [["s3://in-x/p/", "--out", "s3://out-x/o/", "--bogus"], /Unknown option/],
  ])("exits 2 on bad usage: %j", async (args, message) => {
    const result = await runCli(["enqueue", ...args], services.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it("refuses a manifest with a forbidden bucket, naming the line, and enqueues nothing", async () => {
    const queue = uniqueName("q");
    const path = join(dir, "forbidden.csv");
    await writeFile(path, `uri,label\ns3://${inBucket}/set/1.jpg,a\n"s3://${otherBucket}/x.jpg",b\n`);
    const env = { ...services.env, MEMSCORE_ALLOWED_BUCKETS: `${inBucket},${outBucket}` };
    const result = await runCli(["enqueue", "--manifest", path, "--out", out, "--queue", queue], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`forbidden.csv:3: "s3://${otherBucket}/x.jpg"`);
    expect(await redis.keys(`*${queue}*`)).toEqual([]);
  });

  it("--dry-run --json counts without writing, with a generated run id", async () => {
    const queue = uniqueName("q");
    const result = await runCli(
      [
        "enqueue",
        `s3://${inBucket}/set/`,
        "--out",
        out,
        "--dry-run",
        "--json",
        "--chunk-size",
        "5",
        "--queue",
        queue,
      ],
      services.env,
    );
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ dryRun: true, imagesListed: 12, imagesEnqueued: 12, chunks: 3, queue });
    expect(summary.runId).toMatch(/^run-\d{8}-\d{6}-[0-9a-f]{4}$/);
    expect(await redis.keys(`*${queue}*`)).toEqual([]);
  });

  it(
    "--wait shows progress, then a summary with the results table",
    async () => {
      const queue = uniqueName("q");
      const q = openTestQueue(services.env, queue);
      const consumer = startRecordingConsumer(services.env, queue, storage, { delayMs: 20 });
      try {
        const result = await runCli(
          [
            "enqueue",
            `s3://${inBucket}/set/`,
            "--out",
            out,
            "--run-id",
            "cli-wait",
            "--chunk-size",
            "4",
            "--wait",
            "--queue",
            queue,
          ],
          services.env,
        );
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toMatch(/\] +100\.0% +12\/12 images .* img\/s/);
        expect(result.stdout).toContain("run cli-wait: 12 images enqueued in 3 chunks, 0 skipped");
        expect(result.stdout).toContain("run cli-wait complete: 12 scored, 0 failed, 0 skipped");
        expect(result.stdout).toContain(resultsUri(out, "cli-wait", "csv"));
        const csv = await storage.getText(parseS3Uri(resultsUri(out, "cli-wait", "csv")));
        expect(csv?.trim().split("\n")).toHaveLength(13);

        // The same run id again: nothing new is enqueued, and --json reports the finished run.
        const again = await runCli(
          [
            "enqueue",
            `s3://${inBucket}/set/`,
            "--out",
            out,
            "--run-id",
            "cli-wait",
            "--wait",
            "--json",
            "--queue",
            queue,
          ],
          services.env,
        );
        expect(again.code, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout)).toMatchObject({
          alreadyListed: true,
          chunks: 3,
          final: { imagesScored: 12, imagesFailed: 0 },
          results: { csv: resultsUri(out, "cli-wait", "csv"), jsonl: resultsUri(out, "cli-wait", "jsonl") },
        });
        expect(consumer.processed()).toBe(3);
      } finally {
        await consumer.close();
        await q.close({ obliterate: true });
      }
    },
    budget(2 * COMMAND_TIMEOUT_MS),
  );

  it(
    "--skip-existing compares records with the bundled model's sha256 by default",
    async () => {
      const sha = createHash("sha256")
        .update(await readFile(BUNDLED_MODEL_PATH))
        .digest("hex");
      const etags = new Map<string, string>();
      for await (const o of storage.list({ bucket: inBucket, key: "set/" }))
        etags.set(o.key.slice(4), o.etag);
      const skipOut = `s3://${outBucket}/skip/`;
      for (const rel of ["0.jpg", "1.jpg", "10.jpg"]) {
        await storage.put(outputLocations(skipOut, rel, "jpeg").record, "{}", {
          contentType: "application/json",
          metadata: {
            [RECORD_METADATA.heatmapFormat]: "jpeg",
            [RECORD_METADATA.inputEtag]: etags.get(rel) as string,
            [RECORD_METADATA.modelSha256]: sha,
            [RECORD_METADATA.status]: "scored",
          },
        });
      }
      const queue = uniqueName("q");
      const q = openTestQueue(services.env, queue);
      try {
        const args = [
          "enqueue",
          `s3://${inBucket}/set/`,
          "--out",
          skipOut,
          "--skip-existing",
          "--json",
          "--queue",
          queue,
        ];
        const result = await runCli(args, services.env);
        expect(result.code, result.stderr).toBe(0);
        expect(JSON.parse(result.stdout)).toMatchObject({ imagesSkipped: 3, imagesEnqueued: 9 });
        const other = await runCli([...args, "--dry-run", "--model-sha256", "f".repeat(64)], services.env);
        expect(JSON.parse(other.stdout)).toMatchObject({ imagesSkipped: 0, imagesEnqueued: 12 });
      } finally {
        await q.close({ obliterate: true });
      }
    },
    budget(2 * COMMAND_TIMEOUT_MS),
  );

  it("exits 1 with a clear message when Redis cannot be reached", async () => {
    const nothing = await startClosedPort();
    try {
      const env = { ...services.env, REDIS_URL: `redis://127.0.0.1:${nothing.port}` };
      const result = await runCli(["enqueue", `s3://${inBucket}/set/`, "--out", out], env);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain(`cannot reach Redis at redis://127.0.0.1:${nothing.port}`);
    } finally {
      await nothing.stop();
    }
  });
});
