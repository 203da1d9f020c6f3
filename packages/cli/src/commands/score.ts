import { createLogger } from "@memscore/shared";
import { BUNDLED_MODEL_PATH, isFailed, LocalScorer, listLocalImages } from "@memscore/worker";
import { parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore score <file-or-dir>... [options]

Scores local images with ResMem-Net, without any queue, through the worker's own pipeline.

options:
  --model PATH              ONNX model (default: MEMSCORE_MODEL, else the bundled untrained model)
  --heatmaps DIR            write a Grad-CAM overlay per image under DIR (<name>.heatmap.jpg, ...)
  --heatmap-format FORMAT   jpeg | png | webp (MEMSCORE_HEATMAP_FORMAT, default jpeg)
  --json                    one JSON object per line: file, score, gradcam (the model's G×G grid,
                            normalised to [0,1], rounded to 1e-6 as in S3 records), width, height,
                            model_sha256 — or file and error {reason, message}
  --provider NAME           auto | cpu | cuda | webgpu (default: MEMSCORE_PROVIDER, else auto)
  --cuda-device N           GPU of the cuda provider (default: MEMSCORE_CUDA_DEVICE_ID, else 0)
  --batch-size N            images per inference (default: MEMSCORE_BATCH_SIZE, else 16)
  --pad-batches auto|on|off partial batches run as 1, 2, 4, … rows (default: MEMSCORE_PAD_BATCHES,
                            else auto: on every provider but cpu)
  --threads N               ONNX Runtime intra-op threads (default: usable cores)
  --pipeline-threads N      threads reading, decoding and rendering (MEMSCORE_PIPELINE_THREADS,
                            default: usable cores, the container's CPU limit or the core count)

Exit code: 0 if at least one image was scored, 1 if every image failed, 2 on bad usage.`;

const FLAG_TO_CONFIG = {
  model: "model",
  provider: "provider",
  "cuda-device": "cudaDeviceId",
  "batch-size": "batchSize",
  "pad-batches": "padBatches",
  threads: "intraOpThreads",
  "pipeline-threads": "pipelineThreads",
  "heatmap-format": "heatmapFormat",
} as const;

export async function scoreCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      ...Object.fromEntries(Object.keys(FLAG_TO_CONFIG).map((f) => [f, { type: "string" as const }])),
      heatmaps: { type: "string" },
      json: { type: "boolean" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new UsageError(`no files or directories given`, HELP);

  const config = resolveCommandConfig(values, FLAG_TO_CONFIG);
  if (config.heatmapFormat === "none" && stringFlag(values, "heatmaps") !== undefined)
    throw new UsageError("--heatmaps DIR needs a heatmap format other than none");
  const logger = createLogger({
    level: config.logLevel === "info" ? "warn" : config.logLevel,
    format: "text",
  });
  const json = values.json === true;

  const files = await listLocalImages(positionals);
  if (files.length === 0) throw new UsageError("no image files found in the given directories");

  const scorer = await LocalScorer.start(config, config.model || BUNDLED_MODEL_PATH, logger);
  const info = scorer.model;
  if (!info.trained) {
    process.stderr.write(
      `warning: model ${info.name} ${info.version} is untrained (random weights): its scores are not memorability. See model/README.md.\n`,
    );
  }

  let scored = 0;
  let failed = 0;
  if (!json) process.stdout.write(`${"score".padStart(9)}  file\n`);
  try {
    const heatmapDir = stringFlag(values, "heatmaps");
    for await (const result of scorer.score(files, { ...(heatmapDir !== undefined && { heatmapDir }) })) {
      if (isFailed(result)) {
        failed++;
        if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else
          process.stdout.write(
            `${"error".padStart(9)}  ${result.file}  [${result.error.reason}] ${result.error.message}\n`,
          );
      } else {
        scored++;
        if (json) process.stdout.write(`${JSON.stringify({ ...result, model_sha256: info.sha256 })}\n`);
        else process.stdout.write(`${result.score.toFixed(6).padStart(9)}  ${result.file}\n`);
      }
    }
  } finally {
    await scorer.close();
  }
  if (!json)
    process.stdout.write(
      `\n${scored} scored, ${failed} failed — model ${info.name} ${info.version} (sha256 ${info.sha256.slice(0, 12)}…) on ${info.provider}\n`,
    );
  return scored === 0 ? 1 : 0;
}
