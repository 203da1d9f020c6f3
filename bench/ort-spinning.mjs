#!/usr/bin/env node
// ONNX Runtime thread spinning, on and off: model throughput alone, and model throughput next to
// the worker's CPU work (heatmap renders on the main thread while the inference thread runs
// batches back to back, as in the worker). Spinning pool threads busy-wait between operators
// and after each run; on a machine where the cores are shared, that time is taken from the
// other work.
//
//   node bench/ort-spinning.mjs [--model PATH] [--threads N] [--batch-size 1] [--seconds 10] [--json]
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { renderHeatmap } from "@memscore/worker";
import sharp from "sharp";
import { ThreadedModelRuntime } from "../packages/worker/dist/threaded-model-runtime.js";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string" },
    "batch-size": { type: "string", default: "1" },
    seconds: { type: "string", default: "10" },
    json: { type: "boolean", default: false },
  },
});
const model = values.model ?? ensureR50Model();
const threads = Number(values.threads ?? availableParallelism());
const batchSize = Number(values["batch-size"]);
const seconds = Number(values.seconds);
sharp.concurrency(1);
const { dir, files } = await benchImages(16, 640, 480);
const bodies = await Promise.all(files.map((f) => readFile(join(dir, f))));
const cam = Float32Array.from({ length: 49 }, (_, i) => (i * 7919) % 13);

async function measure(threadSpinning, withRenders) {
  const runtime = await ThreadedModelRuntime.load(model, {
    provider: "cpu",
    intraOpThreads: threads,
    threadSpinning,
  });
  try {
    const elements = runtime.imageElements;
    const input = () => new Float32Array(batchSize * elements).fill(0.1);
    await runtime.run(input(), batchSize); // warm-up
    let stop = false;
    let images = 0;
    let renders = 0;
    const start = performance.now();
    const cpu = process.cpuUsage();
    const infer = (async () => {
      while (!stop) {
        await runtime.run(input(), batchSize);
        images += batchSize;
      }
    })();
    const render = withRenders
      ? (async () => {
          // Two renders in flight: libuv's pool runs the sharp parts, the main thread the JS.
          const one = async () => {
            while (!stop) {
              await renderHeatmap(bodies[renders % bodies.length], cam, 7, { maxPixels: 1e8 });
              renders++;
            }
          };
          await Promise.all([one(), one()]);
        })()
      : Promise.resolve();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    stop = true;
    await Promise.all([infer, render]);
    const elapsed = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    return {
      threadSpinning,
      withRenders,
      inferImagesPerSecond: images / elapsed,
      rendersPerSecond: renders / elapsed,
      cpuCoresUsed: (used.user + used.system) / 1e6 / elapsed,
    };
  } finally {
    await runtime.close();
  }
}

const results = [];
for (const withRenders of [false, true]) {
  for (const spin of [true, false]) results.push(await measure(spin, withRenders));
}
if (values.json) {
  console.log(JSON.stringify({ benchmark: "ort-spinning", machine: describeMachine(), results }, null, 2));
} else {
  console.log(`inputs: ${JSON.stringify({ model, threads, batchSize, seconds })}`);
  printMachine(describeMachine());
  for (const r of results) {
    console.log(
      `  spinning ${r.threadSpinning ? "on " : "off"}, ${r.withRenders ? "with heatmap renders" : "model alone         "}: ` +
        `${r.inferImagesPerSecond.toFixed(2)} inferences/s, ${r.rendersPerSecond.toFixed(2)} renders/s, ` +
        `${r.cpuCoresUsed.toFixed(2)} cores busy`,
    );
  }
}
