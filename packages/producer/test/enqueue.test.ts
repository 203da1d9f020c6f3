import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  chunkJobId,
  formatS3Uri,
  outputLocations,
  parseS3Uri,
  RECORD_METADATA,
  RunState,
  resultsUri,
  type Storage,
} from "@memscore/shared";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openTestQueue, testRedis } from "../../../test/support/queue.js";
import { runKeys, startRecordingConsumer } from "../../../test/support/recording-consumer.js";
import { testStorage } from "../../../test/support/s3.js";
import {
  sleepUntil,
  startTestServices,
  type TestServices,
  uniqueName,
} from "../../../test/support/services.js";
import { enqueueRun, listPrefixImages, ManifestError } from "../src/index.js";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

describe("enqueueRun", () => {
  let services: TestServices;
  let storage: Storage;
  let redis: Redis;
  let dir: string;
  const cleanups: (() => Promise<void>)[] = [];
  const inBucket = uniqueName("in");
  const otherBucket = uniqueName("other");
  const outBucket = uniqueName("out");
  const out = `s3://${outBucket}/scores/`;

  const queue = (name = uniqueName("q")) => {
    const q = openTestQueue(services.env, name);
    cleanups.push(() => q.close({ obliterate: true }));
    return { name, queue: q.queue };
  };
  const manifest = async (lines: string[]) => {
    const path = join(dir, `${uniqueName("m")}.txt`);
    await writeFile(path, `${lines.join("\n")}\n`);
    return path;
  };
  const put = (bucket: string, key: string, body = "x") =>
    storage.put({ bucket, key }, body, { contentType: "application/octet-stream" });
  const zeroCounts = (counts: Record<string, number>) => Object.values(counts).every((n) => n === 0);

  beforeAll(async () => {
    services = await startTestServices();
    for (const b of [inBucket, otherBucket, outBucket]) await services.s3.createBucket(b);
    storage = testStorage(services.env);
    redis = testRedis(services.env);
    dir = await mkdtemp(join(tmpdir(), "memscore-enqueue-"));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  afterAll(async () => {
    storage?.close();
    await redis?.quit();
    await services?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("enqueues a manifest over two buckets, with bucket-qualified rel paths", async () => {
    const { name, queue: q } = queue();
    const path = await manifest([
      `s3://${inBucket}/a.jpg`,
      `s3://${otherBucket}/b.jpg`,
      `s3://${inBucket}/c/d.jpg`,
    ]);
    const summary = await enqueueRun({
      storage,
      redis,
      queueName: name,
      runId: "two-buckets",
      input: { manifest: path },
      outputPrefix: out,
      chunkSize: 2,
    });
    expect(summary).toMatchObject({ imagesEnqueued: 3, chunks: 2, resumed: false });
    const jobs = await q.getJobs(["waiting"]);
    const images = jobs.flatMap((j) => j.data.images);
    expect(images.map((i) => i.rel).sort()).toEqual(
      [`${inBucket}/a.jpg`, `${inBucket}/c/d.jpg`, `${otherBucket}/b.jpg`].sort(),
    );
  });

  it("refuses a manifest with one forbidden bucket before enqueuing anything", async () => {
    const { name, queue: q } = queue();
    const restricted = testStorage(services.env, [inBucket, outBucket]);
    cleanups.push(async () => restricted.close());
    const path = await manifest([
      `s3://${inBucket}/a.jpg`,
      `s3://${inBucket}/b.jpg`,
      `s3://${otherBucket}/c.jpg`,
    ]);
    const error = await enqueueRun({
      storage: restricted,
      redis,
      queueName: name,
      runId: "forbidden",
      input: { manifest: path },
      outputPrefix: out,
      chunkSize: 1,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).message).toMatch(
      new RegExp(`:3: "s3://${otherBucket}/c.jpg".*not in MEMSCORE_ALLOWED_BUCKETS`),
    );
    expect(zeroCounts(await q.getJobCounts())).toBe(true);
    expect(await runKeys(redis, name)).toEqual([]);
  });

  it("refuses a forbidden input prefix or output prefix before listing", async () => {
    const { name } = queue();
    const restricted = testStorage(services.env, [inBucket, outBucket]);
    cleanups.push(async () => restricted.close());
    const base = { storage: restricted, redis, queueName: name, runId: "nope" };
    await expect(
      enqueueRun({ ...base, input: { prefix: `s3://${otherBucket}/` }, outputPrefix: out }),
    ).rejects.toThrow(/not in MEMSCORE_ALLOWED_BUCKETS/);
    await expect(
      enqueueRun({ ...base, input: { prefix: `s3://${inBucket}/` }, outputPrefix: `s3://${otherBucket}/o/` }),
    ).rejects.toThrow(/not in MEMSCORE_ALLOWED_BUCKETS/);
    expect(await runKeys(redis, name)).toEqual([]);
  });

  it("lists a prefix with exact rel paths for unicode, space, + and % keys, skipping folder markers", async () => {
    const keys = [
      "photos/a b.jpg",
      "photos/ünï/çødé.png",
      "photos/x+y.jpg",
      "photos/100%25 off.jpg",
      "photos/empty.jpg",
    ];
    for (const key of keys) await put(inBucket, key, key.endsWith("empty.jpg") ? "" : "img");
    await put(inBucket, "photos/folder/", "");
    await put(inBucket, "photos2/not-mine.jpg");
    await put(inBucket, "photos/out/old.jpg.json"); // under the output prefix: never an input
    const listed = [];
    for await (const image of listPrefixImages(storage, `s3://${inBucket}/photos`, {
      excludePrefix: `s3://${inBucket}/photos/out/`,
    })) {
      listed.push(image);
    }
    expect(listed.map((i) => i.rel).sort()).toEqual(keys.map((k) => k.slice("photos/".length)).sort());
    for (const image of listed) {
      expect(image.uri).toBe(formatS3Uri({ bucket: inBucket, key: `photos/${image.rel}` }));
      expect(image.cursor).toBe(`photos/${image.rel}`);
      expect(image.etag).toMatch(/^[0-9a-f-]+$/);
    }
    expect(listed.find((i) => i.rel === "empty.jpg")?.size).toBe(0);

    const { name, queue: q } = queue();
    await enqueueRun({
      storage,
      redis,
      queueName: name,
      runId: "unicode",
      input: { prefix: `s3://${inBucket}/photos/` },
      outputPrefix: `s3://${inBucket}/photos/out/`,
    });
    const [job] = await q.getJobs(["waiting"]);
    expect(job?.data.images.map((i) => i.rel).sort()).toEqual(listed.map((i) => i.rel).sort());
    expect(job?.data.images.find((i) => i.rel === "a b.jpg")?.size).toBe(3);
  });

  it("chunks with deterministic ids; re-running the same run id adds nothing", async () => {
    const { name, queue: q } = queue();
    const path = await manifest(Array.from({ length: 10 }, (_, i) => `s3://${inBucket}/img-${i}.jpg`));
    const options = {
      storage,
      redis,
      queueName: name,
      runId: "det",
      input: { manifest: path },
      outputPrefix: out,
      chunkSize: 3,
    };
    const first = await enqueueRun(options);
    expect(first).toMatchObject({ imagesEnqueued: 10, chunks: 4, alreadyListed: false });
    const jobs = await q.getJobs(["waiting"]);
    expect(jobs.map((j) => j.id).sort()).toEqual([0, 1, 2, 3].map((i) => chunkJobId("det", i)));
    expect(jobs.map((j) => j.data.images.length).sort()).toEqual([1, 3, 3, 3]);
    const chunk1 = jobs.find((j) => j.id === chunkJobId("det", 1));
    expect(chunk1?.data).toMatchObject({ v: 1, runId: "det", chunkIndex: 1, outputPrefix: out });
    expect(chunk1?.data.images.map((i) => i.uri)).toEqual(
      [3, 4, 5].map((i) => `s3://${inBucket}/img-${i}.jpg`),
    );

    const again = await enqueueRun(options);
    expect(again).toMatchObject({ alreadyListed: true, imagesListed: 0, chunks: 4 });
    expect(await q.getJobCountByTypes("waiting")).toBe(4);
  });

  it("never holds more than maxPending unfinished chunks, and the run completes", async () => {
    const { name, queue: q } = queue();
    const path = await manifest(Array.from({ length: 120 }, (_, i) => `s3://${inBucket}/bp-${i}.jpg`));
    const consumer = startRecordingConsumer(services.env, name, storage, { delayMs: 15, concurrency: 2 });
    cleanups.push(consumer.close);
    let peakWaiting = 0;
    let peakUnfinished = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const c = await q.getJobCounts("waiting", "active", "delayed", "prioritized");
        peakWaiting = Math.max(peakWaiting, c.waiting ?? 0);
        peakUnfinished = Math.max(
          peakUnfinished,
          (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0),
        );
        samples++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let sawWaiting = false;
    const summary = await enqueueRun({
      storage,
      redis,
      queueName: name,
      runId: "bp",
      input: { manifest: path },
      outputPrefix: out,
      chunkSize: 2,
      maxPending: 5,
      pollMs: 20,
      onProgress: (p) => {
        sawWaiting ||= p.waitingForWorkers;
      },
    });
    const run = new RunState(redis, name, "bp");
    await sleepUntil(async () => (await run.snapshot())?.completedAt !== undefined, {
      what: "the run finalized by the consumer",
      timeoutMs: 60_000,
      state: () => run.snapshot(),
    });
    sampling = false;
    await sampler;
    expect(summary.chunks).toBe(60);
    expect(sawWaiting).toBe(true);
    expect(samples).toBeGreaterThan(10);
    expect(peakWaiting).toBeLessThanOrEqual(5);
    // A chunk counts as finished once the worker records it, a moment before BullMQ moves it out of
    // "active": so waiting + active may briefly exceed the window by the consumer's concurrency.
    expect(peakUnfinished).toBeLessThanOrEqual(5 + 2);
    expect(peakWaiting).toBeGreaterThan(0); // the sampler did see work
    expect(consumer.jobs.size).toBe(60);
    const snapshot = await run.snapshot();
    expect(snapshot).toMatchObject({ imagesScored: 120, chunksDone: 60, listingDone: true });
  });

  it("skips images whose record is current for this input, model and heatmap format, and reports them", async () => {
    const prefix = "skip/";
    const names = ["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"];
    for (const [i, n] of names.entries()) await put(inBucket, `${prefix}${n}`, `image ${i}`);
    const etags = new Map<string, string>();
    for await (const o of storage.list({ bucket: inBucket, key: prefix }))
      etags.set(o.key.slice(prefix.length), o.etag);
    const record = (rel: string, meta: { etag?: string; sha?: string; status?: string; format?: string }) =>
      storage.put(outputLocations(out, rel, "jpeg").record, "{}", {
        contentType: "application/json",
        metadata: {
          [RECORD_METADATA.heatmapFormat]: meta.format ?? "jpeg",
          [RECORD_METADATA.inputEtag]: meta.etag ?? (etags.get(rel) as string),
          [RECORD_METADATA.modelSha256]: meta.sha ?? SHA_A,
          [RECORD_METADATA.status]: meta.status ?? "scored",
        },
      });
    await record("0.jpg", {});
    await record("1.jpg", {});
    await record("2.jpg", {});
    await record("3.jpg", { status: "error" });
    await record("4.jpg", { etag: "0123456789abcdef0123456789abcdef" }); // the input changed since
    await record("5.jpg", { format: "png" }); // current, but this run asks for JPEG heatmaps

    const base = {
      storage,
      redis,
      input: { prefix: `s3://${inBucket}/${prefix}` },
      outputPrefix: out,
      chunkSize: 2,
      skipExisting: true,
    };
    const other = queue();
    const withOtherModel = await enqueueRun({
      ...base,
      queueName: other.name,
      runId: "skip-b",
      modelSha256: SHA_B,
      dryRun: true,
    });
    expect(withOtherModel).toMatchObject({ imagesListed: 6, imagesSkipped: 0, imagesEnqueued: 6 });

    const { name, queue: q } = queue();
    const consumer = startRecordingConsumer(services.env, name, storage);
    cleanups.push(consumer.close);
    const summary = await enqueueRun({ ...base, queueName: name, runId: "skip-a", modelSha256: SHA_A });
    expect(summary).toMatchObject({ imagesListed: 6, imagesSkipped: 3, imagesEnqueued: 3, chunks: 3 });
    const run = new RunState(redis, name, "skip-a");
    await sleepUntil(async () => (await run.snapshot())?.completedAt !== undefined, {
      what: "the run finalized by the consumer",
      timeoutMs: 60_000,
      state: () => run.snapshot(),
    });
    // Slot 0 (0.jpg, 1.jpg) was all skipped: recorded done without a job.
    expect([...consumer.jobs.keys()].sort()).toEqual([chunkJobId("skip-a", 1), chunkJobId("skip-a", 2)]);
    const enqueued = [...consumer.jobs.values()].flatMap((d) => d.images.map((i) => i.rel)).sort();
    expect(enqueued).toEqual(["3.jpg", "4.jpg", "5.jpg"]);
    expect(await q.getJobCountByTypes("waiting")).toBe(0);

    const table = await storage.getText(parseS3Uri(resultsUri(out, "skip-a", "jsonl")));
    const rows = (table ?? "")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { uri: string; status: string; heatmap?: string });
    expect(
      rows
        .filter((r) => r.status === "skipped")
        .map((r) => r.uri)
        .sort(),
    ).toEqual(["0.jpg", "1.jpg", "2.jpg"].map((n) => `s3://${inBucket}/${prefix}${n}`));
    expect(rows.find((r) => r.status === "skipped" && r.uri.endsWith("/0.jpg"))?.heatmap).toBe(
      `${out}0.jpg.heatmap.jpg`,
    );
  });

  it("completes a run with nothing to enqueue by writing its results table itself", async () => {
    const { name } = queue();
    const prefix = "allskip/";
    await put(inBucket, `${prefix}only.jpg`, "only");
    const [listed] = await (async () => {
      const l = [];
      for await (const o of storage.list({ bucket: inBucket, key: prefix })) l.push(o);
      return l;
    })();
    await storage.put(outputLocations(out, "only.jpg", "jpeg").record, "{}", {
      contentType: "application/json",
      metadata: {
        [RECORD_METADATA.heatmapFormat]: "jpeg",
        [RECORD_METADATA.inputEtag]: listed?.etag as string,
        [RECORD_METADATA.modelSha256]: SHA_A,
        [RECORD_METADATA.status]: "scored",
      },
    });
    const summary = await enqueueRun({
      storage,
      redis,
      queueName: name,
      runId: "all-skipped",
      input: { prefix: `s3://${inBucket}/${prefix}` },
      outputPrefix: out,
      skipExisting: true,
      modelSha256: SHA_A,
    });
    expect(summary).toMatchObject({ imagesSkipped: 1, imagesEnqueued: 0, completed: true });
    const csv = await storage.getText(parseS3Uri(resultsUri(out, "all-skipped", "csv")));
    expect(csv?.trim().split("\n")).toEqual([
      "uri,status,score,heatmap,error_reason,error_message,model_sha256",
      `s3://${inBucket}/${prefix}only.jpg,skipped,,${out}only.jpg.heatmap.jpg,,,${SHA_A}`,
    ]);
  });

  it("dry-run lists and counts but writes nothing to Redis", async () => {
    const name = uniqueName("q"); // no Queue object: it would write BullMQ's meta key itself
    const path = await manifest(Array.from({ length: 7 }, (_, i) => `s3://${inBucket}/dry-${i}.jpg`));
    const keysBefore = await redis.dbsize();
    const summary = await enqueueRun({
      storage,
      redis,
      queueName: name,
      runId: "dry",
      input: { manifest: path },
      outputPrefix: out,
      chunkSize: 3,
      dryRun: true,
    });
    expect(summary).toMatchObject({ dryRun: true, imagesListed: 7, imagesEnqueued: 7, chunks: 3 });
    expect(await redis.dbsize()).toBe(keysBefore);
    expect(await redis.keys(`*${name}*`)).toEqual([]);
  });
});
