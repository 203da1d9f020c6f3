import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { ConfigError, describeError, type MemscoreConfig, parseS3Uri, type Storage } from "@memscore/shared";
import { BUNDLED_MODEL_PATH } from "@memscore/worker";

/** Largest model file downloaded to hash it. */
const MAX_MODEL_BYTES = 4 * 1024 ** 3;

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * The sha256 of the model the workers run: given, or hashed from the local file, or (only when
 * --skip-existing needs it) downloaded from S3. Empty when unknown and not needed.
 */
export async function resolveModelSha256(
  config: MemscoreConfig,
  storage: Storage,
  needed: boolean,
): Promise<string> {
  if (config.modelSha256) return config.modelSha256;
  const model = config.model || BUNDLED_MODEL_PATH;
  if (!model.startsWith("s3://")) {
    try {
      return await sha256OfFile(model);
    } catch (error) {
      throw new ConfigError("model", `cannot read ${model}: ${describeError(error)}`);
    }
  }
  if (!needed) return "";
  const { body } = await storage.get(parseS3Uri(model), MAX_MODEL_BYTES);
  return createHash("sha256").update(body).digest("hex");
}

/**
 * For a long-running producer: resolves the model's sha256 on every call, so a model replaced
 * between scans is noticed (and its images rescored). An S3 model is downloaded again only
 * when its ETag changed.
 */
export function modelSha256Resolver(config: MemscoreConfig, storage: Storage): () => Promise<string> {
  const model = config.model || BUNDLED_MODEL_PATH;
  if (config.modelSha256 || !model.startsWith("s3://"))
    return () => resolveModelSha256(config, storage, true);
  let cached: { etag: string; sha256: string } | undefined;
  return async () => {
    const location = parseS3Uri(model);
    const head = await storage.head(location);
    if (!head) throw new ConfigError("model", `${model} does not exist`);
    if (cached?.etag !== head.etag || head.etag === "") {
      const { body, etag } = await storage.get(location, MAX_MODEL_BYTES);
      cached = { etag, sha256: createHash("sha256").update(body).digest("hex") };
    }
    return cached.sha256;
  };
}
