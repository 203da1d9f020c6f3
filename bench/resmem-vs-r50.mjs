#!/usr/bin/env node
// ResMem (an imported model: ResNet-152 + a conv branch + MLP, 227 px) against ResMem-Net r50
// (224 px), on the same machine, images and settings: raw model throughput and end-to-end
// throughput of each, and ResMem's ÷ r50's. The two are measured alternately (raw r50, raw
// ResMem, end-to-end r50, end-to-end ResMem), so a change in machine load shows in both.
// Bring a ResMem ONNX file (`memscore model import resmem`; random weights in the published
// layout do for speed: model/resmem_test_weights.py, then import with --untrained).
//
//   node bench/resmem-vs-r50.mjs --resmem PATH [--r50 PATH] [--images 48] [--size 640x480]
//                                [--batch-size 8] [--threads N] [--raw-seconds 15] [--json]
import { measureEndToEnd } from "./end-to-end.mjs";
import { benchArgs, countFlag, positiveFlag, sizeFlag, threadsFlag, usageError } from "./lib/args.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model } from "./lib/model-file.mjs";
import { measureRawThroughput } from "./raw-model.mjs";

/**
 * Raw and end-to-end images/s of both models at one batch size, and ResMem ÷ r50 for each.
 * `r50Measured` ({ raw, endToEnd } in images/s, e.g. from run-all.mjs's own runs) skips
 * measuring r50 again.
 */
export async function measureResmemVsR50({
  resmem,
  r50,
  images,
  width,
  height,
  batchSize,
  threads,
  rawSeconds,
  r50Measured,
}) {
  const raw = async (model) =>
    (
      await measureRawThroughput({
        model,
        provider: "cpu",
        threads,
        batchSizes: [batchSize],
        seconds: rawSeconds,
      })
    ).best.imagesPerSecond;
  const e2e = async (model) =>
    (
      await measureEndToEnd({
        model,
        images,
        width,
        height,
        batchSize,
        threads,
        provider: "cpu",
        maxBatchDelayMs: 20,
      })
    ).imagesPerSecond;
  const rawR50 = r50Measured?.raw ?? (await raw(r50));
  const rawResmem = await raw(resmem);
  const e2eR50 = r50Measured?.endToEnd ?? (await e2e(r50));
  const e2eResmem = await e2e(resmem);
  return {
    raw: { r50: rawR50, resmem: rawResmem },
    endToEnd: { r50: e2eR50, resmem: e2eResmem },
    ratios: {
      rawResmemOverR50: rawResmem / rawR50,
      endToEndResmemOverR50: e2eResmem / e2eR50,
      resmemEndToEndOverRaw: e2eResmem / rawResmem,
      r50EndToEndOverRaw: e2eR50 / rawR50,
    },
  };
}

export function printResmemVsR50(result, batchSize) {
  const { raw, endToEnd, ratios } = result;
  console.log(`ResMem vs ResMem-Net r50 (batch ${batchSize}, both measured in this run):`);
  console.log(`  raw model:  r50 ${raw.r50.toFixed(2)} images/s, ResMem ${raw.resmem.toFixed(2)} images/s`);
  console.log(
    `  end to end: r50 ${endToEnd.r50.toFixed(2)} images/s, ResMem ${endToEnd.resmem.toFixed(2)} images/s`,
  );
  console.log(
    `  ResMem ÷ r50: raw ${ratios.rawResmemOverR50.toFixed(3)}, end to end ${ratios.endToEndResmemOverR50.toFixed(3)}`,
  );
  console.log(
    `  end to end ÷ raw: r50 ${ratios.r50EndToEndOverRaw.toFixed(3)}, ResMem ${ratios.resmemEndToEndOverRaw.toFixed(3)}`,
  );
}

async function main() {
  const { values } = benchArgs({
    options: {
      resmem: { type: "string" },
      r50: { type: "string" },
      images: { type: "string", default: "48" },
      size: { type: "string", default: "640x480" },
      "batch-size": { type: "string", default: "8" },
      threads: { type: "string" },
      "raw-seconds": { type: "string", default: "15" },
      json: { type: "boolean", default: false },
    },
  });
  if (!values.resmem) usageError("--resmem PATH is required");
  const inputs = {
    resmem: values.resmem,
    r50: values.r50 ?? ensureR50Model(),
    images: countFlag("images", values.images, "images"),
    ...sizeFlag("size", values.size),
    batchSize: countFlag("batch-size", values["batch-size"], "images"),
    threads: threadsFlag(values.threads),
    rawSeconds: positiveFlag("raw-seconds", values["raw-seconds"], "seconds"),
  };
  const machine = describeMachine();
  const result = await measureResmemVsR50(inputs);
  if (values.json) {
    console.log(JSON.stringify({ benchmark: "resmem-vs-r50", inputs, machine, ...result }, null, 2));
    return;
  }
  console.log(`inputs: ${JSON.stringify(inputs)}`);
  printMachine(machine);
  printResmemVsR50(result, inputs.batchSize);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
