import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "./support/archive.js";
import { jsonLines, runCli } from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { getBytes, listKeys, putObjects } from "./support/s3.js";
import { uniqueName } from "./support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "./support/workers.js";

interface RecordJson {
  uri: string;
  status: string;
  score?: number;
  gradcam?: number[][];
  heatmap?: string;
  error?: { reason: string; message: string };
  model: { name: string; version: string; sha256: string; trained: boolean };
  input: { etag?: string; size?: number; width?: number; height?: number };
  run_id: string;
  started_at: string;
  finished_at: string;
}

interface Row {
  uri: string;
  status: string;
  score?: number;
  heatmap?: string;
  error_reason?: string;
}

// The product end to end: 200 images in S3 → enqueue → 3 worker processes → outputs in S3.
describe("distributed pipeline (real Redis, S3 API server, 3 worker processes)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: WorkerProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    archive = await makeArchive("photos/", 200);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    workers = [0, 1, 2].map(() => startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"]));
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await fixture?.stop();
  });

  it("gives every input exactly one outcome, well-formed outputs and a complete results table", async () => {
    const result = await runCli(
      [
        "enqueue",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--run-id",
        "run-1",
        "--chunk-size",
        "16",
        "--wait",
        "--json",
      ],
      env,
      300_000,
    );
    expect(result.code, `${result.stderr}\n${workers.map((w) => w.output()).join("\n")}`).toBe(0);
    const summary = JSON.parse(result.stdout) as {
      imagesEnqueued: number;
      final: { imagesScored: number; imagesFailed: number };
    };
    expect(summary.imagesEnqueued).toBe(200);
    expect(summary.final.imagesScored + summary.final.imagesFailed).toBe(200);

    const keys = new Set(await listKeys(s3, output, "scores/"));
    const rows = jsonLines<Row>((await getBytes(s3, output, "scores/_runs/run-1/results.jsonl")).toString());
    expect(rows).toHaveLength(200);
    expect(new Set(rows.map((r) => r.uri)).size).toBe(200);
    const byUri = new Map(rows.map((r) => [r.uri, r]));

    for (const entry of archive) {
      const uri = `s3://${input}/${entry.key}`;
      const rel = entry.key.slice("photos/".length);
      const row = byUri.get(uri);
      expect(row, uri).toBeDefined();
      expect(keys.has(`scores/${rel}.json`), `${rel}.json`).toBe(true);
      const record = JSON.parse((await getBytes(s3, output, `scores/${rel}.json`)).toString()) as RecordJson;
      expect(record.uri).toBe(uri);
      expect(record.run_id).toBe("run-1");
      expect(record.model).toMatchObject({ name: "resmemnet-tiny", trained: false });
      expect(record.model.sha256).toMatch(/^[0-9a-f]{64}$/);
      if (entry.expect === "scored") {
        expect(row?.status, `${uri}: ${JSON.stringify(record.error)}`).toBe("scored");
        expect(record.score).toBe(row?.score);
        expect(record.gradcam).toHaveLength(7);
        expect(record.input.etag).toMatch(/^[0-9a-f]{32}/);
        expect(record.input.width).toBeGreaterThan(0);
        expect(row?.heatmap).toBe(`s3://${output}/scores/${rel}.heatmap.jpg`);
        expect(record.heatmap).toBe(row?.heatmap);
        expect(keys.has(`scores/${rel}.heatmap.jpg`)).toBe(true);
      } else {
        expect(row?.status).toBe("error");
        expect(row?.error_reason, uri).toBe(entry.expect.reason);
        expect(record.error?.reason).toBe(entry.expect.reason);
        expect(keys.has(`scores/${rel}.heatmap.jpg`)).toBe(false);
      }
    }
    // One heatmap opened as an image: the default format (JPEG), long side at most 1024 px.
    const scored = archive.find((e) => e.expect === "scored") as ArchiveEntry;
    const jpeg = await getBytes(s3, output, `scores/${scored.key.slice("photos/".length)}.heatmap.jpg`);
    const meta = await sharp(jpeg).metadata();
    expect(meta.format).toBe("jpeg");
    expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBeLessThanOrEqual(1024);

    const csv = (await getBytes(s3, output, "scores/_runs/run-1/results.csv")).toString().trim().split("\n");
    expect(csv[0]).toBe("uri,status,score,heatmap,error_reason,error_message,model_sha256");
    expect(csv).toHaveLength(201);
    // Outputs never leave the output prefix.
    for (const key of keys) expect(key.startsWith("scores/")).toBe(true);
  });

  it("skips everything on a second --skip-existing run, and re-scores all when the model changes", async () => {
    const again = await runCli(
      [
        "enqueue",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--run-id",
        "run-2",
        "--skip-existing",
        "--wait",
        "--json",
      ],
      env,
      300_000,
    );
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as { imagesEnqueued: number; imagesSkipped: number };
    const scoredCount = archive.filter((e) => e.expect === "scored").length;
    expect(second.imagesSkipped).toBe(scoredCount);
    expect(second.imagesEnqueued).toBe(200 - scoredCount); // error records are retried, not skipped
    const rows = jsonLines<Row>((await getBytes(s3, output, "scores/_runs/run-2/results.jsonl")).toString());
    expect(rows).toHaveLength(200);
    expect(rows.filter((r) => r.status === "skipped")).toHaveLength(scoredCount);

    // Same images, another model: nothing matches any more, so everything is scored again.
    const other = "test/fixtures/models/contract-ok.onnx";
    await stopWorkers(workers);
    workers = [0, 1, 2].map(() =>
      startWorkerProcess({ ...env, MEMSCORE_MODEL: other }, ["--concurrency", "2"]),
    );
    const rescore = await runCli(
      [
        "enqueue",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--run-id",
        "run-3",
        "--skip-existing",
        "--model",
        other,
        "--wait",
        "--json",
      ],
      env,
      300_000,
    );
    expect(rescore.code, rescore.stderr).toBe(0);
    const third = JSON.parse(rescore.stdout) as { imagesEnqueued: number; imagesSkipped: number };
    expect(third.imagesSkipped).toBe(0);
    expect(third.imagesEnqueued).toBe(200);
    const sample = archive.find((e) => e.expect === "scored") as ArchiveEntry;
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: output, Key: `scores/${sample.key.slice(7)}.json` }),
    );
    const record = JSON.parse(
      (await getBytes(s3, output, `scores/${sample.key.slice(7)}.json`)).toString(),
    ) as RecordJson;
    expect(record.run_id).toBe("run-3");
    expect(record.model.name).toBe("contract-fixture");
    expect(head.Metadata?.["model-sha256"]).toBe(record.model.sha256);
  });
});
