import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../scripts/compile-wasm.mjs", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "memscore-wasm-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the worker's WebAssembly kernels (npm run wasm:build)", () => {
  it("are their .wat sources compiled, as committed", async () => {
    const { stdout } = await run(process.execPath, [SCRIPT, "--check"]);
    expect(stdout).toMatch(/overlay-wasm\.ts is overlay\.wat compiled \(\d+ bytes\)/);
    expect(stdout).toMatch(/resample-wasm\.ts is resample\.wat compiled \(\d+ bytes\)/);
    expect(stdout).toMatch(/tensor-wasm\.ts is tensor\.wat compiled \(\d+ bytes\)/);
  });

  for (const kernel of ["overlay", "resample", "tensor"]) {
    it(`reports ${kernel}-wasm.ts stale when it is not the source compiled`, async () => {
      const generated = fileURLToPath(new URL(`../src/${kernel}-wasm.ts`, import.meta.url));
      const stale = join(dir, `${kernel}-wasm.ts`);
      await copyFile(generated, stale);
      const text = await readFile(stale, "utf8");
      // One base64 character of the module changed, as a hand edit or an old build would leave it.
      await writeFile(stale, text.replace(/"AGFzbQ/, '"BGFzbQ'));
      const failed = await run(process.execPath, [
        SCRIPT,
        "--check",
        "--kernel",
        kernel,
        "--out",
        stale,
      ]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toContain(`is not ${kernel}.wat compiled: run npm run wasm:build`);
    });
  }

  it("refuses an unknown kernel with a usage message, exit 2", async () => {
    const failed = await run(process.execPath, [SCRIPT, "--check", "--kernel", "blur"]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain("--kernel must be one of overlay, resample, tensor");
  });
});
