import { createLogger, resolveConfig } from "@memscore/shared";
import {
  BUNDLED_MODEL_PATH,
  isFailed,
  listLocalImages,
  ModelRuntime,
  scoreLocalFiles,
} from "@memscore/worker";
import { parseCommandArgs, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore score <file-or-dir>... [options]

Scores local images with ResMem-Net, without any queue.

options:
  --model PATH          ONNX model (default: MEMSCORE_MODEL, else the bundled untrained model)
  --heatmaps DIR        write a Grad-CAM overlay PNG per image under DIR
  --json                one JSON object per line: file, score, gradcam (the model's G×G grid, normalised to [0,1]),
                        width, height, model_sha256 — or file and error {reason, message}
  --provider NAME       auto | cpu | cuda | webgpu (default: MEMSCORE_PROVIDER, else auto)
  --batch-size N        images per inference (default: MEMSCORE_BATCH_SIZE, else 16)
  --threads N           ONNX Runtime intra-op threads (default: the core count)

Exit code: 0 if at least one image was scored, 1 if every image failed, 2 on bad usage.`;

export async function scoreCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      model: { type: "string" },
      heatmaps: { type: "string" },
      json: { type: "boolean" },
      provider: { type: "string" },
      "batch-size": { type: "string" },
      threads: { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new UsageError(`no files or directories given\n\n${HELP}`);

  const config = resolveConfig(process.env, {
    ...(stringFlag(values, "model") !== undefined && { model: stringFlag(values, "model") }),
    ...(stringFlag(values, "provider") !== undefined && { provider: stringFlag(values, "provider") }),
    ...(stringFlag(values, "batch-size") !== undefined && { batchSize: stringFlag(values, "batch-size") }),
    ...(stringFlag(values, "threads") !== undefined && { intraOpThreads: stringFlag(values, "threads") }),
  });
  const logger = createLogger({
    level: config.logLevel === "info" ? "warn" : config.logLevel,
    format: "text",
  });
  const json = values.json === true;

  const files = await listLocalImages(positionals);
  if (files.length === 0) throw new UsageError("no image files found in the given directories");

  const runtime = await ModelRuntime.load(config.model || BUNDLED_MODEL_PATH, {
    provider: config.provider,
    intraOpThreads: config.intraOpThreads,
    logger,
  });
  const { info } = runtime;
  if (!info.trained) {
    process.stderr.write(
      `warning: model ${info.name} ${info.version} is untrained (random weights): its scores are not memorability. See model/README.md.\n`,
    );
  }

  let scored = 0;
  let failed = 0;
  if (!json) process.stdout.write(`${"score".padStart(9)}  file\n`);
  try {
    for await (const result of scoreLocalFiles(files, runtime, {
      batchSize: config.batchSize,
      maxImageBytes: config.maxImageBytes,
      maxImagePixels: config.maxImagePixels,
      heatmapMaxSide: config.heatmapMaxSide,
      ...(stringFlag(values, "heatmaps") !== undefined && { heatmapDir: stringFlag(values, "heatmaps") }),
    })) {
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
    await runtime.close();
  }
  if (!json)
    process.stdout.write(
      `\n${scored} scored, ${failed} failed — model ${info.name} ${info.version} (sha256 ${info.sha256.slice(0, 12)}…) on ${info.provider}\n`,
    );
  return scored === 0 ? 1 : 0;
}
