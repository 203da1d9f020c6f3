#!/usr/bin/env node
// Latency when the queue is shallow: one image at a time through the worker's inference path
// (InferenceEngine → dynamic batcher → model in its own thread), with a batch size far larger
// than the load, so every batch flushes on its delay. The claim checked: a single image
// completes within max-batch-delay-ms + one inference. Both terms are measured in this run.
//
//   node bench/shallow-latency.mjs [--model PATH] [--batch-size 16] [--max-batch-delay-ms 20] [--images 20] [--json]
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { InferenceEngine, ThreadedModelRuntime } from "@memscore/worker";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    "batch-size": { type: "string", default: "16" },
    "max-batch-delay-ms": { type: "string", default: "20" },
    images: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
  },
});
const model = values.model ?? ensureR50Model();
const batchSize = Number(values["batch-size"]);
const maxDelayMs = Number(values["max-batch-delay-ms"]);
const images = Number(values.images);

const runtime = await ThreadedModelRuntime.load(model, {
  provider: "cpu",
  intraOpThreads: availableParallelism(),
});
const tensor = () => new Float32Array(runtime.imageElements).fill(0.1);
try {
  // One inference of one image, alone: the "one inference" term.
  await runtime.run(tensor(), 1); // warm-up
  const inferenceMs = [];
  for (let i = 0; i < images; i++) {
    const t = performance.now();
    await runtime.run(tensor(), 1);
    inferenceMs.push(performance.now() - t);
  }
  // The same single images through the dynamic batcher, one at a time (a shallow queue).
  const engine = new InferenceEngine(runtime, { batchSize, maxBatchDelayMs: maxDelayMs });
  const latencyMs = [];
  for (let i = 0; i < images; i++) {
    const t = performance.now();
    await engine.infer(new Uint8Array(runtime.imageElements).fill(128));
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
  await runtime.close();
}
