#!/usr/bin/env node
// End-to-end throughput: images in S3 → enqueue (producer, in this process) → Redis queue → a
// worker (WorkerService in a process of its own, bench/lib/bench-worker.mjs, so its CPU by
// thread is the worker's alone; it reports stage totals and batch fill over IPC) → heatmaps,
// records and the results table in S3. Redis and the S3 API server are private, on free ports;
// the S3 server runs in a child process, as S3 would run elsewhere.
//
//   node bench/end-to-end.mjs [--model PATH] [--images 128] [--size 640x480] [--batch-size 8]
//                             [--threads N] [--pipeline-threads N] [--heatmap-format jpeg]
//                             [--provider cpu] [--warmup-images 128] [--s3-processes N]
//                             [--distinct-images N] [--cpu-prof DIR] [--json]
// --s3-processes: s3rver processes serving the run (default: bench/lib/bench-services.mjs).

// The SDK's notice about its own 2027 releases is not actionable here (the CLI silences it too);
// pipeline threads copy this environment when they start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { enqueueRun, waitForRun } from "@memscore/producer";
import {
  createRedisConnection,
  EXECUTION_PROVIDERS,
  HEATMAP_FORMATS,
  heatmapSuffix,
  parseS3Uri,
  resolveConfig,
  Storage,
} from "@memscore/shared";
import { STAGES } from "@memscore/worker";
import { benchArgs, choiceFlag, countFlag, sizeFlag, threadsFlag } from "./lib/args.mjs";
import { benchImages } from "./lib/bench-images.mjs";
import { defaultS3Processes, startBenchServices } from "./lib/bench-services.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";
import {
  cpuByGroup,
  processCpuMs,
  processMinorFaults,
  stolenCpuMs,
  THREAD_GROUPS,
  threadTimes,
} from "./lib/thread-cpu.mjs";

const INPUT_BUCKET = "bench-in";
const OUTPUT_BUCKET = "bench-out";

/** Uploads `count` images as img-00000.jpg…, cycling through the generated `files` in `dir`. */
async function uploadImages(storage, dir, files, count, prefix) {
  let next = 0;
  const uploader = async () => {
    while (next < count) {
      const i = next++;
      const body = await readFile(join(dir, files[i % files.length]));
      await storage.put(
        parseS3Uri(`s3://${INPUT_BUCKET}/${prefix}img-${String(i).padStart(5, "0")}.jpg`),
        body,
        {
          contentType: "image/jpeg",
        },
      );
    }
  };
  await Promise.all(Array.from({ length: 8 }, uploader));
}

async function scoreRun(storage, redis, config, runId, prefix, heatmapFormat) {
  const started = performance.now();
  await enqueueRun({
    storage,
    redis,
    queueName: config.queueName,
    runId,
    input: { prefix: `s3://${INPUT_BUCKET}/${prefix}` },
    outputPrefix: `s3://${OUTPUT_BUCKET}/${runId}/`,
    chunkSize: 32,
    heatmapFormat,
  });
  // The end of the run is timed to within 25 ms, but polling that often throughout would spend
  // this process's CPU on the cores being measured: poll at a quarter of the time left.
  const pollMs = ({ etaSeconds }) =>
    etaSeconds === undefined ? 250 : Math.min(250, Math.max(25, etaSeconds * 250));
  const snapshot = await waitForRun(redis, config.queueName, runId, { pollMs });
  return { seconds: (performance.now() - started) / 1000, snapshot };
}

async function countKeys(storage, prefix, suffix) {
  let n = 0;
  for await (const o of storage.list(parseS3Uri(`s3://${OUTPUT_BUCKET}/${prefix}`)))
    if (o.key.endsWith(suffix)) n++;
  return n;
}

/**
 * Images scored before the measured run. A worker scores thousands of images per process, so the
 * figure that matters is its steady state. The warm-up used to be two batches (16 images at batch
 * 8, 2 at batch 1): after it, two interleaved A/B pairs of 192-image scores-only runs (r50, 2
 * cores) put the worker's CPU outside inference at 6.8–6.9 ms per image, and at 5.5–5.6 ms after
 * 128 images. The difference was in the pipeline threads and the main thread (start-up work:
 * code V8 has not yet optimised, S3 connections still opening); V8's background threads moved
 * within noise.
 */
export const DEFAULT_WARMUP_IMAGES = 128;

const BENCH_WORKER = fileURLToPath(new URL("./lib/bench-worker.mjs", import.meta.url));

/** Starts the worker process; resolves once it is ready, with its pid and thread roles. */
async function startWorkerProcess(env, cpuProfileDir) {
  const child = fork(BENCH_WORKER, [], {
    env,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    // V8 CPU profiles of the worker's threads (one file per thread), for a closer look.
    ...(cpuProfileDir && { execArgv: ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`] }),
  });
  const ready = await new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`bench worker exited with code ${code}`)));
  });
  // A worker that dies mid-run (a V8 fatal error, the OOM killer) ends the benchmark with its exit
  // code or signal, instead of leaving it waiting for a run that will never finish.
  let stopping = false;
  const died = new Promise((_, reject) =>
    child.once("exit", (code, signal) => {
      if (!stopping) reject(new Error(`bench worker exited (${signal ?? `code ${code}`}) during the run`));
    }),
  );
  died.catch(() => {});
  const whileAlive = (promise) => Promise.race([promise, died]);
  const ask = (type) =>
    whileAlive(
      new Promise((resolve) => {
        child.once("message", resolve);
        child.send({ type });
      }),
    );
  return {
    pid: child.pid,
    provider: ready.provider,
    pipelineThreads: ready.pipelineThreads,
    jpegCodec: ready.jpegCodec,
    known: Object.fromEntries(Object.entries(ready.known).map(([k, ids]) => [k, new Set(ids)])),
    stats: () => ask("stats"),
    reset: () => ask("reset"),
    whileAlive,
    stop: async () => {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send({ type: "stop" });
      await exited;
    },
  };
}

/**
 * Scores `images` JPEGs end to end and returns images/s, the per-stage time breakdown, the
 * mean batch fill, the engine's busy share of the run, and where the worker's CPU went.
 */
export async function measureEndToEnd({
  model,
  images,
  width,
  height,
  batchSize,
  threads,
  provider,
  maxBatchDelayMs,
  pipelineThreads,
  heatmapFormat = "jpeg",
  warmupImages = DEFAULT_WARMUP_IMAGES,
  distinctImages = images,
  s3Processes = defaultS3Processes(),
  cpuProfileDir,
}) {
  // Generating a photograph takes about 16 ms here: a long run on a fast machine cycles through
  // fewer distinct ones (the worker caches nothing, so a repeated file costs what a new one does).
  const { dir, files } = await benchImages(Math.min(images, distinctImages), width, height);
  const services = await startBenchServices([INPUT_BUCKET, OUTPUT_BUCKET], { s3Processes });
  // The S3 SDK reads its credentials from the process environment.
  Object.assign(process.env, services.env);
  let worker;
  const redis = createRedisConnection(services.env.REDIS_URL, { name: "memscore-bench" });
  // The worker is configured as `memscore worker` is, from the environment: the caller's
  // MEMSCORE_* settings apply; the services and the measured settings are ours.
  const workerEnv = {
    ...process.env,
    ...services.env,
    MEMSCORE_LOG_LEVEL: "warn",
    MEMSCORE_MODEL: model,
    MEMSCORE_PROVIDER: provider,
    MEMSCORE_BATCH_SIZE: String(batchSize),
    MEMSCORE_MAX_BATCH_DELAY_MS: String(maxBatchDelayMs),
    MEMSCORE_INTRA_OP_THREADS: String(threads),
    MEMSCORE_QUEUE: `bench-${process.pid}`,
    ...(pipelineThreads !== undefined && { MEMSCORE_PIPELINE_THREADS: String(pipelineThreads) }),
    // As the memscore command sets it: libuv's pool runs decodes and encodes.
    UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(Math.max(4, availableParallelism())),
  };
  const config = resolveConfig(workerEnv);
  const storage = Storage.fromConfig(config);
  try {
    await uploadImages(storage, dir, files, images, "run/");
    await uploadImages(storage, dir, files, warmupImages, "warmup/");

    worker = await startWorkerProcess(workerEnv, cpuProfileDir);
    // Warm-up run, not counted: first inferences plan memory, S3 connections open, and V8
    // optimises the per-image code, as in a worker that has been scoring for a while
    // (DEFAULT_WARMUP_IMAGES says what a short warm-up left in the figures).
    await worker.whileAlive(scoreRun(storage, redis, config, "warmup", "warmup/", heatmapFormat));
    await worker.reset();
    const { engine: before } = await worker.stats();
    const rssBefore = processRssMiB(worker.pid);
    const workerCpuBefore = processCpuMs(worker.pid);
    const faultsBefore = processMinorFaults(worker.pid);
    const producerCpuBefore = process.cpuUsage();
    const s3CpuBefore = services.s3CpuMs();
    const threadsBefore = threadTimes(worker.pid);
    const stolenBefore = stolenCpuMs();

    const { seconds, snapshot } = await worker.whileAlive(
      scoreRun(storage, redis, config, "measured", "run/", heatmapFormat),
    );
    const workerCpu = processCpuMs(worker.pid) - workerCpuBefore;
    const faultsAfter = processMinorFaults(worker.pid);
    const producerCpu = process.cpuUsage(producerCpuBefore);
    const s3CpuAfter = services.s3CpuMs();
    const stolenAfter = stolenCpuMs();
    const byThread = cpuByGroup(threadsBefore, threadTimes(worker.pid), worker.known, images, worker.pid);
    const { engine: after, stages: totals } = await worker.stats();
    const rssAfter = processRssMiB(worker.pid);
    const batches = after.batches - before.batches;
    const items = after.items - before.items;
    const heatmaps =
      heatmapFormat === "none" ? 0 : await countKeys(storage, "measured/", heatmapSuffix(heatmapFormat));
    const stages = Object.fromEntries(
      STAGES.map((s) => [
        s,
        {
          totalSeconds: totals.seconds[s],
          msPerImage: (1000 * totals.seconds[s]) / Math.max(1, totals.counts[s]),
        },
      ]),
    );
    const workerProcess = workerCpu / images;
    const threadTotal = Object.values(byThread).reduce((a, b) => a + b, 0);
    return {
      provider: worker.provider,
      pipelineThreads: worker.pipelineThreads,
      jpegCodec: worker.jpegCodec,
      s3Processes,
      heatmapFormat,
      images,
      distinctImages: files.length,
      scored: snapshot.imagesScored,
      failed: snapshot.imagesFailed,
      heatmapsWritten: heatmaps,
      seconds,
      imagesPerSecond: images / seconds,
      batches,
      meanBatchFill: batches === 0 ? 0 : items / (batches * batchSize),
      // Rows run beyond the images (MEMSCORE_PAD_BATCHES): the padded shapes' cost.
      paddedRows: after.paddedRows - before.paddedRows,
      engineBusyShare: (after.busyMs - before.busyMs) / 1000 / seconds,
      stages,
      workerRssMiB: { before: rssBefore, after: rssAfter },
      workerMinorFaultsPerImage:
        faultsBefore === null || faultsAfter === null ? null : (faultsAfter - faultsBefore) / images,
      // CPU per image: the worker process; the benchmark's own producer and S3 client; the local
      // S3 server child, which real S3 would not put on the worker's cores.
      cpuMsPerImage: {
        workerProcess,
        // Everything but inference: what a GPU does not take off the host.
        outsideInference: threadTotal > 0 ? workerProcess - byThread.inference : null,
        producer: (producerCpu.user + producerCpu.system) / 1000 / images,
        s3Server: s3CpuBefore === null || s3CpuAfter === null ? null : (s3CpuAfter - s3CpuBefore) / images,
        available: (1000 * seconds * availableParallelism()) / images,
        // Part of `available` the hypervisor gave to other guests (a shared VM): nobody here ran.
        stolen: stolenBefore === null || stolenAfter === null ? null : (stolenAfter - stolenBefore) / images,
        // The worker's CPU by thread role (bench/lib/thread-cpu.mjs); empty off Linux.
        byThread,
      },
    };
  } finally {
    await worker?.stop();
    storage.close();
    await redis.quit();
    await services.stop();
  }
}

/** Resident memory of a process, in MiB; null off Linux. */
function processRssMiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
  } catch {
    return null;
  }
}

export function printEndToEnd(e2e) {
  console.log(
    `end to end: ${e2e.imagesPerSecond.toFixed(2)} images/s (${e2e.images} images in ${e2e.seconds.toFixed(1)} s; ` +
      `${e2e.scored} scored, ${e2e.failed} failed, ${e2e.heatmapsWritten} ${e2e.heatmapFormat} heatmaps written) on ${e2e.provider}, ${e2e.pipelineThreads} pipeline threads`,
  );
  console.log(
    `  mean batch fill ${e2e.meanBatchFill.toFixed(3)} over ${e2e.batches} batches (${e2e.paddedRows} padding rows); ` +
      `engine busy ${(100 * e2e.engineBusyShare).toFixed(1)}% of the run; JPEG codec: ${e2e.jpegCodec}`,
  );
  const cpu = e2e.cpuMsPerImage;
  const ms = (x) => (x === null || x === undefined ? "n/a" : `${x.toFixed(1)} ms`);
  console.log(
    `  CPU per image: worker process ${ms(cpu.workerProcess)}; this benchmark's producer ${ms(cpu.producer)}; ` +
      `S3 server ${ms(cpu.s3Server)} (local s3rver, ${e2e.s3Processes} process${e2e.s3Processes === 1 ? "" : "es"}; real S3 runs elsewhere); cores × run time ${ms(cpu.available)}` +
      (cpu.stolen != null ? `, of which taken by the hypervisor for other guests ${ms(cpu.stolen)}` : ""),
  );
  if (e2e.workerMinorFaultsPerImage != null) {
    console.log(
      `  worker minor page faults per image: ${e2e.workerMinorFaultsPerImage.toFixed(0)} (pages of 4 KiB touched for the first time since mapped)`,
    );
  }
  const threadTotal = Object.values(cpu.byThread).reduce((a, b) => a + b, 0);
  if (threadTotal > 0) {
    console.log("  where the worker process's CPU went, per image:");
    for (const [group, label] of Object.entries(THREAD_GROUPS)) {
      console.log(`    ${label.padEnd(48)} ${cpu.byThread[group].toFixed(2).padStart(7)} ms`);
    }
    console.log(
      `  worker CPU outside inference: ${ms(cpu.outsideInference)} per image ` +
        `(projected host ceiling of one worker on 16 cores: ${(16_000 / cpu.outsideInference).toFixed(0)} images/s)`,
    );
    const used = cpu.workerProcess + cpu.producer + (cpu.s3Server ?? 0);
    console.log(
      `  inference's share of all CPU used (worker + producer + S3 server): ${((100 * cpu.byThread.inference) / used).toFixed(1)}% ` +
        "(with the cores saturated, end-to-end ÷ raw cannot be much above this share)",
    );
  }
  console.log("  stage time per image (summed over images; stages overlap across images):");
  for (const [stage, t] of Object.entries(e2e.stages)) {
    console.log(
      `    ${stage.padEnd(7)} ${t.msPerImage.toFixed(1).padStart(8)} ms  (total ${t.totalSeconds.toFixed(1)} s)`,
    );
  }
}

async function main() {
  const { values } = benchArgs({
    options: {
      model: { type: "string" },
      images: { type: "string", default: "128" },
      size: { type: "string", default: "640x480" },
      "batch-size": { type: "string", default: "8" },
      "max-batch-delay-ms": { type: "string", default: "20" },
      threads: { type: "string" },
      "pipeline-threads": { type: "string" },
      "heatmap-format": { type: "string", default: "jpeg" },
      "cpu-prof": { type: "string" },
      provider: { type: "string", default: "cpu" },
      "warmup-images": { type: "string", default: String(DEFAULT_WARMUP_IMAGES) },
      "s3-processes": { type: "string" },
      "distinct-images": { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const inputs = {
    model: values.model ?? ensureR50Model(),
    images: countFlag("images", values.images, "images"),
    ...sizeFlag("size", values.size),
    batchSize: countFlag("batch-size", values["batch-size"], "images"),
    maxBatchDelayMs: countFlag("max-batch-delay-ms", values["max-batch-delay-ms"], "milliseconds", 0),
    threads: threadsFlag(values.threads),
    provider: choiceFlag("provider", values.provider, EXECUTION_PROVIDERS),
    heatmapFormat: choiceFlag("heatmap-format", values["heatmap-format"], HEATMAP_FORMATS),
    warmupImages: countFlag("warmup-images", values["warmup-images"], "images"),
    ...(values["s3-processes"] !== undefined && {
      s3Processes: countFlag("s3-processes", values["s3-processes"], "processes"),
    }),
    ...(values["distinct-images"] !== undefined && {
      distinctImages: countFlag("distinct-images", values["distinct-images"], "images"),
    }),
    ...(values["cpu-prof"] !== undefined && { cpuProfileDir: values["cpu-prof"] }),
    ...(values["pipeline-threads"] !== undefined && {
      pipelineThreads: countFlag("pipeline-threads", values["pipeline-threads"], "threads"),
    }),
  };
  const machine = describeMachine();
  const e2e = await measureEndToEnd(inputs);
  if (values.json) {
    console.log(JSON.stringify({ benchmark: "end-to-end", inputs, machine, ...e2e }, null, 2));
    return;
  }
  console.log(`inputs: ${JSON.stringify(inputs)}`);
  printMachine(machine);
  printEndToEnd(e2e);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
