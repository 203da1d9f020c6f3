import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { ImageRecord } from "@memscore/shared";
import { BUNDLED_MODEL_PATH, parseModelMetadata, readOnnxMetadataProps } from "@memscore/worker";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ArchiveEntry, makeArchive } from "./support/archive.js";
import {
  type CliProcess,
  jsonLines,
  runCli,
  startWorkerProcess,
  stopProcesses,
  workerStarted,
} from "./support/cli.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { getBytes, listKeys, putObjects } from "./support/s3.js";
import { uniqueName } from "./support/services.js";
import { budget, HEAVY_SETUP_TIMEOUT_MS, RUN_TIMEOUT_MS } from "./support/timeouts.js";

interface Row {
  uri: string;
  status: string;
  score?: number;
  heatmap?: string;
  error_reason?: string;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FORMAT_OF_EXTENSION: Record<string, string> = { jpg: "jpeg", png: "png", webp: "webp", gif: "gif" };

// The product end to end: 200 images in S3 → enqueue → 3 worker processes → outputs in S3.
describe("distributed pipeline (real Redis, S3 API server, 3 worker processes)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");
  let archive: ArchiveEntry[];

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    archive = await makeArchive("photos/", 200);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    workers = [0, 1, 2].map(() => startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"]));
    await Promise.all(workers.map((w) => workerStarted(w)));
  }, HEAVY_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopProcesses(workers);
    await fixture?.stop();
  });

  it(
    "gives every input exactly one outcome, well-formed outputs and a complete results table",
    async () => {
      const model = parseModelMetadata(readOnnxMetadataProps(await readFile(BUNDLED_MODEL_PATH)));
      const modelSha256 = createHash("sha256")
        .update(await readFile(BUNDLED_MODEL_PATH))
        .digest("hex");
      const before = new Date().toISOString();
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
        RUN_TIMEOUT_MS,
      );
      const after = new Date().toISOString();
      expect(result.code, `${result.stderr}\n${workers.map((w) => w.tail()).join("\n")}`).toBe(0);
      const summary = JSON.parse(result.stdout) as {
        imagesEnqueued: number;
        final: { imagesScored: number; imagesFailed: number };
      };
      expect(summary.imagesEnqueued).toBe(200);
      expect(summary.final.imagesScored + summary.final.imagesFailed).toBe(200);

      const keys = new Set(await listKeys(s3, output, "scores/"));
      const rows = jsonLines<Row>(
        (await getBytes(s3, output, "scores/_runs/run-1/results.jsonl")).toString(),
      );
      expect(rows).toHaveLength(200);
      expect(new Set(rows.map((r) => r.uri)).size).toBe(200);
      const byUri = new Map(rows.map((r) => [r.uri, r]));

      for (const entry of archive) {
        const uri = `s3://${input}/${entry.key}`;
        const rel = entry.key.slice("photos/".length);
        const row = byUri.get(uri);
        expect(row, uri).toBeDefined();
        expect(keys.has(`scores/${rel}.json`), `${rel}.json`).toBe(true);
        const record = JSON.parse(
          (await getBytes(s3, output, `scores/${rel}.json`)).toString(),
        ) as ImageRecord;
        const body = Buffer.from(entry.body);
        expect(record.uri).toBe(uri);
        expect(record.run_id).toBe("run-1");
        // The model that scored it, as its metadata and file say.
        expect(record.model).toEqual({
          name: model.name,
          version: model.version,
          sha256: modelSha256,
          trained: false,
          training_data: model.trainingData,
          license: model.license,
        });
        // The input as it was read: its ETag (the MD5 of a single-part upload) and size.
        expect(record.input.etag, uri).toBe(createHash("md5").update(body).digest("hex"));
        expect(record.input.size, uri).toBe(body.length);
        // Timestamps: when the image was started and finished, within the run.
        expect(record.started_at).toMatch(ISO_TIME);
        expect(record.finished_at).toMatch(ISO_TIME);
        expect(record.started_at >= before && record.started_at <= record.finished_at, uri).toBe(true);
        expect(record.finished_at <= after, uri).toBe(true);
        if (entry.expect === "scored") {
          expect(row?.status, `${uri}: ${JSON.stringify(record.error)}`).toBe("scored");
          expect(record.status).toBe("scored");
          expect(record.score).toBe(row?.score);
          const meta = await sharp(body).metadata();
          expect(record.input, uri).toMatchObject({
            width: meta.width,
            height: meta.height,
            format: FORMAT_OF_EXTENSION[entry.key.split(".").pop() as string],
          });
          // A 7×7 grid normalised to [0, 1]: its largest cell is 1 unless the raw grid has no positive cell.
          expect(record.gradcam?.map((r) => r.length)).toEqual([7, 7, 7, 7, 7, 7, 7]);
          const cells = record.gradcam?.flat() ?? [];
          expect(cells.every((v) => v >= 0 && v <= 1)).toBe(true);
          expect(Math.max(...cells)).toBe((record.gradcam_max ?? 0) > 0 ? 1 : 0);
          expect(record.heatmap).toBe(`s3://${output}/scores/${rel}.heatmap.jpg`);
          expect(row?.heatmap).toBe(record.heatmap);
          expect(keys.has(`scores/${rel}.heatmap.jpg`)).toBe(true);
          expect(record.error).toBeUndefined();
        } else {
          expect(row?.status).toBe("error");
          expect(record.status).toBe("error");
          expect(row?.error_reason, uri).toBe(entry.expect.reason);
          expect(record.error?.reason).toBe(entry.expect.reason);
          expect(record.error?.message.length, uri).toBeGreaterThan(0);
          expect(record.score).toBeUndefined();
          expect(record.heatmap).toBeUndefined();
          expect(keys.has(`scores/${rel}.heatmap.jpg`)).toBe(false);
        }
      }
      // One heatmap opened as an image: the default format (JPEG), long side at most 1024 px.
      const scored = archive.find((e) => e.expect === "scored") as ArchiveEntry;
      const jpeg = await getBytes(s3, output, `scores/${scored.key.slice("photos/".length)}.heatmap.jpg`);
      const meta = await sharp(jpeg).metadata();
      expect(meta.format).toBe("jpeg");
      expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBeLessThanOrEqual(1024);

      const csv = (await getBytes(s3, output, "scores/_runs/run-1/results.csv"))
        .toString()
        .trim()
        .split("\n");
      expect(csv[0]).toBe("uri,status,score,heatmap,error_reason,error_message,model_sha256");
      expect(csv).toHaveLength(201);
      // Outputs never leave the output prefix.
      for (const key of keys) expect(key.startsWith("scores/")).toBe(true);
    },
    budget(RUN_TIMEOUT_MS),
  );

  it(
    "skips everything on a second --skip-existing run, and re-scores all when the model changes",
    async () => {
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
        RUN_TIMEOUT_MS,
      );
      expect(again.code, again.stderr).toBe(0);
      const second = JSON.parse(again.stdout) as { imagesEnqueued: number; imagesSkipped: number };
      const scoredCount = archive.filter((e) => e.expect === "scored").length;
      expect(second.imagesSkipped).toBe(scoredCount);
      expect(second.imagesEnqueued).toBe(200 - scoredCount); // error records are retried, not skipped
      const rows = jsonLines<Row>(
        (await getBytes(s3, output, "scores/_runs/run-2/results.jsonl")).toString(),
      );
      expect(rows).toHaveLength(200);
      expect(rows.filter((r) => r.status === "skipped")).toHaveLength(scoredCount);

      // Same images, another model: nothing matches any more, so everything is scored again.
      const other = "test/fixtures/models/contract-ok.onnx";
      await stopProcesses(workers);
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
        RUN_TIMEOUT_MS,
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
      ) as ImageRecord;
      expect(record.run_id).toBe("run-3");
      expect(record.model.name).toBe("contract-fixture");
      expect(head.Metadata?.["model-sha256"]).toBe(record.model.sha256);
    },
    budget(RUN_TIMEOUT_MS, RUN_TIMEOUT_MS, RUN_TIMEOUT_MS),
  );
});
