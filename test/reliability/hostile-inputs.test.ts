import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { type HostileObject, makeHostileObjects } from "../support/hostile-objects.js";
import { sampleResidentMemory } from "../support/process-memory.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import { enqueueAndWait, findCorruptOutputs, readResults, rowsByUri } from "../support/run-outcome.js";
import { listKeys, putObjects } from "../support/s3.js";
import { type TestServices, uniqueName } from "../support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "../support/workers.js";

// The worker's default limit (MEMSCORE_MAX_IMAGE_BYTES, 50 MiB); the oversized object is 200 MB.
const MAX_IMAGE_BYTES = 50 * 1024 * 1024;
const OVERSIZED_BYTES = 200 * 1024 * 1024;
// Generous: the point is "bounded", not a tuned figure (a decoded bomb alone would be ~900 MB+).
const RSS_LIMIT_BYTES = 1.5 * 1024 ** 3;

// Broken, hostile and odd inputs in one run: each gets its own right outcome, nothing else suffers.
describe("hostile and broken inputs (one run, 2 workers, through a logging proxy)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: WorkerProcess[] = [];
  let dir: string;
  const input = uniqueName("in");
  const output = uniqueName("out");
  let objects: HostileObject[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    // makeHostileObjects adds 1 MiB to the size it is given for its "oversized" object.
    objects = await makeHostileObjects("hostile/", OVERSIZED_BYTES - 1024 * 1024);
    await putObjects(s3, input, new Map(objects.map((o) => [o.key, o.body])));
    proxy = await startFaultProxy({ target: services.s3.endpoint });
    const workerEnv = { ...env, S3_ENDPOINT: proxy.endpoint };
    workers = [0, 1].map(() => startWorkerProcess(workerEnv, ["--concurrency", "2", "--batch-size", "4"]));
    dir = await mkdtemp(join(tmpdir(), "memscore-hostile-run-"));
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await proxy?.stop();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("gives each input its right outcome, in bounded memory, with every output inside the prefix", async () => {
    const memory = sampleResidentMemory(workers.map((w) => w.child.pid as number));
    const result = await enqueueAndWait(
      env,
      [`s3://${input}/hostile/`],
      `s3://${output}/scores/`,
      "hostile-run",
      ["--chunk-size", "8"],
    );
    const peaks = await memory.stop();
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);

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

    // Memory stayed bounded through the bomb, the 1×100000 image and 1 MB of metadata.
    const peak = Math.max(...peaks.values());
    console.info(`hostile inputs: peak worker RSS ${(peak / 1024 ** 2).toFixed(0)} MiB`);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
    expect(await findCorruptOutputs(s3, output, "scores/")).toEqual([]);
  });

  it("keeps outputs inside the output prefix for keys with '..' segments (manifest input)", async () => {
    const uris = [
      `s3://${input}/hostile/names/../names/a..b.jpg`,
      `s3://${input}/../../../../etc/passwd`,
      `s3://${input}/hostile/../../${output}/escape.jpg`,
    ];
    const manifest = join(dir, "dots.txt");
    await writeFile(manifest, `${uris.join("\n")}\n`);
    const result = await enqueueAndWait(env, ["--manifest", manifest], `s3://${output}/scores/`, "dots-run");
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);
    const rows = await readResults(s3, output, "scores/", "dots-run");
    expect(rowsByUri(rows).size).toBe(uris.length);
    // No host file is ever read through a key: /etc/passwd is not an object of the bucket.
    expect(rowsByUri(rows).get(uris[1] as string)?.status).toBe("error");

    // The whole output bucket: every key under the prefix, no '..' segment anywhere.
    const keys = await listKeys(s3, output);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key.startsWith("scores/"), key).toBe(true);
      expect(key.split("/"), key).not.toContain("..");
    }
    expect(keys).toContain(`scores/${input}/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd.json`);
  });
});
