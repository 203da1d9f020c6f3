import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DuckDBInstance } from "@duckdb/node-api";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "./support/archive.js";
import { openFileInChromium } from "./support/chromium.js";
import { type CliProcess, runCli, startWorkerProcess, stopProcesses } from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { enqueueAndWait, type ResultRow, readResults } from "./support/run-outcome.js";
import { getBytes, putObjects } from "./support/s3.js";
import { uniqueName } from "./support/services.js";

/** Screenshots of the reports tests open, kept for people to look at (git-ignored). */
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
const TOP = 6;

/** The parts of an <img> element the test reads, in the page (the test has no DOM types). */
interface PageImage {
  decode(): Promise<void>;
  naturalWidth: number;
  naturalHeight: number;
  src: string;
}

interface RecordJson {
  model: { sha256: string; name: string };
}

// A real run (S3 API server, Redis, a worker process) turned into a report by `memscore report`,
// which a real headless Chromium then opens from a file.
describe("memscore report (real run, real Chromium)", () => {
  let fixture: RunFixture;
  let workers: CliProcess[] = [];
  let dir: string;
  let rows: ResultRow[];
  let archive: ArchiveEntry[];
  const input = uniqueName("in");
  const output = uniqueName("out");
  const runId = "report-1";
  const runDir = `s3://${output}/scores/_runs/${runId}/`;

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    dir = await mkdtemp(join(tmpdir(), "memscore-report-"));
    archive = await makeArchive("photos/", 36);
    // A name that is HTML: the report must show it as text (here among the error examples), never
    // as markup.
    archive.push({
      key: `photos/broken/<img src=x onerror=alert(1)> & "quoted".svg`,
      body: '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
      expect: { reason: "unsupported_format" },
    });
    await putObjects(fixture.s3, input, new Map(archive.map((e) => [e.key, e.body])));
    workers = [startWorkerProcess(fixture.env, ["--concurrency", "2", "--batch-size", "8"])];
    const run = await enqueueAndWait(
      fixture.env,
      [`s3://${input}/photos/`],
      `s3://${output}/scores/`,
      runId,
      ["--chunk-size", "8"],
    );
    expect(run.code, `${run.stderr}\n${workers[0]?.output()}`).toBe(0);
    rows = await readResults(fixture.s3, output, "scores/", runId);
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes one self-contained page that Chromium shows without errors or requests", async () => {
    const out = join(dir, "report.html");
    const result = await runCli(
      ["report", runDir, "--out", out, "--top", String(TOP), "--upload"],
      fixture.env,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`report: ${out}`);
    expect(result.stdout).toContain(`uploaded: ${runDir}report.html`);
    const html = await readFile(out);
    // --upload put the same page next to results.csv.
    expect((await getBytes(fixture.s3, output, `scores/_runs/${runId}/report.html`)).equals(html)).toBe(true);

    const scored = rows.filter((r) => r.status === "scored");
    const failed = rows.filter((r) => r.status === "error");
    expect(scored.length).toBe(archive.filter((e) => e.expect === "scored").length);
    const byScore = [...scored].sort((a, b) => (b.score as number) - (a.score as number));
    const firstRecord = JSON.parse(
      (
        await getBytes(fixture.s3, output, `scores/${archive[4]?.key.slice("photos/".length)}.json`)
      ).toString(),
    ) as RecordJson;

    const opened = await openFileInChromium(out);
    try {
      const { page } = opened;
      // Nothing but the file itself was requested, and nothing went wrong on the page.
      expect(opened.errors).toEqual([]);
      expect(opened.blocked).toEqual([]);
      expect(opened.requests).toEqual([`file://${out}`]);

      // The histogram's bars add up to the number of scored images.
      const counts = await page.$$eval("#histogram-chart rect.bar", (bars) =>
        bars.map((b) => Number(b.getAttribute("data-count"))),
      );
      expect(counts.length).toBeGreaterThan(1);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(scored.length);
      expect(await page.textContent("#histogram-chart")).toContain("score");
      expect(await page.textContent("#histogram-chart")).toContain("images");

      // Each list: N thumbnails that decode, with the scores of the N highest (lowest) rows.
      for (const [list, expected] of [
        ["#top", byScore.slice(0, TOP)],
        ["#bottom", [...byScore].reverse().slice(0, TOP)],
      ] as const) {
        const images = await page.$$eval(`${list} ol.gallery img`, (imgs) =>
          Promise.all(
            (imgs as unknown as PageImage[]).map(async (img) => {
              await img.decode();
              return { width: img.naturalWidth, height: img.naturalHeight, bytes: (img.src.length * 3) / 4 };
            }),
          ),
        );
        expect(images).toHaveLength(TOP);
        for (const image of images) {
          expect(image.width).toBeGreaterThan(0);
          expect(Math.max(image.width, image.height)).toBeLessThanOrEqual(240);
          // Downscaled: a few tens of kB at most.
          expect(image.bytes).toBeLessThan(60_000);
        }
        const shown = await page.$$eval(`${list} .score`, (spans) => spans.map((s) => s.textContent));
        expect(shown).toEqual(expected.map((r) => (r.score as number).toFixed(6)));
      }

      // Summary: images by status, errors by reason with examples, the model, and the banner.
      expect(await page.textContent('[data-status="scored"]')).toBe(String(scored.length));
      expect(await page.textContent('[data-status="error"]')).toBe(String(failed.length));
      const errorsTable = (await page.textContent("#errors")) ?? "";
      for (const reason of new Set(failed.map((r) => r.error_reason as string))) {
        expect(errorsTable).toContain(reason);
      }
      expect(errorsTable).toContain(failed[0]?.uri);
      const model = (await page.textContent("#model")) ?? "";
      expect(model).toContain(firstRecord.model.sha256);
      expect(model).toContain(firstRecord.model.name);
      expect(model).toMatch(/trained\s*no/);
      expect(await page.isVisible("#untrained")).toBe(true);
      expect(await page.textContent("#throughput")).toMatch(/^\d+\.\d\d images\/s$/);
      // The HTML-looking name is text on the page, not an element.
      expect(errorsTable).toContain(`broken/<img src=x onerror=alert(1)> & "quoted".svg`);
      expect(await page.$$("img[src=x]")).toHaveLength(0);

      await mkdir(ARTIFACTS, { recursive: true });
      const screenshot = join(ARTIFACTS, "report-e2e.png");
      await page.screenshot({ path: screenshot, fullPage: true });
      expect((await sharp(screenshot).metadata()).width).toBe(1200);
      console.log(`report screenshot: ${screenshot}`);
    } finally {
      await opened.close();
    }
  });

  it("writes results.parquet that DuckDB reads as the same rows as results.jsonl", async () => {
    const path = join(dir, "results.parquet");
    await writeFile(path, await getBytes(fixture.s3, output, `scores/_runs/${runId}/results.parquet`));
    const duck = await DuckDBInstance.create(":memory:");
    const db = await duck.connect();
    try {
      const read = await db.runAndReadAll(`SELECT * FROM read_parquet('${path}')`);
      const sha = JSON.parse(
        (await getBytes(fixture.s3, output, `scores/_runs/${runId}/run.json`)).toString(),
      ).model.sha256;
      expect(read.getRowObjectsJS()).toEqual(
        rows.map((r) => ({
          uri: r.uri,
          status: r.status,
          score: r.score ?? null,
          heatmap: r.heatmap ?? null,
          error_reason: r.error_reason ?? null,
          error_message: r.error_message ?? null,
          model_sha256: sha,
        })),
      );
    } finally {
      db.closeSync();
      duck.closeSync();
    }
  });

  it("says what is wrong in one line: bad flags exit 2, a run that has not completed exits 1", async () => {
    for (const args of [
      [runDir, "--top", "0"],
      [`s3://${output}/scores/`],
      ["--run", runId],
      [runDir, "--run", runId, "--out-prefix", `s3://${output}/scores/`],
    ]) {
      const bad = await runCli(["report", ...args], fixture.env);
      expect(bad.code, args.join(" ")).toBe(2);
      expect(bad.stderr.trim().split("\n")[0]).toMatch(/^memscore report: /);
    }
    const oneLine = await runCli(["report", runDir, "--top", "0"], fixture.env);
    expect(oneLine.stderr.trim().split("\n")).toHaveLength(1);

    const missing = await runCli(
      [
        "report",
        "--run",
        "never-ran",
        "--out-prefix",
        `s3://${output}/scores/`,
        "--out",
        join(dir, "x.html"),
      ],
      fixture.env,
    );
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(
      `memscore report: s3://${output}/scores/_runs/never-ran/run.json not found: run "never-ran" has not completed under s3://${output}/scores/ (or never existed)`,
    );
  });
});
