import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { jsonLines, runCli } from "./support/cli.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SAMPLES = join(ROOT, "packages/cli/samples");
const MODEL = join(ROOT, "packages/worker/models/resmemnet-tiny.onnx");

interface Reference {
  file: string;
  score: number;
  gradcam_normalised: number[][];
}

// References come from PyTorch (model/reference.py) on the worker's exact input pixels; see
// model/make-fixtures.sh for the commands that regenerate them.
describe("parity with PyTorch (bundled tiny model)", () => {
  it("memscore score --json matches the PyTorch scores and normalised Grad-CAM grids to 1e-4", async () => {
    const refs = JSON.parse(await readFile(join(ROOT, "test/fixtures/reference-tiny.json"), "utf8")) as {
      images: Reference[];
    };
    const byFile = new Map(refs.images.map((r) => [r.file.replace(/\.png$/, ""), r]));
    const samples = (await readdir(SAMPLES)).filter((f) => f.endsWith(".jpg")).map((f) => join(SAMPLES, f));
    expect(samples.length).toBe(byFile.size);

    const result = await runCli(["score", "--json", "--provider", "cpu", "--batch-size", "4", ...samples]);
    expect(result.code, result.stderr).toBe(0);
    const lines = jsonLines<{ file: string; score: number; gradcam: number[][]; model_sha256: string }>(
      result.stdout,
    );
    const sha = createHash("sha256")
      .update(await readFile(MODEL))
      .digest("hex");
    expect(lines).toHaveLength(samples.length);
    for (const line of lines) {
      const ref = byFile.get(basename(line.file));
      expect(ref, line.file).toBeDefined();
      expect(line.model_sha256).toBe(sha);
      expect(Math.abs(line.score - (ref as Reference).score)).toBeLessThan(1e-4);
      // The grid's shape first (7×7, as PyTorch's), so a short or empty grid cannot pass.
      const want = (ref as Reference).gradcam_normalised;
      expect(want.map((row) => row.length)).toEqual(Array(7).fill(7));
      expect(
        line.gradcam.map((row) => row.length),
        line.file,
      ).toEqual(want.map((row) => row.length));
      const worst = Math.max(
        ...line.gradcam.flatMap((row, r) => row.map((v, c) => Math.abs(v - (want[r]?.[c] ?? Number.NaN)))),
      );
      expect(worst, `${line.file}: largest Grad-CAM difference`).toBeLessThan(1e-4);
    }
    // Different photographs must give different scores, or the comparison proves little.
    const scores = lines.map((l) => l.score);
    expect(Math.max(...scores) - Math.min(...scores)).toBeGreaterThan(1e-3);
  });
});
