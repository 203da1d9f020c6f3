import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "../support/archive.js";
import { type CliProcess, startWorkerProcess, stopProcesses, workerStarted } from "../support/cli.js";
import { queueCounts } from "../support/queue.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, readResults, rowsByUri } from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { sleepUntil, type TestServices, uniqueName } from "../support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS } from "../support/timeouts.js";

const IMAGES = 150;

// Redis goes away and comes back (with AOF, as in production) while a run is in progress.
describe("Redis restart mid-run (AOF persistence, 3 workers, enqueue --wait)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output], redis: { appendonly: true } });
    ({ services, env, s3 } = fixture);
    archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    workers = [0, 1, 2].map(() => startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"]));
    await Promise.all(workers.map((w) => workerStarted(w)));
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(workers);
    await fixture?.stop();
  });

  it(
    "workers and the waiting producer reconnect by themselves and the run completes",
    async () => {
      const run = enqueueAndWait(env, [`s3://${input}/photos/`], `s3://${output}/scores/`, "restart-run", [
        "--chunk-size",
        "10",
      ]);
      const counts = () => queueCounts(env);
      // Restart while chunks are in flight and more are waiting.
      await sleepUntil(
        async () => {
          const c = await counts();
          return c.completed >= 3 && c.active > 0;
        },
        {
          what: "3 chunks completed and more in flight",
          timeoutMs: RUN_TIMEOUT_MS,
          intervalMs: 100,
          state: async () => ({ counts: await counts(), workers: workers.map((w) => w.tail()) }),
        },
      );
      const pidBefore = services.redis.pid();
      await services.redis.restart();
      expect(services.redis.pid()).not.toBe(pidBefore);

      const result = await run;
      expect(result.code, `${result.stderr}\n${workers.map((w) => w.tail()).join("\n")}`).toBe(0);
      expect(result.summary?.imagesEnqueued).toBe(IMAGES);
      const rows = await readResults(s3, output, "scores/", "restart-run");
      expect(rows).toHaveLength(IMAGES);
      const byUri = rowsByUri(rows);
      for (const entry of archive) {
        const row = byUri.get(`s3://${input}/${entry.key}`);
        if (entry.expect === "scored") expect(row?.status, entry.key).toBe("scored");
        else expect(row?.error_reason, entry.key).toBe(entry.expect.reason);
      }
      expect(await counts()).toMatchObject({ active: 0, waiting: 0, failed: 0 });
      // The same three workers did it all: none exited over the lost connection.
      for (const w of workers) expect(w.running(), w.tail()).toBe(true);
      // Each worker noticed the outage (and carried on).
      for (const w of workers) expect(w.output()).toContain("redis connection lost; reconnecting");
    },
    budget(RUN_TIMEOUT_MS),
  );
});
