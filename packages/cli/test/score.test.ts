import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, runCli } from "../../../test/support/cli.js";
import { type ExpectedOutcome, writeBadInputs } from "../../../test/support/images.js";
import { budget, COMMAND_TIMEOUT_MS } from "../../../test/support/timeouts.js";

interface Line {
  file: string;
  score?: number;
  gradcam?: number[][];
  width?: number;
  height?: number;
  model_sha256?: string;
  heatmap?: string;
  error?: { reason: string; message: string };
}

describe("memscore score", () => {
  let dir: string;
  let expected: Map<string, ExpectedOutcome>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "memscore-score-"));
    expected = await writeBadInputs(join(dir, "inputs"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives every bad input a score or a clear per-file error, never a crash", async () => {
    const files = [...expected.keys()].map((name) => join(dir, "inputs", name));
    const result = await runCli(["score", "--json", ...files]);
    expect(result.code, result.stderr).toBe(0);
    const lines = jsonLines<Line>(result.stdout);
    expect(lines.map((l) => l.file)).toEqual(files);
    for (const line of lines) {
      const name = line.file.split("/").pop() as string;
      const want = expected.get(name);
      if (want?.kind === "score") {
        expect(line.error, name).toBeUndefined();
        expect(Number.isFinite(line.score), name).toBe(true);
        expect(line.gradcam).toHaveLength(7);
        for (const row of line.gradcam ?? []) for (const v of row) expect(v >= 0 && v <= 1, name).toBe(true);
        expect(line.model_sha256).toMatch(/^[0-9a-f]{64}$/);
      } else {
        expect(line.error?.reason, `${name}: ${JSON.stringify(line)}`).toBe(want?.reason);
        expect(line.error?.message.length).toBeGreaterThan(3);
      }
    }
    expect(result.stderr).toMatch(/untrained/);
  });

  it("reports the displayed size of the image and writes heatmaps capped at 1024 px", async () => {
    const big = join(dir, "big.jpg");
    await sharp({ create: { width: 2000, height: 1000, channels: 3, background: "#336699" } })
      .jpeg()
      .toFile(big);
    const heatmaps = join(dir, "heatmaps");
    const result = await runCli([
      "score",
      "--json",
      "--heatmaps",
      heatmaps,
      big,
      join(dir, "inputs", "good.jpg"),
    ]);
    expect(result.code, result.stderr).toBe(0);
    const [line, good] = jsonLines<Line>(result.stdout);
    expect([line?.width, line?.height]).toEqual([2000, 1000]);
    const meta = await sharp(line?.heatmap as string).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 1024, 512]);
    const small = await sharp(good?.heatmap as string).metadata();
    expect([small.width, small.height]).toEqual([320, 240]);
    expect((await readdir(heatmaps)).length).toBeGreaterThan(0);
  });

  it("exits non-zero only when every file failed", async () => {
    const allBad = await runCli([
      "score",
      "--json",
      join(dir, "inputs", "empty.jpg"),
      join(dir, "missing.jpg"),
    ]);
    expect(allBad.code).toBe(1);
    const lines = jsonLines<Line>(allBad.stdout);
    expect(lines.map((l) => l.error?.reason)).toEqual(["not_image", "not_found"]);
  });

  it("scores a directory recursively and prints a table without --json", async () => {
    const result = await runCli(["score", join(dir, "inputs")]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/good\.jpg/);
    expect(result.stdout).toMatch(/\[not_image\]/);
    const scoredCount = [...expected.values()].filter((e) => e.kind === "score").length;
    expect(result.stdout).toContain(`${scoredCount} scored, ${expected.size - scoredCount} failed`);
  });

  it(
    "refuses a model whose outputs have another shape than the contract's, naming the output",
    async () => {
      for (const [fixture, message] of [
        ["wrong-gradcam-shape", 'model output "gradcam" must be [N,G,G], got [N,7,5]'],
        ["wrong-score-shape", 'model output "score" must be [N], got [N,1]'],
      ]) {
        const model = fileURLToPath(
          new URL(`../../../test/fixtures/models/${fixture}.onnx`, import.meta.url),
        );
        const result = await runCli(["score", "--json", "--model", model, join(dir, "inputs", "good.jpg")]);
        expect(result.code, result.stderr).toBe(2);
        expect(result.stdout).toBe("");
        expect(result.stderr).toContain(`memscore score: ${message}\n`);
      }
    },
    budget(2 * COMMAND_TIMEOUT_MS),
  );

  it("rejects bad usage with exit code 2 and names the bad setting", async () => {
    const noArgs = await runCli(["score"]);
    expect(noArgs.code).toBe(2);
    const badProvider = await runCli(["score", "--provider", "tpu", dir]);
    expect(badProvider.code).toBe(2);
    expect(badProvider.stderr).toMatch(/provider: expected one of auto, cpu, cuda, webgpu/);
  });
});
