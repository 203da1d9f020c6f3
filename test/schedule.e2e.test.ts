import { createHash } from "node:crypto";
import { copyFile, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { isScanRunOf, scanQueueName } from "@memscore/producer";
import { type ImageRecord, type RunSnapshot, RunState } from "@memscore/shared";
import { BUNDLED_MODEL_PATH } from "@memscore/worker";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliProcess,
  logLines,
  metricsPortOf,
  runCli,
  startProducerProcess,
  startWorkerProcess,
  stopProcesses,
  workerStarted,
} from "./support/cli.js";
import { makePhoto } from "./support/images.js";
import { testRedis } from "./support/queue.js";
import { type RunFixture, startRunFixture } from "./support/run-fixture.js";
import { getBytes, listKeys, putObjects } from "./support/s3.js";
import { sleepUntil, uniqueName } from "./support/services.js";
import { budget, COMMAND_TIMEOUT_MS, START_TIMEOUT_MS } from "./support/timeouts.js";

const OTHER_MODEL = fileURLToPath(new URL("./fixtures/models/contract-ok.onnx", import.meta.url));
/** How long a schedule may take to reach a state: a few cadences, each a scan and a short run. */
const SCHEDULE_WAIT_MS = 90_000;

interface ScheduleJson {
  name: string;
  cron?: string;
  tz?: string;
  everyMs?: number;
  input: string;
  outputPrefix: string;
  nextAt: string | null;
  iterations: number;
  lastRun: { runId: string; imagesEnqueued: number; completedAt: string | null } | null;
}

const sha256Of = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

// Scheduled reprocessing end to end: schedules, producer services and a worker, all real processes.
describe("scheduled rescans (real Redis, S3 API server, producer services, a worker)", () => {
  let fixture: RunFixture;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let redis: Redis;
  let queueName: string;
  let dir: string;
  /** The model file the worker and the producers of the last test run; replaced to change the model. */
  let modelPath: string;
  let producers: CliProcess[] = [];
  let workers: CliProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  /** A schedule's runs in Redis, oldest first. */
  const scheduleRuns = async (schedule: string): Promise<RunSnapshot[]> => {
    const ids = (await RunState.listRunIds(redis, queueName, 1_000)).filter((id) =>
      isScanRunOf(schedule, id),
    );
    const snapshots = await Promise.all(ids.map((id) => new RunState(redis, queueName, id).snapshot()));
    return snapshots
      .filter((s): s is RunSnapshot => s !== undefined)
      .sort((a, b) => a.runId.localeCompare(b.runId));
  };
  const processOutput = () =>
    [...producers, ...workers].map((p) => `--- ${p.command}\n${p.tail()}`).join("\n");
  /** Waits until the schedule's runs satisfy `done`; on expiry says what the runs were. */
  const waitForRuns = async (schedule: string, what: string, done: (runs: RunSnapshot[]) => boolean) =>
    sleepUntil(async () => done(await scheduleRuns(schedule)), {
      what: `${schedule}: ${what}`,
      timeoutMs: SCHEDULE_WAIT_MS,
      intervalMs: 200,
      state: async () => `${JSON.stringify(await scheduleRuns(schedule), null, 2)}\n${processOutput()}`,
    });
  const schedule = async (...args: string[]) => {
    const result = await runCli(["schedule", ...args], env);
    expect(result.code, result.stderr).toBe(0);
    return result.stdout;
  };
  const listed = async (): Promise<ScheduleJson[]> =>
    (JSON.parse(await schedule("list", "--json")) as { schedules: ScheduleJson[] }).schedules;

  /**
   * Removes a schedule and waits until nothing of it can run any more: no scheduler left (so no
   * iteration can be created) and no scan job of it waiting, delayed or running. Its runs are
   * final then.
   */
  const removeAndSettle = async (name: string) => {
    await schedule("remove", name);
    expect((await listed()).map((s) => s.name)).not.toContain(name);
    const connection = redis.duplicate();
    const scans = new Queue(scanQueueName(queueName), { connection });
    const pending = async () =>
      (await scans.getJobs(["waiting", "active", "delayed", "prioritized"]))
        .filter((job) => (job.data as { schedule?: string }).schedule === name)
        .map((job) => ({
          id: job.id,
          timestamp: job.timestamp,
          delay: job.delay,
          attempts: job.attemptsMade,
        }));
    try {
      await sleepUntil(async () => (await pending()).length === 0, {
        what: `no scan of ${name} left to run`,
        timeoutMs: SCHEDULE_WAIT_MS,
        state: async () => ({ pending: await pending(), now: Date.now(), output: processOutput() }),
      });
      expect((await scans.getJobSchedulers()).map((s) => s.key)).not.toContain(name);
    } finally {
      await scans.close();
      connection.disconnect();
    }
  };

  beforeAll(async () => {
    fixture = await startRunFixture({ buckets: [input, output] });
    ({ env, s3 } = fixture);
    queueName = env.MEMSCORE_QUEUE as string;
    redis = testRedis(env);
    dir = await mkdtemp(join(tmpdir(), "memscore-schedule-"));
    // A copy of the bundled model: the same sha256, in a file the last test can replace.
    modelPath = join(dir, "model.onnx");
    await copyFile(BUNDLED_MODEL_PATH, modelPath);
    const photos = new Map<string, Buffer>();
    for (let i = 0; i < 6; i++) photos.set(`photos/p${i}.jpg`, await makePhoto(64 + i * 8, 48, i + 1));
    await putObjects(s3, input, photos);
    workers = [startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"])];
    producers = [startProducerProcess(env), startProducerProcess(env)];
    await Promise.all([...workers.map((w) => workerStarted(w)), ...producers.map((p) => metricsPortOf(p))]);
  });

  afterAll(async () => {
    await stopProcesses([...producers, ...workers]);
    redis?.disconnect();
    await fixture?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "rescans on its cadence, enqueues only new and changed images, and stops once removed",
    async () => {
      const name = "photos-hourly";
      await schedule(
        "add",
        name,
        "--every",
        "1000",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--chunk-size",
        "4",
      );

      // The first scan enqueues every image; once they are scored, scans find nothing to do.
      await waitForRuns(name, "first run finalized", (runs) => runs[0]?.completedAt !== undefined);
      const [first] = await scheduleRuns(name);
      expect(first, processOutput()).toMatchObject({ imagesEnqueued: 6, imagesSkipped: 0, imagesScored: 6 });
      await waitForRuns(name, "a later run that skipped all six", (runs) =>
        runs.some((r) => r.runId > (first?.runId ?? "") && r.completedAt && r.imagesSkipped === 6),
      );

      // One image changes (another ETag), one is new.
      await putObjects(
        s3,
        input,
        new Map([
          ["photos/p0.jpg", await makePhoto(90, 60, 99)],
          ["photos/new.jpg", await makePhoto(80, 80, 42)],
        ]),
      );
      const changedAt = new Date().toISOString();
      // Settled: a run started after the change finds all seven images current.
      await waitForRuns(name, "a run after the change that found all seven current", (runs) =>
        runs.some(
          (r) => r.createdAt > changedAt && r.completedAt && r.imagesSkipped === 7 && r.imagesEnqueued === 0,
        ),
      );

      // Removed: once no scan of it can run any more, its runs are final and can be compared.
      await removeAndSettle(name);
      const runs = await scheduleRuns(name);
      const later = runs.slice(1);
      // Every later run enqueued only what changed: across them, exactly the two images, once each.
      expect(
        later.reduce((sum, r) => sum + r.imagesEnqueued, 0),
        JSON.stringify(later),
      ).toBe(2);
      expect(later.every((r) => r.imagesFailed === 0 && r.completedAt !== undefined)).toBe(true);
      const record = JSON.parse(
        (await getBytes(s3, output, "scores/new.jpg.json")).toString(),
      ) as ImageRecord;
      expect(record.status).toBe("scored");
      const changed = JSON.parse(
        (await getBytes(s3, output, "scores/p0.jpg.json")).toString(),
      ) as ImageRecord;
      const current = await s3.send(new HeadObjectCommand({ Bucket: input, Key: "photos/p0.jpg" }));
      expect(changed.input.etag?.replaceAll('"', "")).toBe((current.ETag ?? "").replaceAll('"', ""));

      // Two producer services ran the scans, and no scan (run id) was run by both. A producer
      // logs "scan started" before the run exists, so the logs are read now that all runs are final.
      const startedBy = () =>
        producers.map(
          (p) => new Set(logLines(p.output(), "scan started").map((line) => line.runId as string)),
        );
      await sleepUntil(() => startedBy().reduce((n, ids) => n + ids.size, 0) >= runs.length, {
        what: "a 'scan started' log line for every run",
        timeoutMs: COMMAND_TIMEOUT_MS,
        state: () => ({ runs: runs.map((r) => r.runId), logged: startedBy().map((ids) => [...ids]) }),
      });
      const [a = new Set<string>(), b = new Set<string>()] = startedBy();
      expect([...a].filter((runId) => b.has(runId))).toEqual([]);
      expect(new Set([...a, ...b])).toEqual(new Set(runs.map((r) => r.runId)));
    },
    budget(4 * SCHEDULE_WAIT_MS, COMMAND_TIMEOUT_MS),
  );

  it(
    "takes cron schedules (with a time zone, and with seconds), lists them, and runs them at their times",
    async () => {
      const added = await schedule(
        "add",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Paris",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/nightly/`,
      );
      expect(added).toMatch(/^schedule nightly: cron "30 2 \* \* \*" \(Europe\/Paris\), .* next \S+Z\n$/);
      // Every two seconds (a sixth field: seconds), so that it really fires during the test.
      await schedule(
        "add",
        "every-2s",
        "--cron",
        "*/2 * * * * *",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/cron/`,
        "--chunk-size",
        "4",
      );
      await waitForRuns("every-2s", "a run finalized", (runs) =>
        runs.some((r) => r.completedAt !== undefined),
      );

      const [cron] = await scheduleRuns("every-2s");
      // The run id is the iteration's time: an even second, on the second.
      expect(cron?.runId).toMatch(/^every-2s-\d{8}T\d{6}\.000Z$/);
      const seconds = Number(/T\d{4}(\d{2})\.000Z$/.exec(cron?.runId ?? "")?.[1]);
      expect(seconds % 2, cron?.runId).toBe(0);
      const photos = (await listKeys(s3, input, "photos/")).length;
      expect(cron).toMatchObject({ imagesEnqueued: photos, imagesScored: photos, imagesFailed: 0 });

      const schedules = await listed();
      expect(schedules.map((s) => s.name).sort()).toEqual(["every-2s", "nightly"]);
      const nightly = schedules.find((s) => s.name === "nightly") as ScheduleJson;
      expect(nightly).toMatchObject({
        cron: "30 2 * * *",
        tz: "Europe/Paris",
        input: `s3://${input}/photos/`,
        outputPrefix: `s3://${output}/nightly/`,
        lastRun: null,
      });
      // The next iteration is the next 02:30 in Paris: within a day, at 02:30:00 Paris time.
      const next = Date.parse(nightly.nextAt as string);
      expect(next - Date.now()).toBeGreaterThan(0);
      expect(next - Date.now()).toBeLessThanOrEqual(25 * 3_600_000);
      const paris = new Intl.DateTimeFormat("en-GB", {
        timeZone: "Europe/Paris",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      }).format(next);
      expect(paris).toBe("02:30:00");
      const frequent = schedules.find((s) => s.name === "every-2s") as ScheduleJson;
      expect(frequent.cron).toBe("*/2 * * * * *");
      expect(frequent.iterations).toBeGreaterThan(0);
      expect(frequent.lastRun?.runId).toMatch(/^every-2s-/);

      const text = await schedule("list");
      expect(text).toContain(
        `nightly\n  cron "30 2 * * *" (Europe/Paris), next ${nightly.nextAt}\n  s3://${input}/photos/ -> s3://${output}/nightly/ (new and changed images)\n  last run: none yet\n`,
      );
      expect(text).toMatch(
        /every-2s\n {2}cron "\*\/2 \* \* \* \* \*", next \S+\n.*\n {2}last run: every-2s-\d{8}T\d{6}\.000Z \((listing|scoring|complete): \d+ enqueued, \d+ skipped\)/,
      );

      await removeAndSettle("every-2s");
      await removeAndSettle("nightly");
      expect(await listed()).toEqual([]);
      expect(await schedule("list")).toBe(`no schedules in queue ${queueName}\n`);
    },
    budget(SCHEDULE_WAIT_MS, 3 * SCHEDULE_WAIT_MS),
  );

  it(
    "rescores every image once the model's sha256 changes, and serves /metrics, /healthz and /readyz",
    async () => {
      // One producer and one worker, both on the model file that is about to change.
      await stopProcesses([...producers, ...workers]);
      const modelEnv = { ...env, MEMSCORE_MODEL: modelPath };
      const producer = startProducerProcess(modelEnv);
      producers = [producer];
      workers = [startWorkerProcess(modelEnv, ["--concurrency", "2"])];
      await workerStarted(workers[0] as CliProcess);
      const port = await metricsPortOf(producer);

      const name = "model-swap";
      await schedule(
        "add",
        name,
        "--every",
        "1000",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/swap/`,
      );
      await waitForRuns(name, "all seven scored, then a run that skipped them all", (runs) =>
        runs.some((r) => r.completedAt && r.imagesSkipped === 7 && r.imagesEnqueued === 0),
      );
      const before = await scheduleRuns(name);
      expect(before[0]).toMatchObject({ imagesEnqueued: 7, imagesScored: 7 });

      // The worker stops; the model file is replaced (whole: written aside, then renamed); a
      // worker of the new model starts. The producer hashes the file at every scan.
      await stopProcesses(workers);
      await copyFile(OTHER_MODEL, `${modelPath}.new`);
      await rename(`${modelPath}.new`, modelPath);
      const swappedAt = new Date().toISOString();
      workers = [startWorkerProcess(modelEnv, ["--concurrency", "2"])];
      await workerStarted(workers[0] as CliProcess);
      await waitForRuns(
        name,
        "every image rescored with the new model, then a run that skipped them all",
        (runs) => {
          const after = runs.filter((r) => r.createdAt > swappedAt);
          const rescored = after.findIndex((r) => r.imagesEnqueued === 7);
          return (
            rescored >= 0 && after.slice(rescored + 1).some((r) => r.completedAt && r.imagesSkipped === 7)
          );
        },
      );

      // The producer's own endpoints, while it runs.
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ready: true, checks: { scans: true, redis: true } });

      await removeAndSettle(name);
      const runs = await scheduleRuns(name);
      const after = runs.filter((r) => r.createdAt > swappedAt);
      // The first run after the change enqueued all seven (their records had the old model's
      // sha256); the ones after it, none: each image was scored once more, no more.
      expect(
        after.reduce((sum, r) => sum + r.imagesEnqueued, 0),
        JSON.stringify(after),
      ).toBe(7);
      const newSha = await sha256Of(OTHER_MODEL);
      for (const rel of ["p0.jpg", "new.jpg"]) {
        const record = JSON.parse((await getBytes(s3, output, `swap/${rel}.json`)).toString()) as ImageRecord;
        expect(record.model, rel).toMatchObject({ name: "contract-fixture", sha256: newSha });
      }

      // /metrics counts the scans this producer ran, as the runs in Redis do.
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const enqueuedScans = new RegExp(
        `^memscore_producer_scans_total\\{schedule="${name}",outcome="enqueued"\\} (\\d+)$`,
        "m",
      ).exec(metrics)?.[1];
      expect(Number(enqueuedScans), metrics).toBe(runs.length);
      expect(metrics).toMatch(new RegExp(`^memscore_producer_images_enqueued_total ${7 + 7}$`, "m"));
    },
    budget(START_TIMEOUT_MS, 3 * SCHEDULE_WAIT_MS, START_TIMEOUT_MS),
  );
});
