import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const CLI_DIR = fileURLToPath(new URL("..", import.meta.url));

describe("the committed memscore bin entry", () => {
  it("is what package.json links, so npm ci links it before anything is built", async () => {
    const pkg = JSON.parse(await readFile(join(CLI_DIR, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.memscore).toBe("./bin/memscore.cjs");
  });

  it("runs the build when it exists", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(CLI_DIR, "bin/memscore.cjs"),
      "--help",
    ]);
    expect(stdout).toContain("usage: memscore <command>");
  });

  it("says to run npm run build, exit 1, when the build is missing", async () => {
    const root = await mkdtemp(join(tmpdir(), "memscore-bin-"));
    try {
      await mkdir(join(root, "packages/cli/bin"), { recursive: true });
      await copyFile(join(CLI_DIR, "bin/memscore.cjs"), join(root, "packages/cli/bin/memscore.cjs"));
      const run = promisify(execFile)(process.execPath, [
        join(root, "packages/cli/bin/memscore.cjs"),
        "demo",
      ]);
      await expect(run).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/the CLI is not built yet.*\n.*npm run build/),
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
