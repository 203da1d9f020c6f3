#!/usr/bin/env node
// Producer throughput: how fast `enqueueRun` turns an input listing into chunk jobs, and its peak
// memory, against a plain BullMQ addBulk loop adding the same jobs (same payloads, chunk size,
// id style, 50 chunks per call) in the same run. Two inputs: a streamed manifest of 100,000
// s3:// URIs (the objects need not exist: nothing reads them) and a real S3 prefix listing of
// 20,000 small objects. No workers run, and --max-pending is large, so backpressure never
// blocks. Redis and the S3 API server are private; the S3 server runs in a child process, so
// peak RSS is the producer's own.
//
//   node bench/enqueue.bench.mjs [--manifest-images 100000] [--prefix-images 20000]
//                                [--chunk-size 64] [--json]
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { enqueueRun } from "@memscore/producer";
import {
  CHUNK_JOB_NAME,
  chunkJobId,
  createRedisConnection,
  openChunkQueue,
  resolveConfig,
  Storage,
} from "@memscore/shared";
import { benchArgs, countFlag } from "./lib/args.mjs";
import { startBenchServices } from "./lib/bench-services.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";

const { values } = benchArgs({
  options: {
    "manifest-images": { type: "string", default: "100000" },
    "prefix-images": { type: "string", default: "20000" },
    "chunk-size": { type: "string", default: "64" },
    json: { type: "boolean", default: false },
  },
});
const MANIFEST_IMAGES = countFlag("manifest-images", values["manifest-images"], "images");
const PREFIX_IMAGES = countFlag("prefix-images", values["prefix-images"], "images");
const CHUNK_SIZE = countFlag("chunk-size", values["chunk-size"], "images");
const CHUNKS_PER_ADD = 50; // enqueueRun's default group size
const IN = "bench-enqueue-in";
const OUT = "bench-enqueue-out";
const log = (line) => {
  if (!values.json) console.log(line);
};

/** Samples RSS every 50 ms while `fn` runs; returns its result, seconds and peak RSS in MiB. */
async function measure(fn) {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const started = performance.now();
  try {
    const result = await fn();
    return { result, seconds: (performance.now() - started) / 1000, peakRssMiB: Math.round(peak / 2 ** 20) };
  } finally {
    clearInterval(timer);
  }
}

const manifestKey = (i) =>
  `archive/${String(Math.floor(i / 1000)).padStart(3, "0")}/img-${String(i).padStart(7, "0")}.jpg`;
const prefixKey = (i) => `listing/img-${String(i).padStart(6, "0")}.jpg`;

async function writeManifest(path, count) {
  const out = createWriteStream(path);
  for (let i = 0; i < count; i++) {
    if (!out.write(`s3://${IN}/${manifestKey(i)}\n`)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

async function uploadPrefix(storage, count) {
  let next = 0;
  const uploader = async () => {
    while (next < count) {
      const i = next++;
      await storage.put({ bucket: IN, key: prefixKey(i) }, "x", { contentType: "image/jpeg" });
    }
  };
  await Promise.all(Array.from({ length: 64 }, uploader));
}

/** The baseline: the same chunk jobs, built in memory and added with addBulk, 50 per call. */
async function plainAddBulk(redis, queueName, runId, count, image) {
  const queue = openChunkQueue(redis, queueName);
  try {
    let group = [];
    for (let start = 0, index = 0; start < count; start += CHUNK_SIZE, index++) {
      const images = [];
      for (let i = start; i < Math.min(count, start + CHUNK_SIZE); i++) images.push(image(i));
      group.push({
        name: CHUNK_JOB_NAME,
        data: { v: 1, runId, chunkIndex: index, outputPrefix: `s3://${OUT}/${runId}/`, images },
        opts: { jobId: chunkJobId(runId, index) },
      });
      if (group.length === CHUNKS_PER_ADD) {
        await queue.addBulk(group);
        group = [];
      }
    }
    if (group.length > 0) await queue.addBulk(group);
  } finally {
    await queue.close();
  }
}

/** Reading the input alone (S3 listing pages), with no queue work: the floor for a prefix run. */
async function rawListing(storage, count) {
  let n = 0;
  for await (const _ of storage.list({ bucket: IN, key: "listing/" })) n++;
  if (n !== count) throw new Error(`listed ${n} of ${count}`);
}

async function compare(name, redis, storage, input, count, baselineImage, readInput) {
  const runId = `bench-${name}`;
  const memscore = await measure(() =>
    enqueueRun({
      storage,
      redis,
      queueName: `bench-memscore-${name}`,
      runId,
      input,
      outputPrefix: `s3://${OUT}/${runId}/`,
      chunkSize: CHUNK_SIZE,
      maxPending: 10_000_000,
    }),
  );
  if (memscore.result.imagesEnqueued !== count)
    throw new Error(`${name}: enqueued ${memscore.result.imagesEnqueued} of ${count}`);
  const baseline = await measure(() =>
    plainAddBulk(redis, `bench-plain-${name}`, runId, count, baselineImage),
  );
  const listing = readInput ? await measure(readInput) : undefined;
  const row = {
    input: name,
    images: count,
    chunks: memscore.result.chunks,
    memscoreImagesPerSecond: Math.round(count / memscore.seconds),
    memscoreSeconds: Number(memscore.seconds.toFixed(2)),
    memscorePeakRssMiB: memscore.peakRssMiB,
    plainAddBulkImagesPerSecond: Math.round(count / baseline.seconds),
    plainAddBulkSeconds: Number(baseline.seconds.toFixed(2)),
    plainAddBulkPeakRssMiB: baseline.peakRssMiB,
    ratio: Number((baseline.seconds / memscore.seconds).toFixed(3)),
    ...(listing && {
      rawListingImagesPerSecond: Math.round(count / listing.seconds),
      ratioToRawListing: Number((listing.seconds / memscore.seconds).toFixed(3)),
    }),
  };
  log(
    `${name.padEnd(9)} ${String(count).padStart(7)} images ${String(row.chunks).padStart(5)} chunks | ` +
      `memscore ${String(row.memscoreImagesPerSecond).padStart(7)} img/s, peak RSS ${row.memscorePeakRssMiB} MiB | ` +
      `plain addBulk ${String(row.plainAddBulkImagesPerSecond).padStart(7)} img/s, peak RSS ${row.plainAddBulkPeakRssMiB} MiB | ` +
      `memscore ÷ plain addBulk = ${row.ratio.toFixed(2)}`,
  );
  if (listing) {
    log(
      `${"".padEnd(9)} raw S3 listing alone ${row.rawListingImagesPerSecond} img/s | memscore ÷ raw listing = ${row.ratioToRawListing.toFixed(2)}`,
    );
  }
  return row;
}

const machine = describeMachine();
if (!values.json) printMachine(machine);
log(
  `inputs: manifest of ${MANIFEST_IMAGES} URIs; S3 prefix of ${PREFIX_IMAGES} objects; chunk size ${CHUNK_SIZE}`,
);

const services = await startBenchServices([IN, OUT]);
Object.assign(process.env, services.env); // the AWS SDK reads credentials from the environment
const config = resolveConfig(services.env);
const storage = Storage.fromConfig(config);
const redis = createRedisConnection(config.redisUrl, { name: "bench-enqueue" });
const dir = await mkdtemp(join(tmpdir(), "memscore-bench-enqueue-"));
const rows = [];
try {
  const manifest = join(dir, "manifest.txt");
  await writeManifest(manifest, MANIFEST_IMAGES);
  rows.push(
    await compare("manifest", redis, storage, { manifest }, MANIFEST_IMAGES, (i) => ({
      uri: `s3://${IN}/${manifestKey(i)}`,
      rel: `${IN}/${manifestKey(i)}`,
    })),
  );

  const upload = await measure(() => uploadPrefix(storage, PREFIX_IMAGES));
  log(`(uploaded ${PREFIX_IMAGES} objects in ${upload.seconds.toFixed(1)} s; not part of the measurement)`);
  rows.push(
    await compare(
      "prefix",
      redis,
      storage,
      { prefix: `s3://${IN}/listing/` },
      PREFIX_IMAGES,
      (i) => ({
        uri: `s3://${IN}/${prefixKey(i)}`,
        rel: prefixKey(i).slice("listing/".length),
        size: 1,
      }),
      () => rawListing(storage, PREFIX_IMAGES),
    ),
  );
} finally {
  await redis.quit();
  storage.close();
  await services.stop();
  await rm(dir, { recursive: true, force: true });
}
if (values.json) {
  console.log(
    JSON.stringify({
      benchmark: "enqueue",
      machine,
      inputs: { manifestImages: MANIFEST_IMAGES, prefixImages: PREFIX_IMAGES, chunkSize: CHUNK_SIZE },
      results: rows,
    }),
  );
}
