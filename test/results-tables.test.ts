import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import {
  completeRun,
  createRedisConnection,
  PARQUET_ROW_GROUP_ROWS,
  type ResultRow,
  type RunModel,
  RunState,
  readRunSummary,
  type Storage,
  silentLogger,
  writeResultsPart,
} from "@memscore/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines } from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { getBytes, testStorage } from "./support/s3.js";
import { uniqueName } from "./support/services.js";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const MODEL: RunModel = {
  name: "resmemnet-test",
  version: "1",
  sha256: SHA_A,
  trained: false,
  training_data: "none (random initialisation)",
};

/** Rows that stress every column: quoting, unicode, missing values, all three statuses, two models. */
function makeRow(i: number, bucket: string): ResultRow {
  const uri = `s3://${bucket}/in/${i % 7 === 0 ? `dir, "quoted"\n/` : ""}img-${i}-é漢.jpg`;
  if (i % 11 === 3) {
    return {
      uri,
      status: "error",
      error_reason: i % 2 ? "decode_failed" : "not_image",
      error_message: `line one, "two"\nline ${i}`,
      model_sha256: SHA_A,
    };
  }
  if (i % 13 === 5) return { uri, status: "skipped", heatmap: `${uri}.heatmap.png`, model_sha256: SHA_A };
  return {
    uri,
    status: "scored",
    score: Math.sin(i) / 3 + 0.5,
    ...(i % 17 !== 0 && { heatmap: `${uri}.heatmap.png` }),
    model_sha256: i % 100 === 1 ? SHA_B : SHA_A,
  };
}

/** A row as DuckDB returns it from results.parquet: every column present, null where absent. */
const asTableRow = (r: ResultRow) => ({
  uri: r.uri,
  status: r.status,
  score: r.score ?? null,
  heatmap: r.heatmap ?? null,
  error_reason: r.error_reason ?? null,
  error_message: r.error_message ?? null,
  model_sha256: r.model_sha256 ?? null,
});

describe("a run's results tables: results.parquet read by DuckDB, and run.json", () => {
  let fixture: RunFixture;
  let storage: Storage;
  let dir: string;
  const bucket = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [bucket] });
    storage = testStorage(fixture.env);
    dir = await mkdtemp(join(tmpdir(), "memscore-tables-"));
  });
  afterAll(async () => {
    storage?.close();
    await fixture?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the same rows to results.jsonl and results.parquet (typed columns, several row groups)", async () => {
    // More rows than two row groups hold, so the writer flushes groups as they fill.
    const total = 2 * PARQUET_ROW_GROUP_ROWS + 1234;
    const chunkRows = 5_000;
    const runId = "tables-1";
    const out = `s3://${bucket}/scores/`;
    const redis = createRedisConnection(fixture.env.REDIS_URL as string, { name: "tables-test" });
    try {
      const run = new RunState(redis, fixture.env.MEMSCORE_QUEUE as string, runId);
      await run.create({ input: `s3://${bucket}/in/`, outputPrefix: out, modelSha256: "" });
      const chunks = Math.ceil(total / chunkRows);
      await run.saveCheckpoint({
        nextChunkIndex: chunks,
        cursor: "",
        imagesEnqueued: total,
        imagesSkipped: 0,
      });
      await run.markListingDone("test");
      let completes = false;
      for (let c = 0; c < chunks; c++) {
        const rows = Array.from({ length: Math.min(chunkRows, total - c * chunkRows) }, (_, i) =>
          makeRow(c * chunkRows + i, bucket),
        );
        await writeResultsPart(storage, out, runId, { kind: "chunk", index: c }, rows);
        ({ completes } = await run.recordChunk(
          c,
          { scored: 0, failed: 0, failuresByReason: {} },
          "test",
          MODEL,
        ));
      }
      expect(completes).toBe(true);
      await completeRun(storage, run, silentLogger);
    } finally {
      await redis.quit();
    }

    const jsonl = jsonLines<ResultRow>(
      (await getBytes(fixture.s3, bucket, `scores/_runs/${runId}/results.jsonl`)).toString(),
    );
    expect(jsonl).toHaveLength(total);
    const expected = (status: string) => jsonl.filter((r) => r.status === status).length;
    const parquetPath = join(dir, "results.parquet");
    await writeFile(parquetPath, await getBytes(fixture.s3, bucket, `scores/_runs/${runId}/results.parquet`));

    const duck = await DuckDBInstance.create(":memory:");
    const db = await duck.connect();
    try {
      const schema = await db.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${parquetPath}')`);
      expect(schema.getRowObjectsJS().map((c) => [c.column_name, c.column_type])).toEqual([
        ["uri", "VARCHAR"],
        ["status", "VARCHAR"],
        ["score", "DOUBLE"],
        ["heatmap", "VARCHAR"],
        ["error_reason", "VARCHAR"],
        ["error_message", "VARCHAR"],
        ["model_sha256", "VARCHAR"],
      ]);
      const groups = await db.runAndReadAll(
        `SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('${parquetPath}')`,
      );
      expect(Number(groups.getRowObjectsJS()[0]?.n)).toBe(3);
      const read = await db.runAndReadAll(`SELECT * FROM read_parquet('${parquetPath}')`);
      const rows = read.getRowObjectsJS();
      expect(rows).toHaveLength(total);
      // Row for row, in table order: the same values as results.jsonl.
      for (let i = 0; i < total; i++) {
        if (JSON.stringify(rows[i]) !== JSON.stringify(asTableRow(jsonl[i] as ResultRow))) {
          expect(rows[i], `row ${i}`).toEqual(asTableRow(jsonl[i] as ResultRow));
        }
      }
      // What a data team would ask of it, answered by DuckDB alone.
      const byStatus = await db.runAndReadAll(
        `SELECT status, count(*)::INTEGER AS n FROM read_parquet('${parquetPath}') GROUP BY status ORDER BY status`,
      );
      expect(byStatus.getRowObjectsJS()).toEqual(
        ["error", "scored", "skipped"].map((status) => ({ status, n: expected(status) })),
      );
    } finally {
      db.closeSync();
      duck.closeSync();
    }

    // The run summary next to the tables counts the same rows and names the model.
    const summary = await readRunSummary(storage, out, runId);
    const reasons = (reason: string) => jsonl.filter((r) => r.error_reason === reason).length;
    expect(summary).toMatchObject({
      run_id: runId,
      input: `s3://${bucket}/in/`,
      output_prefix: out,
      images: { total, scored: expected("scored"), error: expected("error"), skipped: expected("skipped") },
      errors_by_reason: { decode_failed: reasons("decode_failed"), not_image: reasons("not_image") },
      model: MODEL,
      rows_by_model_sha256: {
        [SHA_A]: jsonl.filter((r) => r.model_sha256 === SHA_A).length,
        [SHA_B]: jsonl.filter((r) => r.model_sha256 === SHA_B).length,
      },
      results: { parquet: `${out}_runs/${runId}/results.parquet` },
    });
    expect(Date.parse(summary.completed_at)).toBeGreaterThanOrEqual(Date.parse(summary.created_at));
  });

  it("writes a valid, empty results.parquet for a run with no rows", async () => {
    const runId = "tables-empty";
    const out = `s3://${bucket}/empty/`;
    const redis = createRedisConnection(fixture.env.REDIS_URL as string, { name: "tables-test" });
    try {
      const run = new RunState(redis, fixture.env.MEMSCORE_QUEUE as string, runId);
      await run.create({ input: `s3://${bucket}/nothing/`, outputPrefix: out, modelSha256: "" });
      expect(await run.markListingDone("test")).toBe(true);
      await completeRun(storage, run, silentLogger);
    } finally {
      await redis.quit();
    }
    const path = join(dir, "empty.parquet");
    await writeFile(path, await getBytes(fixture.s3, bucket, `empty/_runs/${runId}/results.parquet`));
    const duck = await DuckDBInstance.create(":memory:");
    const db = await duck.connect();
    try {
      const read = await db.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${path}')`);
      expect(read.getRowObjectsJS()).toEqual([{ n: 0 }]);
    } finally {
      db.closeSync();
      duck.closeSync();
    }
    const summary = await readRunSummary(storage, out, runId);
    expect(summary.images).toEqual({ total: 0, scored: 0, error: 0, skipped: 0 });
    // No worker took part, so no model was described.
    expect(summary.model).toBeNull();
  });
});
