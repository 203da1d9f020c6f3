import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";
import { budget, RUN_TIMEOUT_MS } from "./support/timeouts.js";

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("memscore demo", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "memscore-demo-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(
    "runs the whole pipeline on the bundled samples with services it starts and stops itself",
    async () => {
      const outDir = join(dir, "out");
      // No REDIS_URL and no S3_ENDPOINT: the demo must start (and stop) its own.
      const env = { REDIS_URL: "", S3_ENDPOINT: "" };
      const result = await runCli(["demo", "--out-dir", outDir, "--top", "2"], env, RUN_TIMEOUT_MS);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/most memorable \(by this model\):\n(\s+-?\d\.\d{6}\s+\S+\.jpg\n){2}/);
      expect(result.stdout).toContain("5 images: 5 scored, 0 failed");
      expect(result.stderr).toMatch(/untrained/);

      const files = await readdir(outDir, { recursive: true });
      for (const sample of [
        "astronaut.jpg",
        "chelsea.jpg",
        "coffee.jpg",
        "hubble_deep_field.jpg",
        "rocket.jpg",
      ]) {
        expect(files).toContain(`${sample}.json`);
        expect(files).toContain(`${sample}.heatmap.jpg`);
      }
      const csv = files.find((f) => f.endsWith("results.csv")) as string;
      expect((await readFile(join(outDir, csv), "utf8")).trim().split("\n")).toHaveLength(6);
      // The run's report, at the path the demo printed.
      const report = /\n {2}report: (\S+\/report\.html)\n/.exec(result.stdout)?.[1] as string;
      expect(report.startsWith(outDir)).toBe(true);
      expect(await readFile(report, "utf8")).toContain('<section id="top"><h2>Top 5: highest scores</h2>');

      // The private servers are gone once the demo has exited.
      const redis = /private redis-server on ([\d.]+):(\d+)/.exec(result.stderr);
      const s3 = /S3 API server at http:\/\/([\d.]+):(\d+)/.exec(result.stderr);
      expect(redis && s3).toBeTruthy();
      expect(await portOpen(redis?.[1] as string, Number(redis?.[2]))).toBe(false);
      expect(await portOpen(s3?.[1] as string, Number(s3?.[2]))).toBe(false);
    },
    budget(RUN_TIMEOUT_MS),
  );

  it(
    "lists each image once when there are fewer than twice --top images, and ends without a forced stop",
    async () => {
      const result = await runCli(
        ["demo", "--out-dir", join(dir, "out-top3"), "--top", "3"],
        { REDIS_URL: "", S3_ENDPOINT: "" },
        RUN_TIMEOUT_MS,
      );
      expect(result.code, result.stderr).toBe(0);
      const listed = [...result.stdout.matchAll(/^\s+-?\d\.\d{6}\s+(\S+\.jpg)$/gm)].map((m) => m[1]);
      // 5 images, top 3: three most memorable, the other two least memorable, none twice.
      expect(listed).toHaveLength(5);
      expect(new Set(listed).size).toBe(5);
      expect(result.stdout).toMatch(/least memorable:\n(\s+-?\d\.\d{6}\s+\S+\.jpg\n){2}\n/);
      expect(result.stderr).not.toMatch(/forced stop/);
    },
    budget(RUN_TIMEOUT_MS),
  );
});
