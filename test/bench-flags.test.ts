import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// Every benchmark answers a bad flag or value with what was wrong and its usage, exit 2, before
// it starts any server or model (these runs take well under a second each), and --help with the
// usage, exit 0: the README's performance figures are only as good as the commands that made them.
const ROOT = join(import.meta.dirname, "..");
const BENCHES = readdirSync(join(ROOT, "bench"))
  .filter((f) => f.endsWith(".mjs"))
  .sort();

const run = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, [join("bench", script), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
  });

describe("benchmark flags", () => {
  it("finds the benchmarks", () => {
    expect(BENCHES).toEqual(expect.arrayContaining(["run-all.mjs", "end-to-end.mjs", "raw-model.mjs"]));
  });

  it.each(BENCHES)("%s: an unknown flag is its usage, exit 2", (script) => {
    const result = run(script, "--no-such-flag");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${script}: Unknown option '--no-such-flag'`);
    expect(result.stderr).toContain(`node bench/${script}`);
    expect(result.stdout).toBe("");
  });

  it.each(BENCHES)("%s: --help prints its usage, exit 0", (script) => {
    const result = run(script, "--help");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`node bench/${script}`);
  });

  it.each([
    [
      "end-to-end.mjs",
      ["--images", "many"],
      '--images takes a whole number of images, at least 1, not "many"',
    ],
    ["end-to-end.mjs", ["--images", "1.5"], '--images takes a whole number of images, at least 1, not "1.5"'],
    ["end-to-end.mjs", ["--size", "640"], '--size takes WIDTHxHEIGHT in pixels, not "640"'],
    [
      "end-to-end.mjs",
      ["--heatmap-format", "gif"],
      '--heatmap-format takes one of jpeg, png, webp, none, not "gif"',
    ],
    [
      "run-all.mjs",
      ["--batch-sizes", "1,x"],
      '--batch-sizes takes a whole number of images, at least 1, not "x"',
    ],
    ["raw-model.mjs", ["--seconds", "0"], '--seconds takes a positive number of seconds, not "0"'],
    ["raw-model.mjs", ["--provider", "gpu"], '--provider takes one of auto, cpu, cuda, webgpu, not "gpu"'],
    ["soak-rss.mjs", ["--distinct", "0"], '--distinct takes a whole number of images, at least 1, not "0"'],
    ["resmem-vs-r50.mjs", [], "--resmem PATH is required"],
  ])("%s %j: says what is wrong, exit 2", (script, args, message) => {
    const result = run(script, ...args);
    expect(result.stderr).toContain(message);
    expect(result.status).toBe(2);
  });
});
