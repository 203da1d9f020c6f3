import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, runCli } from "./support/cli.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SAMPLES = join(ROOT, "packages/cli/samples");
/** Debian's PyTorch, as `npm run model:build` uses it. */
const TORCH_PYTHON = "/usr/bin/python3";

interface Line {
  file: string;
  score: number;
  gradcam: number[][];
  model_sha256: string;
}

// Measured on ONNX Runtime's CPU provider (it runs the float16 graph too); the CUDA provider's
// float16 kernels differ, and bench/device-check.sh measures that error on the GPU.
describe("model/export.py --precision fp16", () => {
  let work: string;
  const models = { fp32: "", fp16: "" };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "memscore-fp16-"));
    for (const precision of ["fp32", "fp16"] as const) {
      models[precision] = join(work, `tiny-${precision}.onnx`);
      const args = ["model/export.py", "--variant", "tiny", "--seed", "0", "--precision", precision];
      const exported = spawnSync(TORCH_PYTHON, [...args, "--out", models[precision]], {
        cwd: ROOT,
        encoding: "utf8",
      });
      expect(exported.status, exported.stderr.slice(-2000)).toBe(0);
    }
  }, 300_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("scores the sample photographs like the fp32 model: score within 2e-3, Grad-CAM cells within 0.02", async () => {
    const samples = (await readdir(SAMPLES)).filter((f) => f.endsWith(".jpg")).map((f) => join(SAMPLES, f));
    const run = async (model: string) => {
      const result = await runCli(["score", "--json", "--provider", "cpu", "--model", model, ...samples]);
      expect(result.code, result.stderr).toBe(0);
      return jsonLines<Line>(result.stdout);
    };
    const full = await run(models.fp32);
    const half = await run(models.fp16);
    expect(half.map((l) => l.file)).toEqual(full.map((l) => l.file));
    expect(half[0]?.model_sha256).not.toBe(full[0]?.model_sha256);
    let scoreError = 0;
    let gradcamError = 0;
    for (const [i, a] of full.entries()) {
      const b = half[i] as Line;
      scoreError = Math.max(scoreError, Math.abs(a.score - b.score));
      const cellsA = a.gradcam.flat();
      const cellsB = b.gradcam.flat();
      expect(cellsB).toHaveLength(cellsA.length);
      for (const [k, v] of cellsA.entries())
        gradcamError = Math.max(gradcamError, Math.abs(v - (cellsB[k] as number)));
    }
    // Measured when written: 5.3e-4 and 0.0029 (tiny, seed 0).
    expect(scoreError).toBeLessThan(2e-3);
    expect(gradcamError).toBeLessThan(0.02);
    // Half precision is really in use: the results are not bit-identical.
    expect(scoreError).toBeGreaterThan(0);
  });
});
