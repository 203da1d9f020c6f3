import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { S3Client } from "@aws-sdk/client-s3";
import type { ImageRecord } from "@memscore/shared";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  exitOf,
  runCli,
  startWorkerProcess,
  stopProcesses,
  waitForOutput,
} from "./support/cli.js";
import { type FaultProxy, startFaultProxy } from "./support/fault-proxy.js";
import { makePhoto } from "./support/images.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { enqueueAndWait, readResults, rowsByUri } from "./support/run-outcome.js";
import { getBytes, putObjects } from "./support/s3.js";
import { type TestServices, uniqueName } from "./support/services.js";
import { budget, COMMAND_TIMEOUT_MS, RUN_TIMEOUT_MS } from "./support/timeouts.js";

const MODEL = fileURLToPath(new URL("./fixtures/models/contract-ok.onnx", import.meta.url));

// A worker configured through MEMSCORE_* variables does what each one says; flags win over them;
// a bad value stops it with a one-line message naming the variable.
describe("worker configuration from the environment (one worker process, real Redis and S3)", () => {
  let fixture: RunFixture;
  let services: TestServices;
  let proxy: FaultProxy;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  const workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  /** An incompressible JPEG-named object of 300 kB: over a 280 kB byte limit. */
  const heavy = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ services, env, s3 } = fixture);
    await putObjects(
      s3,
      input,
      new Map([
        ["cfg/small.jpg", await makePhoto(300, 200, 2)],
        [
          "cfg/wide.jpg",
          await sharp(await makePhoto(400, 200, 3))
            .resize(2000, 1000)
            .jpeg()
            .toBuffer(),
        ],
        ["cfg/heavy.jpg", heavy],
      ]),
    );
    proxy = await startFaultProxy({ target: services.s3.endpoint });
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await proxy?.stop();
    await fixture?.stop();
  });

  it(
    "follows MEMSCORE_MODEL, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, HEATMAP_MAX_SIDE, CONCURRENCY and LOG_FORMAT; flags win",
    async () => {
      const worker = startWorkerProcess(
        {
          ...env,
          S3_ENDPOINT: proxy.endpoint,
          MEMSCORE_MODEL: MODEL,
          MEMSCORE_MAX_IMAGE_BYTES: "280000",
          MEMSCORE_MAX_IMAGE_PIXELS: "1000000",
          MEMSCORE_HEATMAP_MAX_SIDE: "256",
          MEMSCORE_CONCURRENCY: "3",
          MEMSCORE_LOG_FORMAT: "text",
          // Bad, but the flag below wins: the variable is never read.
          MEMSCORE_BATCH_SIZE: "abc",
        },
        ["--batch-size", "5"],
      );
      workers.push(worker);
      // Text logs, with the settings it runs with.
      const started = await waitForOutput(worker, /^info: worker started .*$/m);
      expect(started[0]).toMatch(/ concurrency=3 batchSize=5 /);
      expect(worker.output()).not.toMatch(/^\{/m);

      const result = await enqueueAndWait(env, [`s3://${input}/cfg/`], `s3://${output}/cfg/`, "cfg-run");
      expect(result.code, `${result.stderr}\n${worker.tail()}`).toBe(0);
      const rows = rowsByUri(await readResults(s3, output, "cfg/", "cfg-run"));
      // Over MEMSCORE_MAX_IMAGE_BYTES: refused from its listed size, never fetched.
      expect(rows.get(`s3://${input}/cfg/heavy.jpg`)?.error_reason).toBe("too_large");
      expect(proxy.log.filter((r) => r.key === "cfg/heavy.jpg")).toEqual([]);
      // Over MEMSCORE_MAX_IMAGE_PIXELS (2000×1000): refused from its header.
      const wide = rows.get(`s3://${input}/cfg/wide.jpg`);
      expect(wide?.error_reason).toBe("too_large");
      expect(wide?.error_message).toContain("exceeds the limit of 1000000");
      // Scored by MEMSCORE_MODEL, with a heatmap of MEMSCORE_HEATMAP_MAX_SIDE on its long side.
      expect(rows.get(`s3://${input}/cfg/small.jpg`)?.status).toBe("scored");
      const record = JSON.parse((await getBytes(s3, output, "cfg/small.jpg.json")).toString()) as ImageRecord;
      const sha256 = createHash("sha256")
        .update(await readFile(MODEL))
        .digest("hex");
      expect(record.model).toMatchObject({ name: "contract-fixture", sha256 });
      const heatmap = await sharp(await getBytes(s3, output, "cfg/small.jpg.heatmap.jpg")).metadata();
      expect([heatmap.width, heatmap.height]).toEqual([256, 171]);
    },
    budget(RUN_TIMEOUT_MS),
  );

  it(
    "stops with a one-line message naming a bad variable, and exit code 2",
    async () => {
      for (const [name, value, why] of [
        ["MEMSCORE_BATCH_SIZE", "abc", 'expected an integer from 1 to 1024, got "abc"'],
        ["REDIS_URL", "http://127.0.0.1:6379", 'expected the redis:// or rediss:// scheme, got "http:"'],
        ["MEMSCORE_PROVIDER", "tpu", 'expected one of auto, cpu, cuda, webgpu, got "tpu"'],
      ] as const) {
        const result = await runCli(["worker"], { ...env, [name]: value });
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toBe(`memscore worker: ${name}: ${why}\n`);
      }
    },
    budget(3 * COMMAND_TIMEOUT_MS),
  );

  it("refuses a model whose sha256 is not MEMSCORE_MODEL_SHA256, before taking any chunk", async () => {
    const worker = startWorkerProcess({
      ...env,
      MEMSCORE_MODEL: MODEL,
      MEMSCORE_MODEL_SHA256: "0".repeat(64),
    });
    workers.push(worker);
    const exit = await exitOf(worker);
    expect(exit.code, worker.tail()).toBe(2);
    expect(worker.stderr()).toMatch(/has sha256 [0-9a-f]{64}, expected MEMSCORE_MODEL_SHA256=0{64}/);
  });
});
