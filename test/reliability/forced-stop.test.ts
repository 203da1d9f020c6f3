import type { S3Client } from "@aws-sdk/client-s3";
import { FORCED_STOP_EXIT_MS } from "@memscore/cli";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "../support/archive.js";
import { type CliProcess, runCli, startWorkerProcess, stopProcesses } from "../support/cli.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, uniqueName } from "../support/services.js";

// A worker whose Redis and S3 have both gone away must still end when told to: a second SIGTERM
// exits within FORCED_STOP_EXIT_MS with the signal's code, and every cleanup step is bounded, so
// the process ends by itself (not only by the last-resort exit timer).
describe("forced stop with Redis and S3 gone", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  const workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output], extraEnv: { MEMSCORE_LOG_LEVEL: "info" } });
    ({ env, s3 } = fixture);
    const archive = await makeArchive("photos/", 120);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await fixture?.stop();
  });

  it("exits 143 within the bound after two SIGTERMs, its cleanup bounded", async () => {
    const enqueued = await runCli(
      ["enqueue", `s3://${input}/photos/`, "--out", `s3://${output}/scores/`, "--chunk-size", "20"],
      { ...env, MEMSCORE_METRICS_PORT: "0" },
    );
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const worker = startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "4"]);
    workers.push(worker);

    // Wait until the worker holds chunks, so the stop has work in flight to abandon.
    const connection = new Redis(env.REDIS_URL as string, { maxRetriesPerRequest: null });
    const queue = new Queue(env.MEMSCORE_QUEUE as string, { connection });
    try {
      await sleepUntil(async () => (await queue.getActiveCount()) > 0, {
        what: "the worker to hold chunks",
        timeoutMs: 120_000,
        state: () => worker.tail(),
      });
    } finally {
      await queue.close();
      connection.disconnect();
    }

    // Both servers gone mid-run: Redis killed outright, the S3 server closed.
    process.kill(fixture.services.redis.pid() as number, "SIGKILL");
    await fixture.services.s3.stop();
    await sleepUntil(() => /redis connection (error|lost)/.test(worker.output()), {
      what: "the worker to see Redis gone",
      timeoutMs: 30_000,
      state: () => worker.tail(),
    });

    worker.child.kill("SIGTERM");
    await sleepUntil(() => worker.output().includes("shutting down gracefully"), {
      what: "the worker to start draining",
      timeoutMs: 30_000,
      state: () => worker.tail(),
    });
    const forcedAt = Date.now();
    worker.child.kill("SIGTERM");
    const exit = await worker.exited;
    const took = Date.now() - forcedAt;

    expect(exit.code, worker.output()).toBe(143);
    expect(took, `exited ${took} ms after the second SIGTERM\n${worker.output()}`).toBeLessThan(
      FORCED_STOP_EXIT_MS,
    );
    expect(worker.output(), "cleanup ended by itself, not by the exit timer").not.toContain(
      "stop did not finish in time",
    );
  });
});
