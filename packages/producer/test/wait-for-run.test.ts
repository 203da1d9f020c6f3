import { RunState } from "@memscore/shared";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testRedis } from "../../../test/support/queue.js";
import { startTestServices, type TestServices, uniqueName } from "../../../test/support/services.js";
import { RunNotFoundError, type RunProgress, waitForRun } from "../src/index.js";

describe("waitForRun", () => {
  let services: TestServices;
  let redis: Redis;

  beforeAll(async () => {
    services = await startTestServices();
    redis = testRedis(services.env);
  });
  afterAll(async () => {
    await redis?.quit();
    await services?.stop();
  });

  const newRun = async () => {
    const queueName = uniqueName("q");
    const run = new RunState(redis, queueName, "run-1");
    await run.create({ input: "s3://in/", outputPrefix: "s3://out/", modelSha256: "a".repeat(64) });
    return { queueName, run };
  };

  it("asks a pollMs function for each wait, with the progress so far, until the run completes", async () => {
    const { queueName, run } = await newRun();
    const asked: RunProgress[] = [];
    const completedAt = "2026-12-03T10:00:00.000Z";

    const snapshot = await waitForRun(redis, queueName, "run-1", {
      pollMs: (progress) => {
        asked.push(progress);
        // The run completes after the eighth poll; the polls after it see that.
        if (asked.length === 8) void run.markCompleted(completedAt);
        return 5;
      },
    });

    expect(snapshot.completedAt).toBe(completedAt);
    expect(asked.length).toBeGreaterThanOrEqual(8);
    expect(asked.every((p) => p.snapshot.runId === "run-1" && p.snapshot.completedAt === undefined)).toBe(
      true,
    );
  });

  it("rejects for a run that does not exist", async () => {
    await expect(waitForRun(redis, uniqueName("q"), "no-such-run", { pollMs: 10 })).rejects.toBeInstanceOf(
      RunNotFoundError,
    );
  });
});
