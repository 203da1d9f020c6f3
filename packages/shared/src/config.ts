import { usableCores } from "./cpu-budget.js";
import { ConfigError } from "./errors.js";
import { HEATMAP_FORMATS, type HeatmapFormat } from "./heatmap-format.js";
import type { LogLevel } from "./logger.js";

/** Execution providers the worker can ask ONNX Runtime for; `auto` takes the first that initialises. */
export const EXECUTION_PROVIDERS = ["auto", "cpu", "cuda", "webgpu"] as const;
export type ExecutionProviderChoice = (typeof EXECUTION_PROVIDERS)[number];

/** `MEMSCORE_PAD_BATCHES`: see {@link MemscoreConfig.padBatches}. */
export const BATCH_PADDING = ["auto", "on", "off"] as const;
export type BatchPadding = (typeof BATCH_PADDING)[number];

/**
 * The one resolved, validated configuration of a memscore process. Internals only ever see this
 * type; it is built once by {@link resolveConfig} from environment variables and CLI flags.
 */
export interface MemscoreConfig {
  /** `REDIS_URL`. @defaultValue "redis://127.0.0.1:6379" */
  redisUrl: string;
  /** `MEMSCORE_QUEUE`: BullMQ queue name shared by producers and workers. @defaultValue "memscore" */
  queueName: string;
  /** `S3_ENDPOINT`: empty means AWS itself; set for S3-compatible servers. @defaultValue "" */
  s3Endpoint: string;
  /** `S3_FORCE_PATH_STYLE`. @defaultValue true when `S3_ENDPOINT` is set, else false */
  s3ForcePathStyle: boolean;
  /** `AWS_REGION`. @defaultValue "us-east-1" */
  awsRegion: string;
  /** `MEMSCORE_S3_REQUEST_TIMEOUT_MS`: an S3 request that receives nothing for this long is abandoned and retried. @defaultValue 60000 */
  s3RequestTimeoutMs: number;
  /** `MEMSCORE_ALLOWED_BUCKETS`: comma-separated; empty allows every bucket. @defaultValue [] */
  allowedBuckets: string[];
  /** `MEMSCORE_OUTPUT_BUCKET`: workers refuse jobs whose output prefix is in another bucket; empty allows any allowed bucket. @defaultValue "" */
  outputBucket: string;
  /** `MEMSCORE_REDIS_EVICTION_CHECK`: at start, warn about (or refuse) a Redis whose `maxmemory-policy` is not `noeviction`. @defaultValue "warn" */
  redisEvictionCheck: "warn" | "refuse" | "off";
  /** `MEMSCORE_MODEL`: local path or s3:// URI; empty means the bundled (untrained) model. @defaultValue "" */
  model: string;
  /** `MEMSCORE_MODEL_SHA256`: when set, the model file must have this sha256. @defaultValue "" */
  modelSha256: string;
  /** `MEMSCORE_PROVIDER`. @defaultValue "auto" */
  provider: ExecutionProviderChoice;
  /**
   * `MEMSCORE_CUDA_DEVICE_ID`: the GPU the `cuda` provider runs on, counted among the GPUs this
   * process sees (`CUDA_VISIBLE_DEVICES`; a Kubernetes pod sees only its own). It is the only CUDA
   * provider option onnxruntime-node 1.29 passes on: cuDNN's convolution search (exhaustive),
   * its workspace (the maximum) and TF32 stay at ONNX Runtime's defaults. @defaultValue 0
   */
  cudaDeviceId: number;
  /**
   * `MEMSCORE_INTRA_OP_THREADS`: ONNX Runtime threads per inference. @defaultValue the usable
   * cores: the container's CPU limit (cgroup quota, rounded down) when it has one, else the core count
   */
  intraOpThreads: number;
  /**
   * `MEMSCORE_ORT_THREAD_SPINNING`: let ONNX Runtime's pool threads busy-wait for work between
   * operators. Off, the cores they would burn go to decode, rendering and S3 I/O, which share
   * them with inference. @defaultValue false
   */
  ortThreadSpinning: boolean;
  /**
   * `MEMSCORE_DECODE_THREADS`: libvips threads per image operation (sharp.concurrency) for decode
   * and heatmap rendering. Images already run in parallel on libuv's pool (`UV_THREADPOOL_SIZE`),
   * so one thread each leaves the cores to inference. @defaultValue 1
   */
  decodeThreads: number;
  /**
   * `MEMSCORE_PIPELINE_THREADS`: threads that carry images through fetch, decode, render and
   * put, each with its own S3 client, so per-image work uses every core instead of the main
   * thread (which keeps only per-chunk work). @defaultValue the usable cores, as for
   * `intraOpThreads`
   */
  pipelineThreads: number;
  /**
   * `MEMSCORE_MAX_IMAGES_IN_FLIGHT`: images between fetch and put at once, across all chunks: the
   * bound on a worker's image memory. @defaultValue max(4 × batch size, 32)
   */
  maxImagesInFlight: number;
  /** `MEMSCORE_BATCH_SIZE`: images per inference. @defaultValue 16 */
  batchSize: number;
  /**
   * `MEMSCORE_PAD_BATCHES`: run each partial batch as the next power of two of rows (capped at
   * the batch size), so the model sees a handful of batch shapes instead of every size from 1 to
   * the batch size. The CUDA provider tunes cuDNN's convolutions for each new shape (about half
   * a second each), so unpadded, a dynamic batcher's ever-different sizes keep it tuning: `auto`
   * pads on every provider but `cpu`, and runs each shape once at start. `on`, `off`: always,
   * never. @defaultValue "auto"
   */
  padBatches: BatchPadding;
  /** `MEMSCORE_MAX_BATCH_DELAY_MS`: how long a partial batch waits for more images. @defaultValue 20 */
  maxBatchDelayMs: number;
  /**
   * `MEMSCORE_INFERENCE_TIMEOUT_MS`: a batch running longer means the engine is wedged (a GPU
   * fault, a hung native call): the worker hands its chunks back, takes no more, and fails
   * `/healthz` so it is restarted. @defaultValue 60000
   */
  inferenceTimeoutMs: number;
  /** `MEMSCORE_MODEL_LOAD_TIMEOUT_MS`: `/healthz` fails while a model load takes longer. @defaultValue 600000 */
  modelLoadTimeoutMs: number;
  /** `MEMSCORE_CONCURRENCY`: chunk jobs a worker processes at once. @defaultValue 4 */
  concurrency: number;
  /** `MEMSCORE_MAX_IMAGE_BYTES`: larger objects are refused before download. @defaultValue 52428800 (50 MiB) */
  maxImageBytes: number;
  /** `MEMSCORE_MAX_IMAGE_PIXELS`: width×height limit checked from the header, before decoding. @defaultValue 100000000 */
  maxImagePixels: number;
  /** `MEMSCORE_HEATMAP_MAX_SIDE`: long side of heatmap overlays, in pixels. @defaultValue 1024 */
  heatmapMaxSide: number;
  /**
   * `MEMSCORE_HEATMAP_FORMAT`: `jpeg`, `png` (lossless), `webp`, or `none` (scores only). Runs
   * record it: enqueue puts it in every chunk job, and workers follow the job. @defaultValue "jpeg"
   */
  heatmapFormat: HeatmapFormat;
  /** `MEMSCORE_HEATMAP_QUALITY`: JPEG and WebP quality, 1–100. @defaultValue 85 */
  heatmapQuality: number;
  /** `MEMSCORE_METRICS_HOST`: bind address of the metrics/health server. @defaultValue "127.0.0.1" */
  metricsHost: string;
  /** `MEMSCORE_METRICS_PORT`: 0 picks a free port. @defaultValue 9464 */
  metricsPort: number;
  /** `MEMSCORE_LOG_LEVEL`. @defaultValue "info" */
  logLevel: LogLevel;
  /** `MEMSCORE_LOG_FORMAT`. @defaultValue "json" */
  logFormat: "json" | "text";
}

/** Flag values as parsed by the CLI, keyed by config field; they win over the environment. */
export type ConfigOverrides = Partial<Record<keyof MemscoreConfig, string | number | boolean | string[]>>;

type Parser<T> = (raw: string, key: string) => T;

const text: Parser<string> = (raw) => raw.trim();

const integer =
  (min: number, max: number): Parser<number> =>
  (raw, key) => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(key, `expected an integer from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };

const boolean: Parser<boolean> = (raw, key) => {
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new ConfigError(key, `expected true or false, got "${raw}"`);
};

const oneOf =
  <T extends string>(choices: readonly T[]): Parser<T> =>
  (raw, key) => {
    const v = raw.trim() as T;
    if (!choices.includes(v))
      throw new ConfigError(key, `expected one of ${choices.join(", ")}, got "${raw}"`);
    return v;
  };

const bucketList: Parser<string[]> = (raw, key) => {
  const buckets = raw
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  for (const b of buckets) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b))
      throw new ConfigError(key, `"${b}" is not a valid bucket name`);
  }
  return buckets;
};

const redisUrl: Parser<string> = (raw, key) => {
  const value = raw.trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, "expected a URL such as redis://host:6379 or rediss://host:6380");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new ConfigError(key, `expected the redis:// or rediss:// scheme, got "${url.protocol}"`);
  }
  return value;
};

interface Field<T> {
  env: string;
  parse: Parser<T>;
  fallback: (partial: Partial<MemscoreConfig>) => T;
}

const FIELDS: { [K in keyof MemscoreConfig]: Field<MemscoreConfig[K]> } = {
  redisUrl: { env: "REDIS_URL", parse: redisUrl, fallback: () => "redis://127.0.0.1:6379" },
  queueName: {
    env: "MEMSCORE_QUEUE",
    parse: (raw, key) => {
      if (!/^[A-Za-z0-9_.-]{1,100}$/.test(raw))
        throw new ConfigError(key, "use letters, digits, '_', '.', '-'");
      return raw;
    },
    fallback: () => "memscore",
  },
  s3Endpoint: { env: "S3_ENDPOINT", parse: text, fallback: () => "" },
  s3ForcePathStyle: { env: "S3_FORCE_PATH_STYLE", parse: boolean, fallback: (c) => Boolean(c.s3Endpoint) },
  awsRegion: { env: "AWS_REGION", parse: text, fallback: () => "us-east-1" },
  s3RequestTimeoutMs: {
    env: "MEMSCORE_S3_REQUEST_TIMEOUT_MS",
    parse: integer(1, 3_600_000),
    fallback: () => 60_000,
  },
  allowedBuckets: { env: "MEMSCORE_ALLOWED_BUCKETS", parse: bucketList, fallback: () => [] },
  outputBucket: {
    env: "MEMSCORE_OUTPUT_BUCKET",
    parse: (raw, key) => {
      const buckets = bucketList(raw, key);
      if (buckets.length > 1) throw new ConfigError(key, "expected one bucket name");
      return buckets[0] ?? "";
    },
    fallback: () => "",
  },
  redisEvictionCheck: {
    env: "MEMSCORE_REDIS_EVICTION_CHECK",
    parse: oneOf(["warn", "refuse", "off"] as const),
    fallback: () => "warn",
  },
  model: { env: "MEMSCORE_MODEL", parse: text, fallback: () => "" },
  modelSha256: {
    env: "MEMSCORE_MODEL_SHA256",
    parse: (raw, key) => {
      const v = raw.trim().toLowerCase();
      if (v !== "" && !/^[0-9a-f]{64}$/.test(v)) throw new ConfigError(key, "expected 64 hex digits");
      return v;
    },
    fallback: () => "",
  },
  provider: { env: "MEMSCORE_PROVIDER", parse: oneOf(EXECUTION_PROVIDERS), fallback: () => "auto" },
  cudaDeviceId: { env: "MEMSCORE_CUDA_DEVICE_ID", parse: integer(0, 63), fallback: () => 0 },
  intraOpThreads: {
    env: "MEMSCORE_INTRA_OP_THREADS",
    parse: integer(1, 1024),
    fallback: () => usableCores(),
  },
  ortThreadSpinning: { env: "MEMSCORE_ORT_THREAD_SPINNING", parse: boolean, fallback: () => false },
  batchSize: { env: "MEMSCORE_BATCH_SIZE", parse: integer(1, 1024), fallback: () => 16 },
  padBatches: {
    env: "MEMSCORE_PAD_BATCHES",
    parse: oneOf(BATCH_PADDING),
    fallback: () => "auto",
  },
  decodeThreads: { env: "MEMSCORE_DECODE_THREADS", parse: integer(1, 1024), fallback: () => 1 },
  pipelineThreads: {
    env: "MEMSCORE_PIPELINE_THREADS",
    parse: integer(1, 256),
    fallback: () => usableCores(),
  },
  // After batchSize: the default reads it.
  maxImagesInFlight: {
    env: "MEMSCORE_MAX_IMAGES_IN_FLIGHT",
    parse: integer(1, 100_000),
    fallback: (c) => Math.max(4 * (c.batchSize ?? 16), 32),
  },
  maxBatchDelayMs: { env: "MEMSCORE_MAX_BATCH_DELAY_MS", parse: integer(0, 60_000), fallback: () => 20 },
  inferenceTimeoutMs: {
    env: "MEMSCORE_INFERENCE_TIMEOUT_MS",
    parse: integer(100, 24 * 3_600_000),
    fallback: () => 60_000,
  },
  modelLoadTimeoutMs: {
    env: "MEMSCORE_MODEL_LOAD_TIMEOUT_MS",
    parse: integer(1_000, 24 * 3_600_000),
    fallback: () => 600_000,
  },
  concurrency: { env: "MEMSCORE_CONCURRENCY", parse: integer(1, 256), fallback: () => 4 },
  maxImageBytes: {
    env: "MEMSCORE_MAX_IMAGE_BYTES",
    parse: integer(1, 2 ** 40),
    fallback: () => 50 * 1024 * 1024,
  },
  maxImagePixels: {
    env: "MEMSCORE_MAX_IMAGE_PIXELS",
    parse: integer(1, 2 ** 40),
    fallback: () => 100_000_000,
  },
  heatmapMaxSide: { env: "MEMSCORE_HEATMAP_MAX_SIDE", parse: integer(7, 16_384), fallback: () => 1024 },
  heatmapFormat: { env: "MEMSCORE_HEATMAP_FORMAT", parse: oneOf(HEATMAP_FORMATS), fallback: () => "jpeg" },
  heatmapQuality: { env: "MEMSCORE_HEATMAP_QUALITY", parse: integer(1, 100), fallback: () => 85 },
  metricsHost: { env: "MEMSCORE_METRICS_HOST", parse: text, fallback: () => "127.0.0.1" },
  metricsPort: { env: "MEMSCORE_METRICS_PORT", parse: integer(0, 65_535), fallback: () => 9464 },
  logLevel: {
    env: "MEMSCORE_LOG_LEVEL",
    parse: oneOf(["debug", "info", "warn", "error"] as const),
    fallback: () => "info",
  },
  logFormat: { env: "MEMSCORE_LOG_FORMAT", parse: oneOf(["json", "text"] as const), fallback: () => "json" },
};

/** The environment variable behind each config field (for help texts and error messages). */
export const CONFIG_ENV_NAMES: { readonly [K in keyof MemscoreConfig]: string } = Object.fromEntries(
  Object.entries(FIELDS).map(([k, f]) => [k, f.env]),
) as { [K in keyof MemscoreConfig]: string };

/**
 * Resolves the config: CLI overrides win over environment variables, which win over defaults.
 * Throws {@link ConfigError} naming the first bad key (the flag's field name or the variable).
 */
export function resolveConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: ConfigOverrides = {},
): MemscoreConfig {
  const resolved: Partial<MemscoreConfig> = {};
  // Order matters only for fallbacks that read earlier fields (s3ForcePathStyle reads s3Endpoint).
  for (const name of Object.keys(FIELDS) as (keyof MemscoreConfig)[]) {
    const field = FIELDS[name] as Field<unknown>;
    const override = overrides[name];
    let value: unknown;
    if (override !== undefined) {
      value = Array.isArray(override)
        ? field.parse(override.join(","), name)
        : field.parse(String(override), name);
    } else if (env[field.env] !== undefined && env[field.env] !== "") {
      value = field.parse(env[field.env] as string, field.env);
    } else {
      value = field.fallback(resolved);
    }
    (resolved as Record<string, unknown>)[name] = value;
  }
  return resolved as MemscoreConfig;
}
