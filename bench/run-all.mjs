#!/usr/bin/env node
// The benchmark suite (`npm run bench`): raw model throughput, end-to-end throughput and the
// plain PyTorch loop on the same model, images and machine, with the ratios between them.
// Raw throughput is measured before and after the end-to-end run and averaged, so a change in
// machine load during the run shows up (both are printed) instead of skewing the ratio.
//
//   node bench/run-all.mjs [--images 128] [--size 640x480] [--threads N] [--batch-size B]
//                          [--no-pytorch] [--resmem RESMEM.onnx] [--json]
// With --resmem, ResMem's raw and end-to-end throughput are measured too (bench/resmem-vs-r50.mjs)
// and divided by r50's from this run.
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { measureEndToEnd, parseSize, printEndToEnd } from "./end-to-end.mjs";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model, REPO_ROOT, TORCH_PYTHON, torchAvailable } from "./lib/model-file.mjs";
import { measureRawThroughput, printRaw } from "./raw-model.mjs";
import { measureResmemVsR50, printResmemVsR50 } from "./resmem-vs-r50.mjs";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "128" },
    size: { type: "string", default: "640x480" },
    threads: { type: "string" },
    "batch-size": { type: "string" },
    "batch-sizes": { type: "string", default: "1,8,16" },
    "raw-seconds": { type: "string", default: "15" },
    "no-pytorch": { type: "boolean", default: false },
    resmem: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const threads = Number(values.threads ?? availableParallelism());
const { width, height } = parseSize(values.size);
const model = ensureR50Model();
const inputs = {
  model,
  images: Number(values.images),
  width,
  height,
  threads,
  provider: "cpu",
  rawBatchSizes: values["batch-sizes"].split(",").map(Number),
};
const machine = describeMachine();
const say = values.json ? () => {} : console.log;
say(`inputs: ${JSON.stringify(inputs)}`);
if (!values.json) printMachine(machine);

const rawOptions = {
  model,
  provider: "cpu",
  threads,
  batchSizes: inputs.rawBatchSizes,
  seconds: Number(values["raw-seconds"]),
};
const rawBefore = await measureRawThroughput(rawOptions);
if (!values.json) printRaw(rawBefore);
// The end-to-end run uses the raw benchmark's best batch size unless one is given.
const batchSize = Number(values["batch-size"] ?? rawBefore.best.batchSize);
const { dir } = await benchImages(inputs.images, width, height);
const e2e = await measureEndToEnd({
  model,
  images: inputs.images,
  width,
  height,
  batchSize,
  threads,
  provider: "cpu",
  maxBatchDelayMs: 20,
});
if (!values.json) printEndToEnd(e2e);
const rawAfter = await measureRawThroughput({ ...rawOptions, batchSizes: [batchSize] });
say(
  `raw model again after the end-to-end run: batch ${batchSize} at ${rawAfter.best.imagesPerSecond.toFixed(2)} images/s`,
);

const rawAtBatch =
  rawBefore.results.find((r) => r.batchSize === batchSize)?.imagesPerSecond ?? rawBefore.best.imagesPerSecond;
const rawMean = (rawAtBatch + rawAfter.best.imagesPerSecond) / 2;
const ratios = { endToEndOverRaw: e2e.imagesPerSecond / rawMean };

let pytorch;
if (!values["no-pytorch"] && torchAvailable()) {
  say(`pytorch loop over the same ${inputs.images} files (${TORCH_PYTHON}) ...`);
  const out = execFileSync(
    TORCH_PYTHON,
    [
      `${REPO_ROOT}/bench/pytorch_loop.py`,
      "--images",
      dir,
      "--variant",
      "r50",
      "--seed",
      "0",
      "--threads",
      String(threads),
      "--batch-size",
      String(batchSize),
      "--json",
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  pytorch = JSON.parse(out.trim().split("\n").at(-1));
  ratios.memscoreOverPytorchLoop = e2e.imagesPerSecond / pytorch.per_file.images_per_second;
  if (pytorch.batched)
    ratios.memscoreOverPytorchBatched = e2e.imagesPerSecond / pytorch.batched.images_per_second;
  say(
    `pytorch loop (torch ${pytorch.torch}, ${threads} threads): per file ${pytorch.per_file.images_per_second.toFixed(2)} images/s` +
      (pytorch.batched
        ? `, batched (${batchSize}) ${pytorch.batched.images_per_second.toFixed(2)} images/s`
        : ""),
  );
} else {
  say("pytorch loop: skipped (no torch at /usr/bin/python3, or --no-pytorch)");
}

let resmem;
if (values.resmem) {
  resmem = await measureResmemVsR50({
    resmem: values.resmem,
    images: inputs.images,
    width,
    height,
    batchSize,
    threads,
    rawSeconds: Number(values["raw-seconds"]),
    r50Measured: { raw: rawMean, endToEnd: e2e.imagesPerSecond },
  });
  ratios.resmemRawOverR50 = resmem.ratios.rawResmemOverR50;
  ratios.resmemEndToEndOverR50 = resmem.ratios.endToEndResmemOverR50;
  if (!values.json) printResmemVsR50(resmem, batchSize);
}

if (values.json) {
  console.log(
    JSON.stringify(
      {
        benchmark: "run-all",
        inputs: { ...inputs, batchSize },
        machine,
        raw: { before: rawBefore, after: rawAfter, meanAtBatch: rawMean },
        endToEnd: e2e,
        pytorch,
        resmem,
        ratios,
      },
      null,
      2,
    ),
  );
} else {
  console.log("ratios (measured in this run):");
  console.log(
    `  end-to-end ÷ raw model (batch ${batchSize}, mean of before/after): ${ratios.endToEndOverRaw.toFixed(3)}`,
  );
  if (ratios.memscoreOverPytorchLoop !== undefined) {
    console.log(
      `  memscore end-to-end ÷ PyTorch per-file loop: ${ratios.memscoreOverPytorchLoop.toFixed(2)}`,
    );
  }
  if (ratios.memscoreOverPytorchBatched !== undefined) {
    console.log(
      `  memscore end-to-end ÷ PyTorch batched loop: ${ratios.memscoreOverPytorchBatched.toFixed(2)}`,
    );
  }
  console.log(
    `  mean batch fill: ${e2e.meanBatchFill.toFixed(3)}; engine busy ${(100 * e2e.engineBusyShare).toFixed(1)}% of the end-to-end run`,
  );
}
