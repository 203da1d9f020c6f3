import { availableParallelism } from "node:os";
import {
  BUNDLED_MODEL_PATH,
  copySplitFiles,
  listLocalImages,
  PREPROCESS_MANIFEST,
  preprocessLocalFiles,
  readModelMetadata,
} from "@memscore/worker";
import { parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore preprocess <file-or-dir>... --out DIR [options]

Writes each image's exact model input — the worker's decode (EXIF orientation, colour profile to
sRGB, transparency over white, any depth or colour space to 8-bit sRGB) followed by the model's
resize geometry — as a lossless S×S RGB PNG without a colour profile: DIR/<name>.png, plus
DIR/${PREPROCESS_MANIFEST} naming the model and its geometry. model/train.py and
model/evaluate.py read these, so a model trains on the pixels the worker will score.

options:
  --out DIR             where to write (required)
  --model PATH          ONNX model whose geometry to use (default: MEMSCORE_MODEL, else the
                        bundled ResMem-Net model: 224×224, stretched, Lanczos 3)
  --splits DIR          also copy LaMem-style split files (DIR/*.txt, lines "<image> <score>")
                        to DIR/splits/ of the output, checking every image they name was written
  --json                one JSON object per line: file and output, or file and error {reason, message}

Exit code: 0 if every image was written (and every split image exists), 1 otherwise, 2 on bad usage.`;

export async function preprocessCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      out: { type: "string" },
      model: { type: "string" },
      splits: { type: "string" },
      json: { type: "boolean" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const outDir = stringFlag(values, "out");
  if (!outDir) throw new UsageError(`--out DIR is required`, HELP);
  if (positionals.length === 0) throw new UsageError(`no files or directories given`, HELP);

  const config = resolveCommandConfig(values, { model: "model" });
  const modelPath = config.model || BUNDLED_MODEL_PATH;
  if (modelPath.startsWith("s3://")) {
    throw new UsageError(`--model must be a local file for preprocess, got ${modelPath}`);
  }
  const json = values.json === true;
  const files = await listLocalImages(positionals);
  if (files.length === 0) throw new UsageError("no image files found in the given directories");
  const model = await readModelMetadata(modelPath);

  let written = 0;
  let failed = 0;
  for await (const result of preprocessLocalFiles(files, model, {
    outDir,
    maxImageBytes: config.maxImageBytes,
    maxImagePixels: config.maxImagePixels,
    concurrency: availableParallelism(),
  })) {
    const failedHere = "error" in result;
    if (failedHere) failed++;
    else written++;
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (failedHere)
      process.stdout.write(`error  ${result.file}  [${result.error.reason}] ${result.error.message}\n`);
  }
  const geometry =
    model.resize.kind === "stretch-crop"
      ? `stretched to ${model.resize.resizeSize}×${model.resize.resizeSize}, centre ${model.inputSize}×${model.inputSize}`
      : `stretched to ${model.inputSize}×${model.inputSize}`;
  process.stderr.write(
    `${written} written, ${failed} failed to ${outDir} — ${geometry} (${model.resizeKernel}) for model ${model.name} ${model.version} (sha256 ${model.sha256.slice(0, 12)}…)\n`,
  );

  let missing = 0;
  const splits = stringFlag(values, "splits");
  if (splits !== undefined) {
    const copied = await copySplitFiles(splits, outDir);
    missing = copied.missing.length;
    process.stderr.write(`${copied.files.length} split files copied to ${copied.dir}\n`);
    if (missing > 0) {
      const shown = copied.missing.slice(0, 5).join(", ");
      process.stderr.write(
        `error: ${missing} images named in the split files have no preprocessed PNG (${shown}${missing > 5 ? ", …" : ""})\n`,
      );
    }
  }
  return failed > 0 || missing > 0 ? 1 : 0;
}
