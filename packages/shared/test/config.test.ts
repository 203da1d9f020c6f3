import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { usableCores } from "../src/cpu-budget.js";
import { CONFIG_ENV_NAMES, ConfigError, type MemscoreConfig, resolveConfig } from "../src/index.js";

type Field = keyof MemscoreConfig;

/**
 * Every variable: a good value and what it resolves to, and a bad value with what the error says
 * about it (undefined for free text, which cannot be bad).
 */
const CASES: { [K in Field]: { good: string; parsed: MemscoreConfig[K]; bad?: [string, RegExp] } } = {
  redisUrl: {
    good: "rediss://:pw@redis.internal:6380",
    parsed: "rediss://:pw@redis.internal:6380",
    bad: ["http://redis:6379", /expected the redis:\/\/ or rediss:\/\/ scheme, got "http:"/],
  },
  queueName: { good: "scores.v2_a-b", parsed: "scores.v2_a-b", bad: ["my queue", /letters, digits/] },
  s3Endpoint: { good: " http://minio:9000 ", parsed: "http://minio:9000" },
  s3ForcePathStyle: { good: "no", parsed: false, bad: ["maybe", /expected true or false, got "maybe"/] },
  awsRegion: { good: "eu-west-3", parsed: "eu-west-3" },
  s3RequestTimeoutMs: { good: "1500", parsed: 1500, bad: ["0", /integer from 1 to 3600000, got "0"/] },
  allowedBuckets: {
    good: "in-a, out-b,,",
    parsed: ["in-a", "out-b"],
    bad: ["in-a,Bad_Bucket", /"Bad_Bucket" is not a valid bucket name/],
  },
  outputBucket: { good: "out-b", parsed: "out-b", bad: ["out-a,out-b", /expected one bucket name/] },
  redisEvictionCheck: {
    good: "refuse",
    parsed: "refuse",
    bad: ["strict", /expected one of warn, refuse, off, got "strict"/],
  },
  model: { good: "s3://models/r50.onnx", parsed: "s3://models/r50.onnx" },
  modelSha256: { good: "AB".repeat(32), parsed: "ab".repeat(32), bad: ["abc123", /expected 64 hex digits/] },
  provider: {
    good: "cuda",
    parsed: "cuda",
    bad: ["tpu", /expected one of auto, cpu, cuda, webgpu, got "tpu"/],
  },
  intraOpThreads: { good: "3", parsed: 3, bad: ["2.5", /integer from 1 to 1024, got "2.5"/] },
  ortThreadSpinning: { good: "on", parsed: true, bad: ["sometimes", /expected true or false/] },
  batchSize: { good: "32", parsed: 32, bad: ["abc", /integer from 1 to 1024, got "abc"/] },
  padBatches: { good: "on", parsed: "on", bad: ["yes", /expected one of auto, on, off, got "yes"/] },
  decodeThreads: { good: "2", parsed: 2, bad: ["0", /integer from 1 to 1024, got "0"/] },
  pipelineThreads: { good: "3", parsed: 3, bad: ["0", /integer from 1 to 256, got "0"/] },
  cudaDeviceId: { good: "1", parsed: 1, bad: ["gpu0", /integer from 0 to 63, got "gpu0"/] },
  inferenceTimeoutMs: { good: "5000", parsed: 5000, bad: ["50", /integer from 100 to 86400000, got "50"/] },
  modelLoadTimeoutMs: {
    good: "120000",
    parsed: 120000,
    bad: ["1", /integer from 1000 to 86400000, got "1"/],
  },
  heatmapFormat: {
    good: "webp",
    parsed: "webp",
    bad: ["gif", /expected one of jpeg, png, webp, none, got "gif"/],
  },
  heatmapQuality: { good: "70", parsed: 70, bad: ["101", /integer from 1 to 100, got "101"/] },
  maxImagesInFlight: { good: "8", parsed: 8, bad: ["1e9", /integer from 1 to 100000, got "1e9"/] },
  maxBatchDelayMs: { good: "0", parsed: 0, bad: ["soon", /integer from 0 to 60000, got "soon"/] },
  concurrency: { good: "7", parsed: 7, bad: ["999", /integer from 1 to 256, got "999"/] },
  maxImageBytes: { good: "1048576", parsed: 1048576, bad: ["10MB", /got "10MB"/] },
  maxImagePixels: { good: "4000000", parsed: 4000000, bad: ["-5", /got "-5"/] },
  heatmapMaxSide: { good: "256", parsed: 256, bad: ["6", /integer from 7 to 16384, got "6"/] },
  metricsHost: { good: "0.0.0.0", parsed: "0.0.0.0" },
  metricsPort: { good: "0", parsed: 0, bad: ["65536", /integer from 0 to 65535, got "65536"/] },
  logLevel: { good: "debug", parsed: "debug", bad: ["verbose", /expected one of debug, info, warn, error/] },
  logFormat: { good: "text", parsed: "text", bad: ["xml", /expected one of json, text, got "xml"/] },
};

const fields = Object.keys(CONFIG_ENV_NAMES) as Field[];

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, got none");
}

describe("resolveConfig", () => {
  it("has a case for every variable it reads", () => {
    expect(Object.keys(CASES).sort()).toEqual([...fields].sort());
  });

  it("resolves the documented defaults when nothing is set", () => {
    expect(resolveConfig({})).toEqual({
      redisUrl: "redis://127.0.0.1:6379",
      queueName: "memscore",
      s3Endpoint: "",
      s3ForcePathStyle: false,
      awsRegion: "us-east-1",
      s3RequestTimeoutMs: 60_000,
      allowedBuckets: [],
      outputBucket: "",
      redisEvictionCheck: "warn",
      model: "",
      modelSha256: "",
      provider: "auto",
      intraOpThreads: usableCores(),
      ortThreadSpinning: false,
      batchSize: 16,
      padBatches: "auto",
      decodeThreads: 1,
      pipelineThreads: usableCores(),
      cudaDeviceId: 0,
      inferenceTimeoutMs: 60_000,
      modelLoadTimeoutMs: 600_000,
      heatmapFormat: "jpeg",
      heatmapQuality: 85,
      maxImagesInFlight: 64,
      maxBatchDelayMs: 20,
      concurrency: 4,
      maxImageBytes: 52_428_800,
      maxImagePixels: 100_000_000,
      heatmapMaxSide: 1024,
      metricsHost: "127.0.0.1",
      metricsPort: 9464,
      logLevel: "info",
      logFormat: "json",
    } satisfies MemscoreConfig);
  });

  it.each(fields)("reads %s from its variable", (field) => {
    const env = CONFIG_ENV_NAMES[field];
    expect(resolveConfig({ [env]: CASES[field].good })[field]).toEqual(CASES[field].parsed);
  });

  it.each(fields.filter((f) => CASES[f].bad))("refuses a bad %s, naming its variable", (field) => {
    const env = CONFIG_ENV_NAMES[field];
    const [value, why] = CASES[field].bad as [string, RegExp];
    const error = configError(() => resolveConfig({ [env]: value }));
    expect(error.key).toBe(env);
    expect(error.message.startsWith(`${env}: `), error.message).toBe(true);
    expect(error.message).toMatch(why);
  });

  it("takes an empty variable as unset", () => {
    expect(resolveConfig({ MEMSCORE_BATCH_SIZE: "", REDIS_URL: "" })).toMatchObject({
      batchSize: 16,
      redisUrl: "redis://127.0.0.1:6379",
    });
  });

  it("lets command-line flags win over variables, even over a bad one it then never reads", () => {
    expect(resolveConfig({ MEMSCORE_BATCH_SIZE: "8" }, { batchSize: "4" }).batchSize).toBe(4);
    expect(resolveConfig({ MEMSCORE_BATCH_SIZE: "abc" }, { batchSize: 4 }).batchSize).toBe(4);
    expect(
      resolveConfig({ MEMSCORE_ALLOWED_BUCKETS: "a-b" }, { allowedBuckets: ["c-d", "e-f"] }),
    ).toMatchObject({
      allowedBuckets: ["c-d", "e-f"],
    });
    // A bad flag value is refused under the field's name (the CLI's flag maps onto it).
    const error = configError(() => resolveConfig({ MEMSCORE_BATCH_SIZE: "8" }, { batchSize: "0" }));
    expect([error.key, error.message]).toEqual([
      "batchSize",
      'batchSize: expected an integer from 1 to 1024, got "0"',
    ]);
  });

  it("derives defaults from other settings: path style from the endpoint, images in flight from the batch size", () => {
    expect(resolveConfig({ S3_ENDPOINT: "http://minio:9000" }).s3ForcePathStyle).toBe(true);
    expect(
      resolveConfig({ S3_ENDPOINT: "http://minio:9000", S3_FORCE_PATH_STYLE: "false" }).s3ForcePathStyle,
    ).toBe(false);
    expect(resolveConfig({ MEMSCORE_BATCH_SIZE: "32" }).maxImagesInFlight).toBe(128);
    expect(resolveConfig({}, { batchSize: 4 }).maxImagesInFlight).toBe(32);
  });
});

describe("the README's configuration table", () => {
  it("lists exactly the variables resolveConfig reads, with their defaults where they are numbers", async () => {
    const readme = await readFile(fileURLToPath(new URL("../../../README.md", import.meta.url)), "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Outputs"));
    const rows = section
      .split("\n")
      .filter((line) => /^\| `/.test(line))
      .map((line) => line.split("|").map((cell) => cell.trim()));
    const documented = new Map<string, string>();
    for (const [, names = "", defaults = ""] of rows) {
      const vars = [...names.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1] as string);
      const values = defaults.split(" / ");
      for (const [i, name] of vars.entries())
        documented.set(name, (values[i] ?? defaults).replaceAll("`", ""));
    }
    expect([...documented.keys()].sort()).toEqual(Object.values(CONFIG_ENV_NAMES).sort());
    const defaults = resolveConfig({});
    for (const field of fields) {
      const text = documented.get(CONFIG_ENV_NAMES[field]) ?? "";
      if (/^\d+$/.test(text)) expect(defaults[field], CONFIG_ENV_NAMES[field]).toBe(Number(text));
    }
  });
});
