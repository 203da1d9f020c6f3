import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  exitOf,
  runCli,
  startWorkerProcess,
  stopProcesses,
  waitForOutput,
} from "../support/cli.js";
import { startTestServices, type TestServices, uniqueName } from "../support/services.js";
import { budget, COMMAND_TIMEOUT_MS, START_TIMEOUT_MS } from "../support/timeouts.js";

// In JSON log lines the quotes are escaped; on the refusal's plain stderr line they are not.
const WARNING = /maxmemory-policy is \\?"allkeys-lru\\?", not \\?"noeviction/;

// A Redis that may evict keys would silently lose queued chunks: say so at start, or refuse.
describe("Redis maxmemory-policy check at start (Redis with allkeys-lru)", () => {
  let services: TestServices;
  let env: NodeJS.ProcessEnv;
  const workers: CliProcess[] = [];

  beforeAll(async () => {
    services = await startTestServices({ maxmemoryPolicy: "allkeys-lru" });
    env = { ...services.env, MEMSCORE_QUEUE: uniqueName("q"), MEMSCORE_INTRA_OP_THREADS: "1" };
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await services?.stop();
  });

  it("warns by default and keeps running", async () => {
    const worker = startWorkerProcess(env);
    workers.push(worker);
    await waitForOutput(worker, WARNING);
    expect(worker.child.exitCode).toBeNull();
  });

  it(
    "refuses to start with MEMSCORE_REDIS_EVICTION_CHECK=refuse (worker and producer)",
    async () => {
      const worker = startWorkerProcess({ ...env, MEMSCORE_REDIS_EVICTION_CHECK: "refuse" });
      workers.push(worker);
      const exit = await exitOf(worker);
      expect(exit.code, worker.output()).not.toBe(0);
      expect(exit.code).not.toBeNull();
      expect(worker.output()).toMatch(WARNING);
      expect(worker.output()).toContain("Set maxmemory-policy noeviction");

      const enqueue = await runCli(
        ["enqueue", "s3://some-bucket/photos/", "--out", "s3://some-bucket/scores/"],
        { ...env, MEMSCORE_METRICS_PORT: "0", MEMSCORE_REDIS_EVICTION_CHECK: "refuse" },
      );
      expect(enqueue.code).not.toBe(0);
      expect(enqueue.stderr).toMatch(WARNING);
    },
    budget(START_TIMEOUT_MS, COMMAND_TIMEOUT_MS),
  );

  it("logs that it could not check when CONFIG is not allowed (as on managed Redis), and starts", async () => {
    const admin = new Redis(services.redis.url);
    await admin.call("ACL", "SETUSER", "limited", "on", ">limited-pw", "~*", "&*", "+@all", "-config");
    admin.disconnect();
    const url = `redis://limited:limited-pw@${services.redis.host}:${services.redis.port}`;
    const worker = startWorkerProcess({ ...env, REDIS_URL: url, MEMSCORE_REDIS_EVICTION_CHECK: "refuse" });
    workers.push(worker);
    await waitForOutput(worker, /could not check the Redis maxmemory-policy/);
    expect(worker.output()).toContain("NOPERM");
    expect(worker.child.exitCode).toBeNull();
  });
});
