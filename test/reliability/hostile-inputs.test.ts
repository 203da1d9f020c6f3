import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeArchive } from "../support/archive.js";
import { type CliProcess, startWorkerProcess, stopProcesses, workerStarted } from "../support/cli.js";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { type HostileObject, makeHostileObjects } from "../support/hostile-objects.js";
import { peakResidentBytes } from "../support/process-memory.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, findCorruptOutputs, readResults, rowsByUri } from "../support/run-outcome.js";
import { listKeys, putObjects } from "../support/s3.js";
import { type TestServices, uniqueName } from "../support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS } from "../support/timeouts.js";

// The worker's default limit (MEMSCORE_MAX_IMAGE_BYTES, 50 MiB); the oversized object is 200 MB.
const MAX_IMAGE_BYTES = 50 * 1024 * 1024;
const OVERSIZED_BYTES = 200 * 1024 * 1024;
const MIB = 1024 ** 2;
const BATCH_SIZE = 4;
/**
 * The memory bound the README documents for a worker's images: MEMSCORE_MAX_IMAGES_IN_FLIGHT
 * images (default max(4 × batch size, 32) = 32 here) each holding at most 3 MiB of decoded pixels
 * (1024 px on the long side × 3 bytes), so 96 MiB.
 */
const IN_FLIGHT_BOUND_BYTES = Math.max(4 * BATCH_SIZE, 32) * 3 * MIB;
/** Ordinary images scored first, to measure what the worker process needs without hostile inputs. */
const WARM_UP_IMAGES = 64;

// Broken, hostile and odd inputs in one run: each gets its own right outcome, nothing else suffers.
describe("hostile and broken inputs (one run, one worker, through a logging proxy)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let worker: CliProcess;
  let dir: string;
  const input = uniqueName("in");
  const output = uniqueName("out");
  let objects: HostileObject[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    // makeHostileObjects adds 1 MiB to the size it is given for its "oversized" object.
    objects = await makeHostileObjects("hostile/", OVERSIZED_BYTES - MIB);
    const warmUp = await makeArchive("warm-up/", WARM_UP_IMAGES);
    await putObjects(
      s3,
      input,
      new Map([
        ...objects.map((o) => [o.key, o.body] as const),
        ...warmUp.map((e) => [e.key, e.body] as const),
      ]),
    );
    proxy = await startFaultProxy({ target: services.s3.endpoint });
    // One worker: its memory is measured against what it needed for ordinary images.
    worker = startWorkerProcess({ ...env, S3_ENDPOINT: proxy.endpoint }, [
      "--concurrency",
      "2",
      "--batch-size",
      String(BATCH_SIZE),
    ]);
    await workerStarted(worker);
    dir = await mkdtemp(join(tmpdir(), "memscore-hostile-run-"));
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(worker ? [worker] : []);
    await proxy?.stop();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "gives each input its right outcome, within the documented memory bound, with every output inside the prefix",
    async () => {
      const pid = worker.child.pid as number;
      // The baseline: the worker's peak resident memory after scoring ordinary images of the same
      // kinds and sizes (model, ONNX Runtime arenas, libvips caches, a heap that has grown to its
      // working size). VmHWM is the kernel's own high-water mark, so no peak is missed.
      const warmUp = await enqueueAndWait(
        env,
        [`s3://${input}/warm-up/`],
        `s3://${output}/warm-up/`,
        "warm-up",
        ["--chunk-size", "8"],
      );
      expect(warmUp.code, `${warmUp.stderr}\n${worker.tail()}`).toBe(0);
      const baseline = await peakResidentBytes(pid);

      const result = await enqueueAndWait(
        env,
        [`s3://${input}/hostile/`],
        `s3://${output}/scores/`,
        "hostile-run",
        ["--chunk-size", "8"],
      );
      expect(result.code, `${result.stderr}\n${worker.tail()}`).toBe(0);
      const peak = await peakResidentBytes(pid);

      const rows = await readResults(s3, output, "scores/", "hostile-run");
      expect(rows).toHaveLength(objects.length);
      const byUri = rowsByUri(rows);
      for (const object of objects) {
        const row = byUri.get(`s3://${input}/${object.key}`);
        const outcome = row?.status === "scored" ? "scored" : row?.error_reason;
        expect(outcome, `${object.key}: ${row?.error_message ?? ""}`).toBe(object.expect);
      }

      // The oversized object was refused from its listed size: never fetched, not one body byte read.
      const oversized = objects.find((o) => o.key.endsWith("oversized.jpg")) as HostileObject;
      expect(oversized.body.length).toBeGreaterThan(MAX_IMAGE_BYTES);
      expect(proxy.log.filter((r) => r.bucket === input && r.key === oversized.key)).toEqual([]);

      // The image whose outputs would need over-long keys: no output attempted, none written.
      const long = objects.find((o) => o.expect === "invalid_uri") as HostileObject;
      const longRel = long.key.slice("hostile/".length);
      expect(proxy.log.filter((r) => r.bucket === output && r.key.startsWith(`scores/${longRel}`))).toEqual(
        [],
      );

      // Memory: the bomb (900 megapixels), the 1×100000 image and 1 MB of metadata cost no more
      // than the documented in-flight bound on top of what ordinary images needed.
      console.info(
        `hostile inputs: worker peak RSS ${(baseline / MIB).toFixed(0)} MiB after ${WARM_UP_IMAGES} ordinary images, ` +
          `${(peak / MIB).toFixed(0)} MiB after the hostile ones (bound ${((baseline + IN_FLIGHT_BOUND_BYTES) / MIB).toFixed(0)} MiB)`,
      );
      expect(peak).toBeLessThanOrEqual(baseline + IN_FLIGHT_BOUND_BYTES);
      expect(await findCorruptOutputs(s3, output, "scores/")).toEqual([]);
    },
    budget(RUN_TIMEOUT_MS, RUN_TIMEOUT_MS),
  );

  it(
    "keeps outputs inside the output prefix for keys with '..' segments (manifest input)",
    async () => {
      const uris = [
        `s3://${input}/hostile/names/../names/a..b.jpg`,
        `s3://${input}/../../../../etc/passwd`,
        `s3://${input}/hostile/../../${output}/escape.jpg`,
      ];
      const manifest = join(dir, "dots.txt");
      await writeFile(manifest, `${uris.join("\n")}\n`);
      const result = await enqueueAndWait(
        env,
        ["--manifest", manifest],
        `s3://${output}/scores/`,
        "dots-run",
      );
      expect(result.code, `${result.stderr}\n${worker.tail()}`).toBe(0);
      const rows = rowsByUri(await readResults(s3, output, "scores/", "dots-run"));
      expect(rows.size).toBe(uris.length);
      // The worker asks S3 for each key verbatim (`..` is part of a key, never a path step: S3
      // keeps such keys apart, though s3rver resolves the dots, so the first one is found here).
      for (const uri of uris) {
        const key = uri.slice(`s3://${input}/`.length);
        expect(
          proxy.log.filter((r) => r.method === "GET" && r.bucket === input && r.key === key),
          key,
        ).toHaveLength(1);
      }
      // No host file is ever read through a key: neither is an object of the bucket.
      for (const uri of uris.slice(1)) expect(rows.get(uri)?.error_reason, uri).toBe("not_found");

      // The whole output bucket: every key under the prefix, no '..' segment anywhere.
      const keys = await listKeys(s3, output);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) {
        expect(key.startsWith("scores/") || key.startsWith("warm-up/"), key).toBe(true);
        expect(key.split("/"), key).not.toContain("..");
      }
      expect(keys).toContain(`scores/${input}/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd.json`);
    },
    budget(RUN_TIMEOUT_MS),
  );
});
