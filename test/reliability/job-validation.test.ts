import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import type { ChunkJobData } from "@memscore/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, startWorkerProcess, stopProcesses, workerStarted } from "../support/cli.js";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { makePhoto } from "../support/images.js";
import { openTestQueue, type TestQueue } from "../support/queue.js";
import { listKeys, putObjects, testS3Client } from "../support/s3.js";
import { sleepUntil, startTestServices, type TestServices, uniqueName } from "../support/services.js";
import { START_TIMEOUT_MS } from "../support/timeouts.js";

// Hostile job payloads put straight into Redis, bypassing the producer.
describe("job payload validation (jobs added to Redis directly)", () => {
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let queue: TestQueue;
  let worker: CliProcess;
  const input = uniqueName("in");
  const output = uniqueName("out");
  const other = uniqueName("other"); // allowed, but not the configured output bucket
  const outside = uniqueName("evil"); // not in the allow-list at all

  beforeAll(async () => {
    services = await startTestServices();
    s3 = testS3Client(services.env);
    for (const bucket of [input, output, other, outside]) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    }
    // Real images everywhere: had a payload been trusted, there would be something to read and write.
    const photo = await makePhoto(64, 48);
    await putObjects(s3, input, new Map([["a.jpg", photo]]));
    await putObjects(s3, outside, new Map([["a.jpg", photo]]));
    // The worker talks to S3 through a logging proxy, so the test sees every request it makes.
    proxy = await startFaultProxy({ target: services.s3.endpoint });
    const env = {
      ...services.env,
      S3_ENDPOINT: proxy.endpoint,
      MEMSCORE_QUEUE: uniqueName("q"),
      MEMSCORE_ALLOWED_BUCKETS: [input, output, other].join(","),
      MEMSCORE_OUTPUT_BUCKET: output,
      MEMSCORE_INTRA_OP_THREADS: "1",
    };
    queue = openTestQueue(env);
    worker = startWorkerProcess(env);
    await workerStarted(worker);
  });

  afterAll(async () => {
    await stopProcesses(worker ? [worker] : []);
    await queue?.close();
    s3?.destroy();
    await proxy?.stop();
    await services?.stop();
  });

  it("fails each one once as unrecoverable, with a clear reason, and touches no object", async () => {
    const valid = {
      v: 1,
      runId: "run-1",
      chunkIndex: 0,
      outputPrefix: `s3://${output}/scores/`,
      images: [{ uri: `s3://${input}/a.jpg`, rel: "a.jpg" }],
    };
    const image = (uri: string) => ({ ...valid, images: [{ uri, rel: "a.jpg" }] });
    const cases: { name: string; data: unknown; reason: RegExp }[] = [
      {
        name: "bucket outside the allow-list",
        data: image(`s3://${outside}/a.jpg`),
        reason: /not in MEMSCORE_ALLOWED_BUCKETS/,
      },
      {
        name: "https URI",
        data: image("https://example.com/a.jpg"),
        reason: /expected an s3:\/\/bucket\/key URI, got scheme "https"/,
      },
      { name: "file URI", data: image("file:///etc/passwd"), reason: /got scheme "file"/ },
      {
        name: "output in another allowed bucket",
        data: { ...valid, outputPrefix: `s3://${other}/scores/` },
        reason: /is not the configured output bucket/,
      },
      {
        name: "output outside the allow-list",
        data: { ...valid, outputPrefix: `s3://${outside}/scores/` },
        reason: /not in MEMSCORE_ALLOWED_BUCKETS/,
      },
      { name: "unknown version", data: { ...valid, v: 2 }, reason: /unsupported version 2/ },
      { name: "path-like run id", data: { ...valid, runId: "../../etc" }, reason: /runId must match/ },
      {
        name: "negative chunk index",
        data: { ...valid, chunkIndex: -1 },
        reason: /chunkIndex must be an integer/,
      },
      { name: "images not a list", data: { ...valid, images: "a.jpg" }, reason: /images must be a list/ },
      {
        name: "size not a number",
        data: { ...valid, images: [{ uri: `s3://${input}/a.jpg`, rel: "a.jpg", size: "big" }] },
        reason: /size must be a non-negative integer/,
      },
      { name: "not an object", data: "rm -rf /", reason: /not an object/ },
      { name: "valid payload of a run no producer created", data: valid, reason: /unknown run "run-1"/ },
    ];
    // The producer's retry policy (8 attempts): an unrecoverable failure must not use them.
    const jobs = await Promise.all(
      cases.map((c, i) =>
        // Deliberately not a valid ChunkJobData: the queue is typed, a hostile client is not.
        queue.queue.add("score-chunk", c.data as ChunkJobData, {
          jobId: `hostile-${i}`,
          attempts: 8,
          backoff: { type: "fixed", delay: 100 },
        }),
      ),
    );
    await sleepUntil(async () => (await queue.counts()).failed === cases.length, {
      what: `all ${cases.length} hostile jobs failed`,
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 100,
      state: async () => ({ counts: await queue.counts(), worker: worker.tail() }),
    });

    for (const [i, c] of cases.entries()) {
      const job = await queue.queue.getJob(jobs[i]?.id as string);
      expect(await job?.getState(), c.name).toBe("failed");
      expect(job?.failedReason, c.name).toMatch(c.reason);
      expect(job?.attemptsMade, `${c.name}: not retried`).toBe(1);
    }
    expect(await queue.counts()).toMatchObject({ active: 0, waiting: 0, delayed: 0 });
    // Not one object was read or written on behalf of these jobs, and every output bucket is empty.
    expect(proxy.log.filter((r) => r.key !== "")).toEqual([]);
    for (const bucket of [output, other]) expect(await listKeys(s3, bucket)).toEqual([]);
    expect(await listKeys(s3, outside)).toEqual(["a.jpg"]);
    expect(worker.child.exitCode, "the worker survives hostile jobs").toBeNull();
  });
});
