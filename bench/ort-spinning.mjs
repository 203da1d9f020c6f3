#!/usr/bin/env node
// ONNX Runtime thread spinning, on and off: model throughput alone, and model throughput next to
// the worker's CPU work (decodes and heatmap renders beside the inference thread, which runs
// batches back to back, as in the worker). Spinning pool threads busy-wait between operators
// and after each run; on a machine where the cores are shared, that time is taken from the
// other work.
//
//   node bench/ort-spinning.mjs [--model PATH] [--threads N] [--batch-size 1] [--seconds 10] [--json]
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeImage, InferenceClient, InferenceEngine, renderHeatmap } from "@memscore/worker";
import sharp from "sharp";
import { benchArgs, countFlag, positiveFlag, threadsFlag } from "./lib/args.mjs";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";

const { values } = benchArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string" },
    "batch-size": { type: "string", default: "1" },
    seconds: { type: "string", default: "10" },
    json: { type: "boolean", default: false },
  },
});
const model = values.model ?? ensureR50Model();
const threads = threadsFlag(values.threads);
const batchSize = countFlag("batch-size", values["batch-size"], "images");
const seconds = positiveFlag("seconds", values.seconds, "seconds");
sharp.concurrency(1);
const { dir, files } = await benchImages(16, 640, 480);
const bodies = await Promise.all(files.map((f) => readFile(join(dir, f))));
const cam = Float32Array.from({ length: 49 }, (_, i) => (i * 7919) % 13);

async function measure(threadSpinning, withRenders) {
  const engine = await InferenceEngine.start(model, {
    provider: "cpu",
    intraOpThreads: threads,
    threadSpinning,
    batchSize,
    maxBatchDelayMs: 0,
  });
  const client = new InferenceClient(engine.connect(), engine.imageElements);
  try {
    const elements = engine.imageElements;
    // A batch's worth of images in flight, so the engine runs full batches back to back.
    const batch = () =>
      Promise.all(
        Array.from({ length: batchSize }, () => client.infer(new Float32Array(elements).fill(0.1))),
      );
    await batch(); // warm-up
    let stop = false;
    let images = 0;
    let renders = 0;
    const start = performance.now();
    const cpu = process.cpuUsage();
    const infer = (async () => {
      while (!stop) {
        await batch();
        images += batchSize;
      }
    })();
    const render = withRenders
      ? (async () => {
          // Two renders in flight: libuv's pool runs the sharp parts, this thread the overlay.
          const one = async () => {
            while (!stop) {
              const image = await decodeImage(bodies[renders % bodies.length], 1024, { maxPixels: 1e8 });
              await renderHeatmap(image, cam, 7, { format: "jpeg" });
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
    client.close();
    await engine.close();
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
