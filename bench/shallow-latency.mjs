#!/usr/bin/env node
// Latency when the queue is shallow: one image at a time through the worker's inference path
// (a client's port → the inference thread's dynamic batcher → the model), with a batch size far
// larger than the load, so every batch flushes on its delay. The claim checked: a single image
// completes within max-batch-delay-ms + one inference. Both terms are measured in this run.
//
//   node bench/shallow-latency.mjs [--model PATH] [--batch-size 16] [--max-batch-delay-ms 20] [--images 20] [--json]
import { availableParallelism } from "node:os";
import { InferenceClient, InferenceEngine, ModelRuntime } from "@memscore/worker";
import { benchArgs, countFlag } from "./lib/args.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";

const { values } = benchArgs({
  options: {
    model: { type: "string" },
    "batch-size": { type: "string", default: "16" },
    "max-batch-delay-ms": { type: "string", default: "20" },
    images: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
  },
});
const model = values.model ?? ensureR50Model();
const batchSize = countFlag("batch-size", values["batch-size"], "images");
const maxDelayMs = countFlag("max-batch-delay-ms", values["max-batch-delay-ms"], "milliseconds", 0);
const images = countFlag("images", values.images, "images");

const threads = availableParallelism();
// One inference of one image, alone: the "one inference" term.
const runtime = await ModelRuntime.load(model, { provider: "cpu", intraOpThreads: threads });
const tensor = () => new Float32Array(runtime.imageElements).fill(0.1);
const inferenceMs = [];
try {
  await runtime.run(tensor(), 1); // warm-up
  for (let i = 0; i < images; i++) {
    const t = performance.now();
    await runtime.run(tensor(), 1);
    inferenceMs.push(performance.now() - t);
  }
} finally {
  await runtime.close();
}
// The same single images through the engine, one at a time (a shallow queue), from a client on
// this thread, as a pipeline thread sends them.
const engine = await InferenceEngine.start(model, {
  provider: "cpu",
  intraOpThreads: threads,
  batchSize,
  maxBatchDelayMs: maxDelayMs,
});
const client = new InferenceClient(engine.connect(), engine.imageElements);
try {
  await client.infer(tensor()); // warm-up
  const latencyMs = [];
  for (let i = 0; i < images; i++) {
    const t = performance.now();
    await client.infer(tensor());
    latencyMs.push(performance.now() - t);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const max = (xs) => Math.max(...xs);
  const bound = maxDelayMs + median(inferenceMs);
  const result = {
    inputs: { model, batchSize, maxDelayMs, images },
    machine: describeMachine(),
    inferenceMs: { median: median(inferenceMs), max: max(inferenceMs) },
    singleImageLatencyMs: { median: median(latencyMs), max: max(latencyMs) },
    boundMs: bound,
    latencyOverBound: median(latencyMs) / bound,
  };
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`inputs: ${JSON.stringify(result.inputs)}`);
    printMachine(result.machine);
    console.log(
      `one inference of one image: median ${result.inferenceMs.median.toFixed(1)} ms (max ${result.inferenceMs.max.toFixed(1)})`,
    );
    console.log(
      `one image through the batcher (batch ${batchSize}, delay ${maxDelayMs} ms): median ${result.singleImageLatencyMs.median.toFixed(1)} ms (max ${result.singleImageLatencyMs.max.toFixed(1)})`,
    );
    console.log(
      `ratio: median latency ÷ (max-batch-delay-ms + median inference) = ${result.latencyOverBound.toFixed(3)} (≤ 1 means within the bound)`,
    );
  }
} finally {
  client.close();
  await engine.close();
}
