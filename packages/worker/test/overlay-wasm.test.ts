import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../scripts/compile-overlay-wasm.mjs", import.meta.url));
const GENERATED = fileURLToPath(new URL("../src/overlay-wasm.ts", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "memscore-wasm-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the overlay kernel's WebAssembly (npm run wasm:build)", () => {
  it("is overlay.wat compiled, as committed", async () => {
    const { stdout } = await run(process.execPath, [SCRIPT, "--check"]);
    expect(stdout).toMatch(/is overlay\.wat compiled \(\d+ bytes\)/);
  });

  it("is reported stale when it is not the source compiled", async () => {
    const stale = join(dir, "overlay-wasm.ts");
    await copyFile(GENERATED, stale);
    const text = await readFile(stale, "utf8");
    // One base64 character of the module changed, as a hand edit or an old build would leave it.
    await writeFile(stale, text.replace(/"AGFzbQ/, '"BGFzbQ'));
    const failed = await run(process.execPath, [SCRIPT, "--check", "--out", stale]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain("is not overlay.wat compiled: run npm run wasm:build");
  });
});
