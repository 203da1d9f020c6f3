import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Logger, type MemscoreConfig, MemscoreError, parseS3Uri, type Storage } from "@memscore/shared";
import { BUNDLED_MODEL_PATH } from "./bundled-model.js";

/** Largest model file downloaded from S3 (ResMem-Net r50 is ~100 MB). */
const MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024;

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Finds the model file to load: a local path, an s3:// URI (downloaded once into a cache
 * directory, named by its sha256), or — with none configured — the bundled untrained model.
 * When `MEMSCORE_MODEL_SHA256` is set the file must match it, so a fleet cannot silently run a
 * model other than the one the operator pinned.
 */
export async function resolveModelFile(
  config: Pick<MemscoreConfig, "model" | "modelSha256">,
  storage: Storage | undefined,
  logger: Logger,
  cacheDir = join(tmpdir(), "memscore-models"),
): Promise<string> {
  const verify = (bytes: Uint8Array, where: string) => {
    if (config.modelSha256 && sha256(bytes) !== config.modelSha256) {
      throw new MemscoreError(
        "model_sha256_mismatch",
        `model ${where} has sha256 ${sha256(bytes)}, expected MEMSCORE_MODEL_SHA256=${config.modelSha256}`,
      );
    }
  };
  if (!config.model) {
    logger.warn(
      "no MEMSCORE_MODEL configured: using the bundled untrained model; its scores are not memorability",
      {
        path: BUNDLED_MODEL_PATH,
      },
    );
    if (config.modelSha256) verify(await readFile(BUNDLED_MODEL_PATH), BUNDLED_MODEL_PATH);
    return BUNDLED_MODEL_PATH;
  }
  if (!config.model.startsWith("s3://")) {
    if (config.modelSha256) verify(await readFile(config.model), config.model);
    return config.model;
  }
  if (!storage) throw new MemscoreError("model_source", "an s3:// model needs S3 access");
  const location = parseS3Uri(config.model);
  await mkdir(cacheDir, { recursive: true });
  if (config.modelSha256) {
    const cached = join(cacheDir, `${config.modelSha256}.onnx`);
    const bytes = await readFile(cached).catch(() => undefined);
    if (bytes && sha256(bytes) === config.modelSha256) return cached;
  }
  logger.info("downloading model", { uri: config.model });
  const { body } = await storage.get(location, MAX_MODEL_BYTES);
  verify(body, config.model);
  const target = join(cacheDir, `${sha256(body)}.onnx`);
  // Write then rename: a concurrent worker on the same node never reads a half-written file.
  const partial = `${target}.${process.pid}.partial`;
  await writeFile(partial, body);
  await rename(partial, target);
  return target;
}
