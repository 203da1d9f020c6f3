import { CreateBucketCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { isScanRunOf, scanQueueName } from "@memscore/producer";
import { type RunSnapshot, RunState } from "@memscore/shared";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";
import { makePhoto } from "./support/images.js";
import { logLines, startProducerProcess } from "./support/producer-process.js";
import { getBytes, putObjects, testS3Client } from "./support/s3.js";
import { sleepUntil, startTestServices, type TestServices, uniqueName } from "./support/services.js";
import { startWorkerProcess, stopWorkers, type WorkerProcess } from "./support/workers.js";

const SCHEDULE = "photos-hourly";

// Scheduled reprocessing end to end: a 1-second schedule, two producer services, one worker.
describe("scheduled rescans (real Redis, S3 API server, 2 producer services, 1 worker)", () => {
  let services: TestServices;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let redis: Redis;
  let queueName: string;
  let producers: WorkerProcess[] = [];
  let workers: WorkerProcess[] = [];
  const input = uniqueName("in");
  const output = uniqueName("out");

  /** The schedule's runs in Redis, oldest first. */
  const scheduleRuns = async (): Promise<RunSnapshot[]> => {
    const ids = (await RunState.listRunIds(redis, queueName, 1_000)).filter((id) =>
      isScanRunOf(SCHEDULE, id),
    );
    const snapshots = await Promise.all(ids.map((id) => new RunState(redis, queueName, id).snapshot()));
    return snapshots
      .filter((s): s is RunSnapshot => s !== undefined)
      .sort((a, b) => a.runId.localeCompare(b.runId));
  };
  const processOutput = () => [...producers, ...workers].map((p) => p.output()).join("\n");

  beforeAll(async () => {
    services = await startTestServices();
    queueName = uniqueName("q");
    env = { ...services.env, MEMSCORE_QUEUE: queueName, MEMSCORE_INTRA_OP_THREADS: "1" };
    s3 = testS3Client(env);
    redis = new Redis(env.REDIS_URL as string, { maxRetriesPerRequest: null });
    await s3.send(new CreateBucketCommand({ Bucket: input }));
    await s3.send(new CreateBucketCommand({ Bucket: output }));
    const photos = new Map<string, Buffer>();
    for (let i = 0; i < 6; i++) photos.set(`photos/p${i}.jpg`, await makePhoto(64 + i * 8, 48, i + 1));
    await putObjects(s3, input, photos);
    workers = [startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "8"])];
    producers = [startProducerProcess(env), startProducerProcess(env)];
  });

  afterAll(async () => {
    await stopWorkers([...producers, ...workers]);
    redis?.disconnect();
    s3?.destroy();
    await services?.stop();
  });

  it("rescans on its cadence, enqueues only new and changed images, and stops once removed", async () => {
    const added = await runCli(
      [
        "schedule",
        "add",
        SCHEDULE,
        "--every",
        "1000",
        `s3://${input}/photos/`,
        "--out",
        `s3://${output}/scores/`,
        "--chunk-size",
        "4",
      ],
      env,
    );
    expect(added.code, added.stderr).toBe(0);

    // The first scan enqueues every image; once they are scored, scans find nothing to do.
    await sleepUntil(async () => (await scheduleRuns())[0]?.finalizedAt !== undefined, 90_000, 200);
    const [first] = await scheduleRuns();
    expect(first, processOutput()).toMatchObject({ imagesEnqueued: 6, imagesSkipped: 0, imagesScored: 6 });
    await sleepUntil(
      async () =>
        (await scheduleRuns()).some(
          (r) => r.runId > (first?.runId ?? "") && r.finalizedAt && r.imagesSkipped === 6,
        ),
      60_000,
      200,
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
    await sleepUntil(
      async () =>
        (await scheduleRuns()).some(
          (r) => r.createdAt > changedAt && r.finalizedAt && r.imagesSkipped === 7 && r.imagesEnqueued === 0,
        ),
      90_000,
      200,
    );
    const runs = await scheduleRuns();
    const later = runs.slice(1);
    // Every later run enqueued only what changed: across them, exactly the two images, once each.
    expect(
      later.reduce((sum, r) => sum + r.imagesEnqueued, 0),
      JSON.stringify(later),
    ).toBe(2);
    expect(later.every((r) => r.imagesFailed === 0 && r.finalizedAt !== undefined)).toBe(true);
    const record = JSON.parse((await getBytes(s3, output, "scores/new.jpg.json")).toString()) as {
      status: string;
    };
    expect(record.status).toBe("scored");
    const changed = JSON.parse((await getBytes(s3, output, "scores/p0.jpg.json")).toString()) as {
      input: { etag: string };
    };
    const current = await s3.send(new HeadObjectCommand({ Bucket: input, Key: "photos/p0.jpg" }));
    expect(changed.input.etag.replaceAll('"', "")).toBe((current.ETag ?? "").replaceAll('"', ""));

    // Two producer services ran the scans, and no scan (run id) was run by both.
    const started = producers.map(
      (p) => new Set(logLines(p.output(), "scan started").map((line) => line.runId as string)),
    );
    const [a = new Set<string>(), b = new Set<string>()] = started;
    expect([...a].filter((runId) => b.has(runId))).toEqual([]);
    expect(new Set([...a, ...b])).toEqual(new Set(runs.map((r) => r.runId)));

    // Removed: once the iteration in flight (if any) is done, no new run appears.
    const removed = await runCli(["schedule", "remove", SCHEDULE], env);
    expect(removed.code, removed.stderr).toBe(0);
    const scansConnection = redis.duplicate();
    const scans = new Queue(scanQueueName(queueName), { connection: scansConnection });
    try {
      await sleepUntil(async () => {
        const counts = await scans.getJobCounts("waiting", "active", "delayed", "prioritized");
        return Object.values(counts).every((n) => n === 0);
      }, 30_000);
    } finally {
      await scans.close();
      scansConnection.disconnect();
    }
    const runsAtRemoval = (await scheduleRuns()).length;
    // Three cadences: a schedule still firing would have started a scan by then.
    const quietUntil = Date.now() + 3_500;
    while (Date.now() < quietUntil) {
      expect((await scheduleRuns()).length).toBe(runsAtRemoval);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const listed = await runCli(["schedule", "list", "--json"], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { schedules: unknown[] }).schedules).toEqual([]);
  });
});
