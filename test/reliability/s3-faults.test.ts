import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "../support/archive.js";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { makePhoto } from "../support/images.js";
import { type RunFixture, startRunFixture } from "../support/run-fixture.js";
import {
  enqueueAndWait,
  findCorruptOutputs,
  queueCounts,
  readResults,
  rowsByUri,
} from "../support/run-outcome.js";
import { putObjects } from "../support/s3.js";
import { type TestServices, uniqueName } from "../support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "../support/workers.js";

const IMAGES = 120;
const MISSING = ["missing/gone-1.jpg", "missing/gone 2.jpg", "missing/gone-3.png"];
const FORBIDDEN = ["forbidden/secret-1.jpg", "forbidden/secret-2.jpg"];

// S3 misbehaves on 15% of the workers' requests: 500s, 503s, slow answers, dropped connections.
describe("S3 faults (seeded fault-injecting proxy between workers and S3)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: WorkerProcess[] = [];
  let dir: string;
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    archive = await makeArchive("photos/", IMAGES);
    const photo = await makePhoto(80, 60);
    // The "forbidden" objects exist: only the proxy refuses them (as a bucket policy would).
    await putObjects(
      s3,
      input,
      new Map([
        ...archive.map((e) => [e.key, e.body] as const),
        ...FORBIDDEN.map((k) => [k, photo] as const),
      ]),
    );
    proxy = await startFaultProxy({
      target: services.s3.endpoint,
      faultRate: 0.15,
      seed: 20240601,
      slowMs: 300,
      deny: { match: (key) => key.startsWith("forbidden/"), status: 403 },
      // Permanent errors come back as they are, so the test can count the requests behind them.
      exempt: (key) => key.startsWith("missing/"),
    });
    // Workers go through the proxy; the producer talks to S3 directly.
    workers = [0, 1, 2].map(() =>
      startWorkerProcess({ ...env, S3_ENDPOINT: proxy.endpoint }, [
        "--concurrency",
        "2",
        "--batch-size",
        "8",
      ]),
    );
    dir = await mkdtemp(join(tmpdir(), "memscore-faults-"));
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await proxy?.stop();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("scores every image despite transient faults, and never retries 403/404", async () => {
    const keys = [...archive.map((e) => e.key), ...MISSING, ...FORBIDDEN];
    const manifest = join(dir, "manifest.jsonl");
    await writeFile(manifest, keys.map((key) => JSON.stringify({ uri: `s3://${input}/${key}` })).join("\n"));
    const result = await enqueueAndWait(
      env,
      ["--manifest", manifest],
      `s3://${output}/scores/`,
      "faults-run",
      ["--chunk-size", "10"],
    );
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);

    // Faults really happened, of every kind.
    const injected = new Map<string, number>();
    for (const r of proxy.log) if (r.fault) injected.set(r.fault, (injected.get(r.fault) ?? 0) + 1);
    for (const fault of ["500", "503", "slow", "drop-before", "drop-after", "denied"]) {
      expect(injected.get(fault) ?? 0, `injected ${fault} faults`).toBeGreaterThan(0);
    }

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
    for (const key of MISSING) expect(byUri.get(`s3://${input}/${key}`)?.error_reason, key).toBe("not_found");
    for (const key of FORBIDDEN)
      expect(byUri.get(`s3://${input}/${key}`)?.error_reason, key).toBe("forbidden");

    // Permanent errors are not retried: exactly one GET per missing or forbidden object.
    for (const key of [...MISSING, ...FORBIDDEN]) {
      const gets = proxy.log.filter((r) => r.method === "GET" && r.bucket === input && r.key === key);
      expect(
        gets.map((r) => r.status),
        key,
      ).toEqual([key.startsWith("missing/") ? 404 : 403]);
    }

    expect(await findCorruptOutputs(s3, output, "scores/")).toEqual([]);
    expect(await queueCounts(env.REDIS_URL as string, env.MEMSCORE_QUEUE as string)).toMatchObject({
      active: 0,
      wait: 0,
      failed: 0,
    });
  });
});
