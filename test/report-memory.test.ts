import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createRedisConnection,
  type ResultRow,
  type RunModel,
  RunState,
  readRunSummary,
  writeResultsPart,
} from "@memscore/shared";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { putObjects, testStorage } from "./support/s3.js";
import { uniqueName } from "./support/services.js";

const PEAK_MEMORY = fileURLToPath(new URL("./support/print-peak-memory.mjs", import.meta.url));
const COMPLETE_RUN = fileURLToPath(new URL("./support/complete-run.mjs", import.meta.url));
const MiB = 1024 * 1024;
const ROWS = 100_000;
const HEATMAPS = 48;

/** The VmHWM a process preloaded with print-peak-memory.mjs printed as it exited, in bytes. */
function peakMemory(stderr: string): number {
  const kb = /peak-memory VmHWM_kB=(\d+)/.exec(stderr)?.[1];
  if (kb === undefined) throw new Error(`no peak memory in the output:\n${stderr.slice(-2000)}`);
  return Number(kb) * 1024;
}

/** Runs `node SCRIPT ARGS` with the peak-memory preload; resolves with its exit code and stderr. */
function runScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", PEAK_MEMORY, script, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

// A synthetic run of 100,000 rows (made without scoring 100,000 images): its tables are merged by
// a real process and reported on by a real `memscore report`, whose peak memory is measured. The
// merge's peak is printed too: it is dominated by the three streamed multipart uploads
// (Storage.putStream), not by the rows.
describe("memscore report on a 100,000-row run", () => {
  let fixture: RunFixture;
  let dir: string;
  const bucket = uniqueName("out");
  const out = `s3://${bucket}/scores/`;
  const runId = "big-1";
  let scored = 0;

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [bucket] });
    dir = await mkdtemp(join(tmpdir(), "memscore-report-memory-"));
    // Heatmaps as the worker writes them by default (1024 px JPEG, quality 85), of noise: the
    // largest such files, so the thumbnails are real work.
    const heatmaps = new Map<string, Buffer>();
    for (let i = 0; i < HEATMAPS; i++) {
      const jpeg = await sharp({
        create: {
          width: 1024,
          height: 768,
          channels: 3,
          background: "#808080",
          noise: { type: "gaussian", mean: 128, sigma: 40 },
        },
      })
        .jpeg({ quality: 85 })
        .toBuffer();
      heatmaps.set(`scores/heat/h-${i}.heatmap.jpg`, jpeg);
    }
    await putObjects(fixture.s3, bucket, heatmaps);

    const storage = testStorage(fixture.env);
    const redis = createRedisConnection(fixture.env.REDIS_URL as string, { name: "report-memory-test" });
    const model: RunModel = {
      name: "resmemnet-r50",
      version: "2",
      sha256: "c".repeat(64),
      trained: true,
      training_data: "LaMem split 1",
      license: "CC BY 4.0 (test weights)",
    };
    try {
      const run = new RunState(redis, fixture.env.MEMSCORE_QUEUE as string, runId);
      await run.create({ input: `s3://${bucket}/archive/`, outputPrefix: out, modelSha256: model.sha256 });
      const chunkRows = 5_000;
      const chunks = ROWS / chunkRows;
      await run.saveCheckpoint({
        nextChunkIndex: chunks,
        cursor: "",
        imagesEnqueued: ROWS,
        imagesSkipped: 0,
      });
      await run.markListingDone("test");
      for (let c = 0; c < chunks; c++) {
        const rows: ResultRow[] = [];
        for (let i = c * chunkRows; i < (c + 1) * chunkRows; i++) {
          const uri = `s3://${bucket}/archive/2024/${String(i % 997).padStart(4, "0")}/photo-${i}.jpg`;
          if (i % 50 === 7) {
            rows.push({
              uri,
              status: "error",
              error_reason: ["decode_failed", "not_image", "too_large"][i % 3] as string,
              error_message: "synthetic failure",
              model_sha256: model.sha256,
            });
          } else if (i % 100 === 11) {
            rows.push({ uri, status: "skipped", model_sha256: model.sha256 });
          } else {
            scored++;
            rows.push({
              uri,
              status: "scored",
              score: 0.5 + 0.2 * Math.sin(i * 12.9898) * Math.cos(i * 0.001),
              heatmap: `s3://${bucket}/scores/heat/h-${i % HEATMAPS}.heatmap.jpg`,
              model_sha256: model.sha256,
            });
          }
        }
        await writeResultsPart(storage, out, runId, { kind: "chunk", index: c }, rows);
        await run.recordChunk(c, { scored: 0, failed: 0, failuresByReason: {} }, "test", model);
      }
    } finally {
      storage.close();
      await redis.quit();
    }
  });

  afterAll(async () => {
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes the report of it in a process that peaks under 200 MiB", async () => {
    const completion = await runScript(
      COMPLETE_RUN,
      [fixture.env.MEMSCORE_QUEUE as string, runId],
      fixture.env,
    );
    expect(completion.code, completion.stderr).toBe(0);
    const storage = testStorage(fixture.env);
    try {
      expect((await readRunSummary(storage, out, runId)).images.total).toBe(ROWS);
    } finally {
      storage.close();
    }

    const html = join(dir, "report.html");
    const report = await runCli(["report", `${out}_runs/${runId}/`, "--out", html], {
      ...fixture.env,
      NODE_OPTIONS: `--import=${PEAK_MEMORY}`,
    });
    expect(report.code, report.stderr).toBe(0);
    const page = await readFile(html, "utf8");
    const counts = [...page.matchAll(/data-count="(\d+)"/g)].map((m) => Number(m[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(scored);
    expect([...page.matchAll(/<img src="data:image\/jpeg;base64,/g)]).toHaveLength(48);
    expect(page).toContain("CC BY 4.0 (test weights)");
    expect(page).not.toContain('id="untrained"');

    const completionPeak = peakMemory(completion.stderr);
    const reportPeak = peakMemory(report.stderr);
    console.log(
      `${ROWS} rows: completion (tables + run.json) VmHWM ${(completionPeak / MiB).toFixed(1)} MiB; ` +
        `memscore report VmHWM ${(reportPeak / MiB).toFixed(1)} MiB (report.html ${(page.length / 1024).toFixed(0)} kB)`,
    );
    expect(reportPeak).toBeLessThan(200 * MiB);
  });
});
