import { describe, expect, it } from "vitest";
import { runCli } from "../../../test/support/cli.js";

// Every command reads its integer flags through one argument layer: a bad value stops the
// command before it touches anything, with exit 2 and one line that names the flag.
const BAD_INTEGER_FLAGS: { command: string[]; flag: string }[] = [
  { command: ["score", "packages/cli/samples", "--batch-size", "many"], flag: "--batch-size" },
  { command: ["score", "packages/cli/samples", "--pipeline-threads", "0"], flag: "--pipeline-threads" },
  {
    command: ["enqueue", "s3://in-x/p/", "--out", "s3://out-x/o/", "--chunk-size", "1.5"],
    flag: "--chunk-size",
  },
  {
    command: ["enqueue", "s3://in-x/p/", "--out", "s3://out-x/o/", "--metrics-port", "70000"],
    flag: "--metrics-port",
  },
  { command: ["worker", "--shutdown-timeout", "soon"], flag: "--shutdown-timeout" },
  { command: ["worker", "--batch-size", "0"], flag: "--batch-size" },
  { command: ["worker", "--inference-timeout-ms", "50"], flag: "--inference-timeout-ms" },
  { command: ["producer", "--concurrency", "0"], flag: "--concurrency" },
  { command: ["producer", "--lock-duration", "1e3"], flag: "--lock-duration" },
  {
    command: ["schedule", "add", "nightly", "s3://in-x/p/", "--out", "s3://out-x/o/", "--every", "x"],
    flag: "--every",
  },
  { command: ["demo", "--top", "0"], flag: "--top" },
  { command: ["report", "s3://out-x/o/_runs/r1/", "--top", "ten"], flag: "--top" },
];

describe("bad integer flags", () => {
  for (const { command, flag } of BAD_INTEGER_FLAGS) {
    it(`memscore ${command.join(" ")}: exit 2, one line naming ${flag}`, async () => {
      // No services anywhere: a command that got past its flags would fail otherwise.
      const result = await runCli(command, {
        REDIS_URL: "redis://127.0.0.1:1",
        S3_ENDPOINT: "http://127.0.0.1:1",
      });
      expect(result.code, result.stderr).toBe(2);
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^memscore ${command[0]}: ${flag}: expected an integer from -?\\d+ to \\d+, got "`),
      );
      expect(result.stdout).toBe("");
    });
  }
});
