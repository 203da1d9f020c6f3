#!/usr/bin/env node
// The benchmark suite (`npm run bench`), one run, ratios side by side, on the same images and
// machine:
//   1. r50: raw model throughput (before and after the end-to-end runs, averaged, so a change in
//      machine load shows up instead of skewing a ratio); end to end with JPEG heatmaps and with
//      scores only (`none`); each ÷ raw, and ÷ a plain PyTorch loop that writes the same outputs
//      (bench/pytorch_loop.py: autograd Grad-CAM, overlay, JPEG and a record per image; or the
//      score only); where the worker's CPU went per image, by thread role; the projected host
//      ceiling of one worker on a 16-core node (16 cores ÷ CPU per image outside inference).
//   2. tiny model (inference nearly free): end to end with 2 pipeline threads ÷ 1, which tells
//      whether host work scales with cores, beside what perfect scaling would give on this
//      machine's cores once the S3 server and the rest of the worker have their share.
//
//   node bench/run-all.mjs [--images 96] [--size 640x480] [--threads N] [--batch-size B]
//                          [--tiny-images 400] [--warmup-images 128] [--no-pytorch]
//                          [--resmem RESMEM.onnx] [--json]
// With --resmem, ResMem's raw and end-to-end throughput are measured too (bench/resmem-vs-r50.mjs)
// and divided by r50's from this run.

// The SDK's notice about its own 2027 releases is not actionable here (the CLI silences it too);
// pipeline threads copy this environment when they start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { execFileSync } from "node:child_process";
import { BUNDLED_MODEL_PATH } from "@memscore/worker";
import { DEFAULT_WARMUP_IMAGES, measureEndToEnd, printEndToEnd } from "./end-to-end.mjs";
import { benchArgs, countFlag, countListFlag, positiveFlag, sizeFlag, threadsFlag } from "./lib/args.mjs";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";
import { ensureR50Model, REPO_ROOT, TORCH_PYTHON, torchAvailable } from "./lib/model-file.mjs";
import { measureRawThroughput, printRaw } from "./raw-model.mjs";
import { measureResmemVsR50, printResmemVsR50 } from "./resmem-vs-r50.mjs";

const { values } = benchArgs({
  options: {
    images: { type: "string", default: "96" },
    size: { type: "string", default: "640x480" },
    threads: { type: "string" },
    "batch-size": { type: "string" },
    "batch-sizes": { type: "string", default: "1,8,16" },
    "raw-seconds": { type: "string", default: "15" },
    "tiny-images": { type: "string", default: "400" },
    "warmup-images": { type: "string", default: String(DEFAULT_WARMUP_IMAGES) },
    "no-pytorch": { type: "boolean", default: false },
    resmem: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const threads = threadsFlag(values.threads);
const { width, height } = sizeFlag("size", values.size);
const model = ensureR50Model();
const inputs = {
  model,
  images: countFlag("images", values.images, "images"),
  width,
  height,
  threads,
  provider: "cpu",
  rawBatchSizes: countListFlag("batch-sizes", values["batch-sizes"], "images"),
  tinyImages: countFlag("tiny-images", values["tiny-images"], "images"),
  warmupImages: countFlag("warmup-images", values["warmup-images"], "images"),
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
  seconds: positiveFlag("raw-seconds", values["raw-seconds"], "seconds"),
};
const rawBefore = await measureRawThroughput(rawOptions);
if (!values.json) printRaw(rawBefore);
// The end-to-end runs use the raw benchmark's best batch size unless one is given.
const batchSize =
  values["batch-size"] === undefined
    ? rawBefore.best.batchSize
    : countFlag("batch-size", values["batch-size"], "images");
const { dir } = await benchImages(inputs.images, width, height);
const e2eOptions = {
  model,
  images: inputs.images,
  width,
  height,
  batchSize,
  threads,
  provider: "cpu",
  maxBatchDelayMs: 20,
  warmupImages: inputs.warmupImages,
};

say("\n== r50, JPEG heatmaps (the default) ==");
const jpeg = await measureEndToEnd({ ...e2eOptions, heatmapFormat: "jpeg" });
if (!values.json) printEndToEnd(jpeg);
say("\n== r50, scores only (--heatmap-format none) ==");
const scoresOnly = await measureEndToEnd({ ...e2eOptions, heatmapFormat: "none" });
if (!values.json) printEndToEnd(scoresOnly);

const rawAfter = await measureRawThroughput({ ...rawOptions, batchSizes: [batchSize] });
say(
  `\nraw model again after the end-to-end runs: batch ${batchSize} at ${rawAfter.best.imagesPerSecond.toFixed(2)} images/s`,
);
const rawAtBatch =
  rawBefore.results.find((r) => r.batchSize === batchSize)?.imagesPerSecond ?? rawBefore.best.imagesPerSecond;
const rawMean = (rawAtBatch + rawAfter.best.imagesPerSecond) / 2;

const pytorch = {};
if (!values["no-pytorch"] && torchAvailable()) {
  for (const outputs of ["heatmaps", "scores"]) {
    say(`pytorch loop (${outputs}) over the same ${inputs.images} files (${TORCH_PYTHON}) ...`);
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
        "--outputs",
        outputs,
        "--json",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    pytorch[outputs] = JSON.parse(out.trim().split("\n").at(-1));
    say(
      `  ${pytorch[outputs].per_file.images_per_second.toFixed(2)} images/s (torch ${pytorch[outputs].torch})`,
    );
  }
} else {
  say("pytorch loop: skipped (no torch at /usr/bin/python3, or --no-pytorch)");
}

say("\n== tiny model (inference nearly free): does host work scale with pipeline threads? ==");
const tinyOptions = {
  ...e2eOptions,
  model: BUNDLED_MODEL_PATH,
  images: inputs.tinyImages,
  batchSize: 16,
  heatmapFormat: "jpeg",
};
const tinyOne = await measureEndToEnd({ ...tinyOptions, pipelineThreads: 1 });
const tinyTwo = await measureEndToEnd({ ...tinyOptions, pipelineThreads: 2 });
/** CPU per image of the worker, the producer and the S3 server together. */
const allCpu = ({ cpuMsPerImage: c }) => c.workerProcess + c.producer + (c.s3Server ?? 0);
/** Share of the cores' time that the worker, the producer and the S3 server used during a run. */
const busyShare = (e) => allCpu(e) / e.cpuMsPerImage.available;
say(
  `  1 pipeline thread: ${tinyOne.imagesPerSecond.toFixed(1)} images/s; 2: ${tinyTwo.imagesPerSecond.toFixed(1)} images/s`,
);
// With one pipeline thread already using (nearly) every core, a second cannot add throughput;
// the worker's CPU per image with one and two says whether the host work itself grows with
// threads (contention) or would scale on more cores.
say(
  `  cores busy (worker + producer + S3 server): ${(100 * busyShare(tinyOne)).toFixed(1)}% with 1, ${(100 * busyShare(tinyTwo)).toFixed(1)}% with 2; ` +
    `worker CPU per image ${tinyOne.cpuMsPerImage.workerProcess.toFixed(1)} ms with 1, ${tinyTwo.cpuMsPerImage.workerProcess.toFixed(1)} ms with 2`,
);
// What a second thread can add here with perfect scaling: every core busy at the one-thread
// run's CPU per image, 1 ÷ (the share busy with one); a run slightly above it used less CPU per
// image with two. The S3 server's part of that CPU says how much of the bound is the stand-in
// for S3 (real S3 runs on other machines) rather than memscore.
const tinyPerfectScaling = 1 / busyShare(tinyOne);
const s3Share = (e) => (e.cpuMsPerImage.s3Server ?? 0) / allCpu(e);
say(
  `  2 ÷ 1 with perfect scaling on these ${machine.cores} cores: ${tinyPerfectScaling.toFixed(2)} (every core busy at the 1-thread run's CPU per image); ` +
    `the S3 server used ${(100 * s3Share(tinyOne)).toFixed(0)}% of that CPU (${(tinyOne.cpuMsPerImage.s3Server ?? 0).toFixed(1)} ms per image)`,
);

const outside = jpeg.cpuMsPerImage.outsideInference;
const ratios = {
  jpegOverRaw: jpeg.imagesPerSecond / rawMean,
  scoresOnlyOverRaw: scoresOnly.imagesPerSecond / rawMean,
  ...(pytorch.heatmaps && {
    jpegOverPytorchLoop: jpeg.imagesPerSecond / pytorch.heatmaps.per_file.images_per_second,
  }),
  ...(pytorch.scores && {
    scoresOnlyOverPytorchLoop: scoresOnly.imagesPerSecond / pytorch.scores.per_file.images_per_second,
    // The raw model ÷ the same loop: what memscore's ratio would be if it lost nothing outside
    // inference, so a low ratio on a day when onnxruntime's lead over PyTorch is small shows as such.
    rawOverPytorchScoresLoop: rawMean / pytorch.scores.per_file.images_per_second,
  }),
  tinyTwoPipelineThreadsOverOne: tinyTwo.imagesPerSecond / tinyOne.imagesPerSecond,
};
const projected16CoreHostCeiling = outside ? 16_000 / outside : null;

let resmem;
if (values.resmem) {
  resmem = await measureResmemVsR50({
    resmem: values.resmem,
    images: inputs.images,
    width,
    height,
    batchSize,
    threads,
    rawSeconds: rawOptions.seconds,
    r50Measured: { raw: rawMean, endToEnd: jpeg.imagesPerSecond },
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
        endToEnd: { jpeg, scoresOnly },
        pytorch,
        tiny: {
          onePipelineThread: tinyOne,
          twoPipelineThreads: tinyTwo,
          coresBusy: { onePipelineThread: busyShare(tinyOne), twoPipelineThreads: busyShare(tinyTwo) },
          twoOverOneWithPerfectScaling: tinyPerfectScaling,
          s3ServerShareOfCpu: { onePipelineThread: s3Share(tinyOne), twoPipelineThreads: s3Share(tinyTwo) },
        },
        resmem,
        ratios,
        projected16CoreHostCeiling,
      },
      null,
      2,
    ),
  );
} else {
  const f = (x, d = 3) => (x === undefined || x === null ? "n/a" : x.toFixed(d));
  const cpu = (e) => e.cpuMsPerImage.byThread;
  console.log("\nratios and figures (measured in this run):");
  console.log(`  raw model (batch ${batchSize}, mean of before/after): ${rawMean.toFixed(2)} images/s`);
  console.log(
    `  end to end, JPEG heatmaps: ${f(jpeg.imagesPerSecond, 2)} images/s; ÷ raw ${f(ratios.jpegOverRaw)}; ÷ PyTorch loop writing the same outputs ${f(ratios.jpegOverPytorchLoop, 2)}`,
  );
  console.log(
    `  end to end, scores only:   ${f(scoresOnly.imagesPerSecond, 2)} images/s; ÷ raw ${f(ratios.scoresOnlyOverRaw)}; ÷ PyTorch scores-only loop ${f(ratios.scoresOnlyOverPytorchLoop, 2)} (raw model ÷ that loop ${f(ratios.rawOverPytorchScoresLoop, 2)})`,
  );
  console.log(
    `  main JavaScript thread per image: ${f(cpu(jpeg).main, 2)} ms (JPEG), ${f(cpu(scoresOnly).main, 2)} ms (scores only)`,
  );
  console.log(
    `  worker CPU outside inference per image: ${f(outside, 1)} ms (JPEG), ${f(scoresOnly.cpuMsPerImage.outsideInference, 1)} ms (scores only); S3 server ${f(jpeg.cpuMsPerImage.s3Server, 1)} ms`,
  );
  console.log(
    `  projected host ceiling of one worker on 16 cores (JPEG): ${f(projected16CoreHostCeiling, 0)} images/s`,
  );
  console.log(
    `  tiny model, 2 pipeline threads ÷ 1: ${f(ratios.tinyTwoPipelineThreadsOverOne)} (cores ${f(100 * busyShare(tinyOne), 1)}% busy with 1 thread: perfect scaling gives ${f(tinyPerfectScaling, 2)} here)`,
  );
  console.log(
    `  mean batch fill: ${f(jpeg.meanBatchFill)}; engine busy ${f(100 * jpeg.engineBusyShare, 1)}% of the JPEG run`,
  );
  // On a shared VM the hypervisor can take part of the cores' time; figures from such a run are
  // slower than the machine is, and ratios against runs at other moments are not comparable.
  const stolen = (e) =>
    e.cpuMsPerImage.stolen == null ? null : (100 * e.cpuMsPerImage.stolen) / e.cpuMsPerImage.available;
  console.log(
    `  cores' time taken by the hypervisor for other guests: ${f(stolen(jpeg), 1)}% (JPEG run), ${f(stolen(scoresOnly), 1)}% (scores only)`,
  );
}
