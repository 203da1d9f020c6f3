import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (bench/lib/ is two levels below it). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where `npm run model:build` writes the ResNet-50 model. */
export const R50_MODEL = join(REPO_ROOT, "model", "build", "resmemnet-r50.onnx");

/** The tiny test model bundled with the worker. */
export const TINY_MODEL = join(REPO_ROOT, "packages", "worker", "models", "resmemnet-tiny.onnx");

/** Python with torch (Debian's); the `python3` first on PATH may not have it. */
export const TORCH_PYTHON = process.env.MEMSCORE_BENCH_PYTHON ?? "/usr/bin/python3";

/** Returns the r50 model path, exporting it first (seed 0, ~100 MB) when it is missing. */
export function ensureR50Model() {
  if (existsSync(R50_MODEL)) return R50_MODEL;
  console.log(`building ${R50_MODEL} (npm run model:build) ...`);
  execFileSync("npm", ["run", "model:build"], { cwd: REPO_ROOT, stdio: "inherit" });
  return R50_MODEL;
}

/** Whether `TORCH_PYTHON` can import torch and PIL. */
export function torchAvailable() {
  try {
    execFileSync(TORCH_PYTHON, ["-c", "import torch, PIL"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
