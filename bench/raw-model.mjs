#!/usr/bin/env node
// Raw model throughput: pre-decoded tensors straight into ModelRuntime.run (the worker's own
// inference path, output copies included), over a sweep of batch sizes. Nothing else runs, so
// this is the ceiling the end-to-end pipeline is measured against.
//
//   node bench/raw-model.mjs [--model PATH] [--provider cpu|cuda|webgpu|auto] [--threads N]
//                            [--batch-sizes 1,4,8,16,32] [--seconds 30] [--json]
// --seconds: the whole sweep's time, shared equally by the batch sizes.
import { EXECUTION_PROVIDERS } from "@memscore/shared";
import { ModelRuntime } from "@memscore/worker";
import { benchArgs, choiceFlag, countListFlag, positiveFlag, threadsFlag } from "./lib/args.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";

/**
 * Measures images/s at each batch size, and whether session.run blocks the event loop (the
 * longest gap between 2 ms timer ticks while a batch runs, against the batch's duration).
 */
export async function measureRawThroughput({ model, provider, threads, batchSizes, seconds }) {
  const runtime = await ModelRuntime.load(model, { provider, intraOpThreads: threads });
  try {
    const elements = runtime.imageElements;
    const results = [];
    for (const batchSize of batchSizes) {
      // Deterministic values in [-1, 1], like a normalised image; compute does not depend on them.
      const input = new Float32Array(batchSize * elements);
      let s = 12345;
      for (let i = 0; i < input.length; i++) {
        s = (s * 1103515245 + 12345) >>> 0;
        input[i] = (s >>> 8) / 2 ** 23 - 1;
      }
      await runtime.run(input, batchSize); // warm-up: first runs allocate and plan
      let runs = 0;
      let maxTimerGapMs = 0;
      let lastTick = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        maxTimerGapMs = Math.max(maxTimerGapMs, now - lastTick);
        lastTick = now;
      }, 2);
      const start = performance.now();
      const cpuBefore = process.cpuUsage();
      let longestRunMs = 0;
      // At least 3 batches, then until the time budget is spent.
      while (runs < 3 || performance.now() - start < (seconds * 1000) / batchSizes.length) {
        const t = performance.now();
        await runtime.run(input, batchSize);
        longestRunMs = Math.max(longestRunMs, performance.now() - t);
        runs++;
      }
      const elapsed = (performance.now() - start) / 1000;
      // This process's CPU: ONNX Runtime's threads, nearly all of it. On the CPU provider, how
      // busy the model alone keeps the cores, so an end-to-end run's idle time can be told apart
      // from the model's own.
      const cpu = process.cpuUsage(cpuBefore);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      clearInterval(ticker);
      results.push({
        batchSize,
        batches: runs,
        imagesPerSecond: (runs * batchSize) / elapsed,
        msPerBatch: (elapsed * 1000) / runs,
        maxEventLoopGapMs: maxTimerGapMs,
        longestBatchMs: longestRunMs,
        cpuMsPerImage: cpuMs / (runs * batchSize),
        coresBusy: cpuMs / 1000 / elapsed,
      });
    }
    const best = results.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
    return {
      provider: runtime.info.provider,
      model: runtime.info.name,
      sha256: runtime.info.sha256,
      results,
      best,
    };
  } finally {
    await runtime.close();
  }
}

export function printRaw(raw) {
  console.log(`raw model: ${raw.model} on ${raw.provider}`);
  for (const r of raw.results) {
    console.log(
      `  batch ${String(r.batchSize).padStart(3)}: ${r.imagesPerSecond.toFixed(2).padStart(8)} images/s ` +
        `(${r.msPerBatch.toFixed(1)} ms/batch, ${r.batches} batches; longest event-loop gap ` +
        `${r.maxEventLoopGapMs.toFixed(1)} ms vs longest batch ${r.longestBatchMs.toFixed(1)} ms; ` +
        `${r.cpuMsPerImage.toFixed(1)} CPU-ms per image, ${r.coresBusy.toFixed(2)} cores busy)`,
    );
  }
  console.log(`  best: batch ${raw.best.batchSize} at ${raw.best.imagesPerSecond.toFixed(2)} images/s`);
}

async function main() {
  const { values } = benchArgs({
    options: {
      model: { type: "string" },
      provider: { type: "string", default: "cpu" },
      threads: { type: "string" },
      "batch-sizes": { type: "string", default: "1,4,8,16,32" },
      seconds: { type: "string", default: "30" },
      json: { type: "boolean", default: false },
    },
  });
  const inputs = {
    model: values.model ?? ensureR50Model(),
    provider: choiceFlag("provider", values.provider, EXECUTION_PROVIDERS),
    threads: threadsFlag(values.threads),
    batchSizes: countListFlag("batch-sizes", values["batch-sizes"], "images"),
    seconds: positiveFlag("seconds", values.seconds, "seconds"),
  };
  const machine = describeMachine();
  const raw = await measureRawThroughput(inputs);
  if (values.json) {
    console.log(JSON.stringify({ benchmark: "raw-model", inputs, machine, ...raw }, null, 2));
    return;
  }
  console.log(`inputs: ${JSON.stringify(inputs)}`);
  printMachine(machine);
  printRaw(raw);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
