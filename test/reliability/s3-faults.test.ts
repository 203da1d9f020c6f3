import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { CHUNK_JOB_NAME, chunkJobId } from "@memscore/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "../support/archive.js";
import { type CliProcess, runCli, startWorkerProcess, stopProcesses, workerStarted } from "../support/cli.js";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { makePhoto } from "../support/images.js";
import { openTestQueue, type TestQueue } from "../support/queue.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, findCorruptOutputs, readResults, rowsByUri } from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { type TestServices, uniqueName } from "../support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS } from "../support/timeouts.js";

const IMAGES = 120;
const MISSING = ["missing/gone-1.jpg", "missing/gone 2.jpg", "missing/gone-3.png"];
const FORBIDDEN = ["forbidden/secret-1.jpg", "forbidden/secret-2.jpg"];
/** One chunk whose third image fails more often than the S3 client retries: the chunk is retried. */
const RETRIED = Array.from({ length: 8 }, (_, i) => `retried/p${i}.jpg`);
const FLAKY = "retried/p2.jpg";
/** The S3 client's own attempts per request (createS3Client's maxAttempts). */
const SDK_ATTEMPTS = 4;
/** One chunk with an image whose GET always fails. */
const EXHAUSTED = Array.from({ length: 4 }, (_, i) => `exhausted/p${i}.jpg`);
const ALWAYS_FAILING = "exhausted/p1.jpg";
// Workers give up on an S3 request after 2 s; a "slow" fault answers after 4 s: a real timeout.
const REQUEST_TIMEOUT_MS = 2_000;
const SLOW_MS = 4_000;

// S3 misbehaves on 15% of the workers' requests: 500s, 503s, slow answers, dropped connections.
describe("S3 faults (seeded fault-injecting proxy between workers and S3)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let queue: TestQueue;
  let workers: CliProcess[] = [];
  let dir: string;
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  const workerOutput = () => workers.map((w) => w.tail()).join("\n");
  const getsOf = (key: string) =>
    proxy.log.filter((r) => r.method === "GET" && r.bucket === input && r.key === key);
  const putsOf = (key: string) =>
    proxy.log.filter((r) => r.method === "PUT" && r.bucket === output && r.key === key);

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    queue = openTestQueue(env);
    archive = await makeArchive("photos/", IMAGES);
    const photos = await Promise.all(
      [...RETRIED, ...EXHAUSTED].map(
        async (key, i) => [key, await makePhoto(80 + i * 4, 60, i + 3)] as const,
      ),
    );
    // The "forbidden" objects exist: only the proxy refuses them (as a bucket policy would).
    await putObjects(
      s3,
      input,
      new Map([
        ...archive.map((e) => [e.key, e.body] as const),
        ...FORBIDDEN.map((k) => [k, photos[0]?.[1] as Buffer] as const),
        ...photos,
      ]),
    );
    proxy = await startFaultProxy({
      target: services.s3.endpoint,
      faultRate: 0.15,
      seed: 20240601,
      slowMs: SLOW_MS,
      deny: { match: (key) => key.startsWith("forbidden/"), status: 403 },
      // Permanent errors come back as they are, so the test can count the requests behind them.
      exempt: (key) => key.startsWith("missing/"),
      failFirst: [
        { match: (method, key) => method === "GET" && key === FLAKY, count: SDK_ATTEMPTS, status: 503 },
        {
          match: (method, key) => method === "GET" && key === ALWAYS_FAILING,
          count: Number.POSITIVE_INFINITY,
          status: 503,
        },
      ],
    });
    // Workers go through the proxy; the producer talks to S3 directly.
    workers = [0, 1, 2].map(() =>
      startWorkerProcess(
        {
          ...env,
          S3_ENDPOINT: proxy.endpoint,
          MEMSCORE_S3_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        },
        ["--concurrency", "2", "--batch-size", "8"],
      ),
    );
    await Promise.all(workers.map((w) => workerStarted(w)));
    dir = await mkdtemp(join(tmpdir(), "memscore-faults-"));
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(workers);
    await queue?.close();
    await proxy?.stop();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "scores every image despite 5xx, timeouts and dropped connections, and never retries 403/404",
    async () => {
      const keys = [...archive.map((e) => e.key), ...MISSING, ...FORBIDDEN];
      const manifest = join(dir, "manifest.jsonl");
      await writeFile(
        manifest,
        keys.map((key) => JSON.stringify({ uri: `s3://${input}/${key}` })).join("\n"),
      );
      const result = await enqueueAndWait(
        env,
        ["--manifest", manifest],
        `s3://${output}/scores/`,
        "faults-run",
        ["--chunk-size", "10"],
      );
      expect(result.code, `${result.stderr}\n${workerOutput()}`).toBe(0);

      // Faults really happened, of every kind, and slow answers really outlasted the request timeout.
      const injected = new Map<string, number>();
      for (const r of proxy.log) if (r.fault) injected.set(r.fault, (injected.get(r.fault) ?? 0) + 1);
      for (const fault of ["500", "503", "slow", "drop-before", "drop-after", "denied"]) {
        expect(injected.get(fault) ?? 0, `injected ${fault} faults`).toBeGreaterThan(0);
      }
      const timedOut = proxy.log.filter((r) => r.fault === "slow" && r.abandoned);
      expect(timedOut.length, "slow answers the workers gave up waiting for").toBeGreaterThan(0);

      // Every image has its right outcome: transient faults never turned into an error row.
      const rows = await readResults(s3, output, "scores/", "faults-run");
      expect(rows).toHaveLength(keys.length);
      const byUri = rowsByUri(rows);
      for (const entry of archive) {
        const row = byUri.get(`s3://${input}/${entry.key}`);
        if (entry.expect === "scored")
          expect(row?.status, `${entry.key}: ${row?.error_message}`).toBe("scored");
        else expect(row?.error_reason, entry.key).toBe(entry.expect.reason);
      }
      for (const key of MISSING)
        expect(byUri.get(`s3://${input}/${key}`)?.error_reason, key).toBe("not_found");
      for (const key of FORBIDDEN)
        expect(byUri.get(`s3://${input}/${key}`)?.error_reason, key).toBe("forbidden");

      // Permanent errors are not retried: exactly one GET per missing or forbidden object.
      for (const key of [...MISSING, ...FORBIDDEN]) {
        expect(
          getsOf(key).map((r) => r.status),
          key,
        ).toEqual([key.startsWith("missing/") ? 404 : 403]);
      }

      expect(await findCorruptOutputs(s3, output, "scores/")).toEqual([]);
      expect(await queue.counts()).toMatchObject({ active: 0, waiting: 0, failed: 0 });
    },
    budget(RUN_TIMEOUT_MS),
  );

  it(
    "retries a chunk whose image outlasted the S3 client's retries, without scoring the others again",
    async () => {
      proxy.setFaultRate(0); // only the flaky image fails now, so every request can be counted
      const result = await enqueueAndWait(
        env,
        [`s3://${input}/retried/`],
        `s3://${output}/retried/`,
        "retried-run",
        ["--chunk-size", String(RETRIED.length)],
      );
      expect(result.code, `${result.stderr}\n${workerOutput()}`).toBe(0);
      const rows = rowsByUri(await readResults(s3, output, "retried/", "retried-run"));
      for (const key of RETRIED) expect(rows.get(`s3://${input}/${key}`)?.status, key).toBe("scored");

      // The chunk failed its first attempt (the flaky image's GET failed SDK_ATTEMPTS times) ...
      const job = await queue.queue.getJob(chunkJobId("retried-run", 0));
      expect(job?.attemptsStarted, "attempts of the chunk").toBeGreaterThan(1);
      const flaky = getsOf(FLAKY);
      expect(flaky.map((r) => r.status)).toEqual([...Array(SDK_ATTEMPTS).fill(503), 200]);
      // ... and its retry reused what the first attempt had written: every other image was
      // fetched once and its heatmap and record were written once.
      for (const key of RETRIED) {
        const rel = key.slice("retried/".length);
        if (key !== FLAKY) expect(getsOf(key).length, `GETs of ${key}`).toBe(1);
        expect(putsOf(`retried/${rel}.heatmap.jpg`).length, `heatmap PUTs of ${key}`).toBe(1);
        expect(putsOf(`retried/${rel}.json`).length, `record PUTs of ${key}`).toBe(1);
      }
    },
    budget(RUN_TIMEOUT_MS),
  );

  it(
    "gives an image whose transient faults outlast every retry retries_exhausted, and scores the rest of its chunk",
    async () => {
      proxy.setFaultRate(0);
      // The producer gives each chunk 8 attempts with exponential back-off (127 s of waiting);
      // this chunk gets 2, so its final attempt comes within a second. What a final attempt does
      // is the worker's business, and that is what is tested. The queue is paused meanwhile so
      // that no worker takes the producer's job before it is replaced.
      await queue.queue.pause();
      const enqueued = await runCli(
        [
          "enqueue",
          `s3://${input}/exhausted/`,
          "--out",
          `s3://${output}/exhausted/`,
          "--run-id",
          "exhausted-run",
          "--chunk-size",
          String(EXHAUSTED.length),
        ],
        { ...env, MEMSCORE_METRICS_PORT: "0" },
      );
      expect(enqueued.code, enqueued.stderr).toBe(0);
      const original = await queue.queue.getJob(chunkJobId("exhausted-run", 0));
      expect(original?.opts.attempts).toBe(8);
      await original?.remove();
      await queue.queue.add(CHUNK_JOB_NAME, original?.data as NonNullable<typeof original>["data"], {
        jobId: chunkJobId("exhausted-run", 0),
        attempts: 2,
        backoff: { type: "fixed", delay: 100 },
      });
      await queue.queue.resume();

      // The same run id again: --wait follows the run to its end and reports it.
      const result = await enqueueAndWait(
        env,
        [`s3://${input}/exhausted/`],
        `s3://${output}/exhausted/`,
        "exhausted-run",
      );
      expect(result.code, `${result.stderr}\n${workerOutput()}`).toBe(0);
      expect(result.summary?.final).toMatchObject({
        imagesScored: EXHAUSTED.length - 1,
        imagesFailed: 1,
        failuresByReason: { retries_exhausted: 1 },
      });
      const rows = rowsByUri(await readResults(s3, output, "exhausted/", "exhausted-run"));
      for (const key of EXHAUSTED) {
        const row = rows.get(`s3://${input}/${key}`);
        if (key === ALWAYS_FAILING) {
          expect(row).toMatchObject({ status: "error", error_reason: "retries_exhausted" });
          expect(row?.error_message).toMatch(/HTTP 503/);
        } else expect(row?.status, key).toBe("scored");
      }
      // Both attempts asked for it, and every answer was the injected 503.
      const gets = getsOf(ALWAYS_FAILING);
      expect(gets.length).toBeGreaterThanOrEqual(2);
      expect(gets.every((r) => r.status === 503)).toBe(true);
      const job = await queue.queue.getJob(chunkJobId("exhausted-run", 0));
      expect([await job?.getState(), job?.attemptsStarted]).toEqual(["completed", 2]);
    },
    budget(RUN_TIMEOUT_MS, RUN_TIMEOUT_MS),
  );
});
