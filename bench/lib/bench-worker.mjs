// A worker process for the end-to-end benchmark: the product's WorkerService, configured from the
// environment as `memscore worker` is, in a process of its own, so its CPU (by thread, from
// /proc) is the worker's alone and not the benchmark's producer and S3 client. It answers the
// parent over IPC: its thread roles once started, then its stage totals and engine counters.
//
//   fork("bench/lib/bench-worker.mjs", { env }) → { type: "ready", known, pid }
//   send({ type: "stats" }) → { type: "stats", stages, engine }; send({ type: "reset" }); send({ type: "stop" })
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { resolveConfig, silentLogger } from "@memscore/shared";
import { jpegCodecProblem, StageTotals, WorkerService } from "@memscore/worker";
import { libuvPoolThreads, newThreads, threadTimes } from "./thread-cpu.mjs";

const config = resolveConfig(process.env);
let totals = new StageTotals();
const before = threadTimes();
const worker = await WorkerService.start(config, {
  logger: silentLogger,
  observe: (stage, seconds) => totals.observe(stage, seconds),
});
const started = newThreads(before, threadTimes());
const libuv = await libuvPoolThreads();
const pipeline = new Set(worker.threadIds.pipeline);
// Threads that appeared while the worker started and are none of the others: the inference
// thread and ONNX Runtime's pool.
const model = [...started].filter((tid) => !pipeline.has(tid) && !libuv.has(tid));
process.send({
  type: "ready",
  pid: process.pid,
  provider: worker.model.provider,
  pipelineThreads: config.pipelineThreads,
  // The worker logs this at start; the bench's worker is silent, so its result says it.
  jpegCodec: jpegCodecProblem ? `sharp (${jpegCodecProblem})` : "native (libjpeg-turbo)",
  known: { model, libuv: [...libuv], pipeline: [...pipeline] },
});

process.on("message", async (message) => {
  if (message.type === "reset") {
    totals = new StageTotals();
    process.send({ type: "reset" });
  } else if (message.type === "stats") {
    process.send({
      type: "stats",
      stages: { seconds: totals.seconds, counts: totals.counts },
      engine: worker.engine.stats,
    });
  } else if (message.type === "stop") {
    await worker.stop({ graceful: true, timeoutMs: 10_000 });
    process.exit(0);
  }
});
