#!/usr/bin/env node
// Memory soak: one worker (in this process) scores a long run with the tiny model, and the
// process RSS is sampled as images complete. A bounded pipeline keeps RSS flat: the ratio
// RSS(image 5000) ÷ RSS(image 1000) should stay within 1.2.
//
//   node bench/soak-rss.mjs [--images 5000] [--distinct 100] [--size 320x240] [--json]
// The SDK's notice about its own 2027 releases is not actionable here (the CLI silences it too);
// pipeline threads copy this environment when they start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { availableParallelism } from "node:os";
import { enqueueRun, waitForRun } from "@memscore/producer";
import { createRedisConnection, parseS3Uri, resolveConfig, Storage, silentLogger } from "@memscore/shared";
import { WorkerService } from "@memscore/worker";
import { benchArgs, countFlag, sizeFlag } from "./lib/args.mjs";
import { photoJpeg } from "./lib/bench-images.mjs";
import { startBenchServices } from "./lib/bench-services.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { TINY_MODEL } from "./lib/model-file.mjs";

const { values } = benchArgs({
  options: {
    images: { type: "string", default: "5000" },
    distinct: { type: "string", default: "100" },
    size: { type: "string", default: "320x240" },
    "batch-size": { type: "string", default: "16" },
    json: { type: "boolean", default: false },
  },
});
const { width, height } = sizeFlag("size", values.size);
const inputs = {
  model: TINY_MODEL,
  images: countFlag("images", values.images, "images"),
  distinct: countFlag("distinct", values.distinct, "images"),
  width,
  height,
  batchSize: countFlag("batch-size", values["batch-size"], "images"),
  threads: availableParallelism(),
};
const checkpoints = [1000, 2000, 3000, 4000, 5000].filter((n) => n <= inputs.images);

const services = await startBenchServices(["soak-in", "soak-out"]);
Object.assign(process.env, services.env); // the S3 SDK reads credentials from the environment
const config = resolveConfig(services.env, {
  model: TINY_MODEL,
  provider: "cpu",
  batchSize: inputs.batchSize,
  intraOpThreads: inputs.threads,
  queueName: `soak-${process.pid}`,
});
const storage = Storage.fromConfig(config);
const redis = createRedisConnection(config.redisUrl, { name: "memscore-soak" });
let worker;
try {
  // Distinct photos, each stored under many keys: every key is fetched, scored and written.
  const photos = [];
  for (let i = 0; i < inputs.distinct; i++) photos.push(await photoJpeg(width, height, i));
  let next = 0;
  const upload = async () => {
    while (next < inputs.images) {
      const i = next++;
      const key = `soak/${String(i).padStart(6, "0")}.jpg`;
      await storage.put(parseS3Uri(`s3://soak-in/${key}`), photos[i % photos.length], {
        contentType: "image/jpeg",
      });
    }
  };
  await Promise.all(Array.from({ length: 16 }, upload));

  const samples = [];
  let done = 0;
  worker = await WorkerService.start(config, {
    logger: silentLogger,
    observe: (stage) => {
      if (stage !== "put") return;
      done++;
      if (checkpoints.includes(done))
        samples.push({ image: done, rssMiB: process.memoryUsage().rss / 2 ** 20 });
    },
  });
  const started = performance.now();
  await enqueueRun({
    storage,
    redis,
    queueName: config.queueName,
    runId: "soak",
    input: { prefix: "s3://soak-in/soak/" },
    outputPrefix: "s3://soak-out/soak/",
    chunkSize: 64,
  });
  const snapshot = await waitForRun(redis, config.queueName, "soak", { pollMs: 200 });
  const seconds = (performance.now() - started) / 1000;
  const at = (n) => samples.find((s) => s.image === n)?.rssMiB;
  const ratio = at(5000) !== undefined && at(1000) !== undefined ? at(5000) / at(1000) : undefined;
  const result = {
    benchmark: "soak-rss",
    inputs,
    machine: describeMachine(),
    scored: snapshot.imagesScored,
    failed: snapshot.imagesFailed,
    seconds,
    imagesPerSecond: inputs.images / seconds,
    samples,
    rss5000OverRss1000: ratio,
  };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`inputs: ${JSON.stringify(inputs)}`);
    printMachine(result.machine);
    console.log(
      `soak: ${result.scored} scored, ${result.failed} failed in ${seconds.toFixed(1)} s (${result.imagesPerSecond.toFixed(1)} images/s)`,
    );
    for (const s of samples)
      console.log(`  RSS after image ${String(s.image).padStart(5)}: ${s.rssMiB.toFixed(1)} MiB`);
    if (ratio !== undefined) console.log(`  RSS(5000) ÷ RSS(1000) = ${ratio.toFixed(3)}`);
  }
} finally {
  await worker?.stop({ graceful: true, timeoutMs: 10_000 });
  storage.close();
  await redis.quit();
  await services.stop();
}
