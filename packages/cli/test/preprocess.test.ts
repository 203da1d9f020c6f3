import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { prepareImage, readModelMetadata } from "@memscore/worker";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, runCli } from "../../../test/support/cli.js";
import { type ExpectedOutcome, writeBadInputs } from "../../../test/support/images.js";

const CROP_MODEL = fileURLToPath(
  new URL("../../../test/fixtures/models/geometry-crop.onnx", import.meta.url),
);

interface Line {
  file: string;
  output?: string;
  error?: { reason: string; message: string };
}

describe("memscore preprocess", () => {
  let dir: string;
  let inputs: string;
  let expected: Map<string, ExpectedOutcome>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "memscore-preprocess-"));
    inputs = join(dir, "inputs");
    expected = await writeBadInputs(inputs);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes each image's exact model input as a lossless S×S RGB PNG without a profile; bad files fail alone", async () => {
    const out = join(dir, "crop");
    const result = await runCli(["preprocess", "--json", "--model", CROP_MODEL, "--out", out, inputs]);
    expect(result.code, result.stderr).toBe(1); // some inputs are broken on purpose
    const lines = jsonLines<Line>(result.stdout);
    expect(lines.map((l) => l.file).sort()).toEqual([...expected.keys()].sort());
    const model = await readModelMetadata(CROP_MODEL);
    for (const line of lines) {
      const want = expected.get(line.file);
      if (want?.kind !== "score") {
        expect(line.error?.reason, line.file).toBe(want?.reason);
        continue;
      }
      expect(line.output).toBe(join(out, `${line.file}.png`));
      const png = await readFile(line.output as string);
      const meta = await sharp(png).metadata();
      expect(meta, line.file).toMatchObject({
        format: "png",
        width: 227,
        height: 227,
        channels: 3,
        depth: "uchar",
      });
      expect(meta.hasProfile, line.file).toBe(false);
      expect(meta.hasAlpha, line.file).toBe(false);
      // Lossless: the PNG holds exactly the pixels the worker feeds the model.
      const pixels = await sharp(png).raw().toBuffer();
      const worker = await prepareImage(await readFile(join(inputs, line.file)), model, { maxPixels: 1e8 });
      expect(pixels.equals(worker.rgb), line.file).toBe(true);
    }
    const manifest = JSON.parse(await readFile(join(out, "memscore-preprocess.json"), "utf8"));
    expect(manifest).toMatchObject({
      model: { name: "geometry-crop-fixture", sha256: model.sha256, license: "test fixture licence" },
      input_size: 227,
      resize: "stretch-crop",
      resize_size: 256,
      resize_kernel: "linear",
      mean: [0, 0, 0],
      std: [1, 1, 1],
    });
    expect(result.stderr).toMatch(/stretched to 256×256, centre 227×227 \(linear\)/);
  });

  it("prepares a LaMem-format dataset in one command: PNGs plus the split files, checked", async () => {
    const photos = join(dir, "lamem", "images");
    const splits = join(dir, "lamem", "splits");
    await mkdir(photos, { recursive: true });
    await mkdir(splits, { recursive: true });
    const good = await readFile(join(inputs, "good.jpg"));
    for (const name of ["00000001.jpg", "00000002.jpg", "00000003.jpg"])
      await writeFile(join(photos, name), good);
    await writeFile(join(splits, "train_1.txt"), "00000001.jpg 0.7\n00000002.jpg 0.6\n");
    await writeFile(join(splits, "test_1.txt"), "00000003.jpg 0.5\n");
    const out = join(dir, "lamem-memscore");
    const ok = await runCli(["preprocess", "--splits", splits, "--out", out, photos]);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual([
      "00000001.jpg.png",
      "00000002.jpg.png",
      "00000003.jpg.png",
      "memscore-preprocess.json",
      "splits",
    ]);
    expect(await readFile(join(out, "splits", "train_1.txt"), "utf8")).toBe(
      "00000001.jpg 0.7\n00000002.jpg 0.6\n",
    );
    expect(ok.stderr).toMatch(/3 written, 0 failed/);

    // A split naming an image that is not there is reported, with its name, and fails the run.
    await writeFile(join(splits, "val_1.txt"), "00000004.jpg 0.4\n");
    const missing = await runCli(["preprocess", "--splits", splits, "--out", out, photos]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /1 images named in the split files have no preprocessed PNG \(00000004\.jpg\)/,
    );
  });

  it("refuses to mix images made for another geometry in one output directory", async () => {
    const out = join(dir, "mixed");
    const first = await runCli(["preprocess", "--out", out, join(inputs, "good.jpg")]);
    expect(first.code, first.stderr).toBe(0);
    const second = await runCli([
      "preprocess",
      "--model",
      CROP_MODEL,
      "--out",
      out,
      join(inputs, "good.jpg"),
    ]);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(
      /already holds images preprocessed for resmemnet-tiny \(224×224, stretch\)/,
    );
  });

  it.each([
    [["preprocess", "photo.jpg"], "--out DIR is required"],
    [["preprocess", "--out", "somewhere"], "no files or directories given"],
    [["preprocess", "--out", "x", "--size", "3", "photo.jpg"], "Unknown option '--size'"],
  ])("bad usage %o is a usage message and exit 2", async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr.split("\n")[0]).toContain(message);
  });
});
