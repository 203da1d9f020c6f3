import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  logLines,
  metricsPortOf,
  runCli,
  startProducerProcess,
  startWorkerProcess,
  stopProcesses,
} from "./support/cli.js";
import { makePhoto } from "./support/images.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { putObjects } from "./support/s3.js";
import { sleepUntil, uniqueName } from "./support/services.js";

const ADMIN_PASSWORD = "admin-pw";
const USER = "memscore";
const USER_PASSWORD = "memscore-pw";
const IMAGES = 8;
const CHUNK = 4;
const NO_CLIENT_LIST_WARNING =
  "Redis refuses CLIENT LIST: memscore_queue_workers is not exported; every other queue gauge is";

/** `name{labels} value` lines of an exposition, by series text. */
function samples(exposition: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

// Managed Redis services (and ACLs written by cautious operators) refuse CLIENT LIST, which
// BullMQ needs to count workers. Everything else must keep working, the queue gauges above all:
// autoscaling reads them.
describe("a Redis whose ACL refuses CLIENT LIST", () => {
  let fixture: RunFixture;
  let env: NodeJS.ProcessEnv;
  let adminEnv: NodeJS.ProcessEnv;
  const processes: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output], redis: { password: ADMIN_PASSWORD } });
    const admin = new Redis(fixture.services.redis.url);
    try {
      await admin.call(
        "ACL",
        "SETUSER",
        USER,
        "on",
        `>${USER_PASSWORD}`,
        "~*",
        "&*",
        "+@all",
        "-client|list",
      );
    } finally {
      admin.disconnect();
    }
    const { port, host } = fixture.services.redis;
    adminEnv = fixture.env;
    env = { ...fixture.env, REDIS_URL: `redis://${USER}:${USER_PASSWORD}@${host}:${port}` };
    const photos = new Map<string, Buffer>();
    for (let i = 0; i < IMAGES; i++) photos.set(`photos/${i}.jpg`, await makePhoto(64 + i, 48, i));
    await putObjects(fixture.s3, input, photos);
  });

  afterAll(async () => {
    await stopProcesses(processes);
    await fixture?.stop();
  });

  it("really refuses CLIENT LIST to that user (the premise of this test)", async () => {
    const user = new Redis(env.REDIS_URL as string);
    try {
      await expect(user.call("CLIENT", "LIST")).rejects.toThrow(/NOPERM/);
      expect(await user.ping()).toBe("PONG");
    } finally {
      user.disconnect();
    }
  });

  it("exports every queue gauge but the worker count, warns once, and still runs the pipeline", async () => {
    const producer = startProducerProcess(env);
    processes.push(producer);
    // Bound by the producer itself (port 0), so no other process can take it first.
    const metricsPort = await metricsPortOf(producer);
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const readyz = async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status;
    await sleepUntil(async () => (await readyz()) === 200, {
      what: "(await readyz()) === 200",
      timeoutMs: 60_000,
    });

    const enqueue = await runCli(
      [
        "enqueue",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--run-id",
        "acl-run",
        "--chunk-size",
        String(CHUNK),
      ],
      env,
    );
    expect(enqueue.code, enqueue.stderr).toBe(0);

    // No worker yet: the backlog is visible, as autoscaling from zero needs it.
    const queue = env.MEMSCORE_QUEUE as string;
    const before = await scrape();
    expect(
      samples(before, "memscore_queue_jobs").get(`memscore_queue_jobs{queue="${queue}",state="waiting"}`),
    ).toBe(IMAGES / CHUNK);
    expect(samples(before, "memscore_redis_up").get(`memscore_redis_up{queue="${queue}"}`)).toBe(1);
    expect(
      samples(before, "memscore_run_images_enqueued").get(
        `memscore_run_images_enqueued{queue="${queue}",run_id="acl-run"}`,
      ),
    ).toBe(IMAGES);
    expect(samples(before, "memscore_queue_oldest_waiting_job_age_seconds").size).toBe(1);
    expect(samples(before, "memscore_queue_workers").size).toBe(0);

    const worker = startWorkerProcess(env, ["--concurrency", "1", "--batch-size", "4"]);
    processes.push(worker);
    const completed = `memscore_queue_jobs{queue="${queue}",state="completed"}`;
    await sleepUntil(
      async () => samples(await scrape(), "memscore_queue_jobs").get(completed) === IMAGES / CHUNK,
      {
        what: "samples(await scrape(), 'memscore_queue_jobs').get(completed) === IMAGES / CHUNK",
        timeoutMs: 120_000,
      },
    );
    const after = await scrape();
    expect(
      samples(after, "memscore_queue_jobs").get(`memscore_queue_jobs{queue="${queue}",state="waiting"}`),
    ).toBe(0);
    expect(samples(after, "memscore_queue_workers").size).toBe(0);
    expect(logLines(producer.output(), NO_CLIENT_LIST_WARNING)).toHaveLength(1);
    expect(logLines(producer.output(), NO_CLIENT_LIST_WARNING)[0]?.error).toMatch(/NOPERM/);

    // `memscore status` says the count is unknown instead of failing or saying 0.
    const status = await runCli(["status", "--json"], env);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as { workers: { count: number | null; unavailable?: string } };
    expect(report.workers.count).toBeNull();
    expect(report.workers.unavailable).toMatch(/NOPERM/);
    const text = await runCli(["status"], env);
    expect(text.stdout).toMatch(/workers {4}unknown: Redis refuses CLIENT LIST \(.*NOPERM/);
    // The same queue read by a user allowed CLIENT LIST counts the worker.
    const admin = JSON.parse((await runCli(["status", "--json"], adminEnv)).stdout) as {
      workers: { count: number | null };
    };
    expect(admin.workers.count).toBe(1);
    expect(worker.child.exitCode).toBeNull();
  });
});
