import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, jsonLines, runCli, startWorkerProcess, stopProcesses } from "./support/cli.js";
import { makePhoto } from "./support/images.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { getBytes, listKeys, putObjects } from "./support/s3.js";
import { uniqueName } from "./support/services.js";

interface Row {
  uri: string;
  status: string;
  score?: number;
  heatmap?: string;
}

// Each heatmap format as a user gets it: the file is named after its format, decodes as that
// format at the image's size (at most 1024 px on the long side), and `none` writes scores only.
describe("heatmap formats (jpeg default, png, webp, none)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let workers: CliProcess[] = [];
  let bodies: Map<string, Buffer>;
  const input = uniqueName("in");
  const output = uniqueName("out");
  // One small, one larger than the 1024-px heatmap bound.
  const photos = new Map<string, { width: number; height: number }>([
    ["p/small.jpg", { width: 320, height: 240 }],
    ["p/large.jpg", { width: 1600, height: 900 }],
  ]);
  const expectedSize = (s: { width: number; height: number }) => {
    const scale = Math.min(1, 1024 / Math.max(s.width, s.height));
    return [Math.round(s.width * scale), Math.round(s.height * scale)];
  };

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    bodies = new Map<string, Buffer>();
    for (const [i, [key, size]] of [...photos].entries())
      bodies.set(key, await makePhoto(size.width, size.height, i + 1));
    await putObjects(s3, input, bodies);
    // Batches of one, as `memscore score --batch-size 1` below: ONNX Runtime's sums over another
    // batch shape can move the last of the six printed digits, and that test wants exact values.
    workers = [startWorkerProcess(env, ["--batch-size", "1"])];
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await fixture?.stop();
  });

  const enqueue = async (runId: string, out: string, extra: string[]) => {
    const result = await runCli(
      [
        "enqueue",
        `s3://${input}/p/`,
        "--out",
        `s3://${output}/${out}/`,
        "--run-id",
        runId,
        "--wait",
        "--json",
        ...extra,
      ],
      env,
      300_000,
    );
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { imagesEnqueued: number; imagesSkipped: number };
  };
  const rows = async (out: string, runId: string) =>
    jsonLines<Row>((await getBytes(s3, output, `${out}/_runs/${runId}/results.jsonl`)).toString());

  for (const [format, extension, decoded] of [
    ["default", "jpg", "jpeg"],
    ["png", "png", "png"],
    ["webp", "webp", "webp"],
  ] as const) {
    it(`${format}: <name>.heatmap.${extension}, decoding as ${decoded} at the image's size`, async () => {
      const out = `scores-${format}`;
      await enqueue(`run-${format}`, out, format === "default" ? [] : ["--heatmap-format", format]);
      const table = await rows(out, `run-${format}`);
      expect(table).toHaveLength(photos.size);
      for (const [key, size] of photos) {
        const rel = key.slice(2);
        const row = table.find((r) => r.uri === `s3://${input}/${key}`);
        expect(row?.status).toBe("scored");
        expect(row?.heatmap).toBe(`s3://${output}/${out}/${rel}.heatmap.${extension}`);
        const record = JSON.parse((await getBytes(s3, output, `${out}/${rel}.json`)).toString());
        expect(record.heatmap).toBe(row?.heatmap);
        const meta = await sharp(await getBytes(s3, output, `${out}/${rel}.heatmap.${extension}`)).metadata();
        expect(meta.format).toBe(decoded);
        expect([meta.width, meta.height]).toEqual(expectedSize(size));
      }
    });
  }

  it("none: scores and Grad-CAM grids only, no heatmap file, no heatmap in records or rows", async () => {
    await enqueue("run-none", "scores-none", ["--heatmap-format", "none"]);
    const table = await rows("scores-none", "run-none");
    expect(table.map((r) => r.status)).toEqual(["scored", "scored"]);
    for (const row of table) expect(row.heatmap).toBeUndefined();
    const keys = await listKeys(s3, output, "scores-none/");
    expect(keys.filter((k) => k.includes(".heatmap."))).toEqual([]);
    const record = JSON.parse((await getBytes(s3, output, "scores-none/small.jpg.json")).toString());
    expect(record.heatmap).toBeUndefined();
    expect(record.gradcam).toHaveLength(7);
    expect(record.gradcam[0]).toHaveLength(7);
  });

  it("--skip-existing re-scores images whose outputs have another heatmap format", async () => {
    // scores-png holds current PNG outputs: asked again for PNG, nothing is left to do; asked for
    // JPEG, every image is scored again, because its JPEG heatmap does not exist.
    const samePng = await enqueue("run-png-again", "scores-png", [
      "--heatmap-format",
      "png",
      "--skip-existing",
    ]);
    expect(samePng).toMatchObject({ imagesSkipped: photos.size, imagesEnqueued: 0 });
    const asJpeg = await enqueue("run-jpeg-over-png", "scores-png", ["--skip-existing"]);
    expect(asJpeg).toMatchObject({ imagesSkipped: 0, imagesEnqueued: photos.size });
    const keys = new Set(await listKeys(s3, output, "scores-png/"));
    for (const key of photos.keys()) expect(keys.has(`scores-png/${key.slice(2)}.heatmap.jpg`)).toBe(true);
  });

  it("memscore score --json gives the very Grad-CAM values and score of the S3 record", async () => {
    const dir = await mkdtemp(join(tmpdir(), "memscore-same-grid-"));
    try {
      for (const [key, body] of bodies) await writeFile(join(dir, key.slice(2)), body);
      const result = await runCli(["score", "--json", "--batch-size", "1", dir], env);
      expect(result.code, result.stderr).toBe(0);
      const local = new Map(
        jsonLines<{ file: string; score: number; gradcam: number[][] }>(result.stdout).map((l) => [
          l.file,
          l,
        ]),
      );
      for (const key of bodies.keys()) {
        const name = key.slice(2);
        const record = JSON.parse((await getBytes(s3, output, `scores-default/${name}.json`)).toString());
        expect(local.get(name)?.gradcam, name).toEqual(record.gradcam);
        expect(local.get(name)?.score, name).toBe(record.score);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("memscore score --heatmaps writes overlays in the format asked for", async () => {
    const dir = await mkdtemp(join(tmpdir(), "memscore-formats-"));
    try {
      const images = join(dir, "in");
      const { mkdir } = await import("node:fs/promises");
      await mkdir(images);
      await writeFile(join(images, "a.jpg"), await makePhoto(300, 200, 5));
      for (const [format, extension] of [
        ["webp", "webp"],
        ["png", "png"],
        ["jpeg", "jpg"],
      ] as const) {
        const heatmaps = join(dir, `out-${format}`);
        const result = await runCli([
          "score",
          images,
          "--heatmaps",
          heatmaps,
          "--heatmap-format",
          format,
          "--json",
        ]);
        expect(result.code, result.stderr).toBe(0);
        expect(await readdir(heatmaps)).toEqual([`a.jpg.heatmap.${extension}`]);
        const meta = await sharp(await readFile(join(heatmaps, `a.jpg.heatmap.${extension}`))).metadata();
        expect([meta.format, meta.width, meta.height]).toEqual([format, 300, 200]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
