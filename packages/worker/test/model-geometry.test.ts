import { fileURLToPath } from "node:url";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { type ChunkJobData, type ImageRecord, resolveConfig, silentLogger } from "@memscore/shared";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { getBytes, putObjects, testS3Client } from "../../../test/support/s3.js";
import { startTestServices, type TestServices, uniqueName } from "../../../test/support/services.js";
import {
  BUNDLED_MODEL_PATH,
  InferenceEngine,
  METADATA_KEYS,
  OPTIONAL_METADATA_KEYS,
  ORIGINAL_GEOMETRY,
  PipelinePool,
  parseModelMetadata,
  pipelineS3,
  pipelineSettings,
  prepareImage,
  processChunk,
  readModelMetadata,
  Semaphore,
  toModelInput,
} from "../src/index.js";

const CROP_MODEL = fileURLToPath(
  new URL("../../../test/fixtures/models/geometry-crop.onnx", import.meta.url),
);

const BASE = new Map<string, string>([
  [METADATA_KEYS.name, "m"],
  [METADATA_KEYS.version, "1"],
  [METADATA_KEYS.inputSize, "227"],
  [METADATA_KEYS.mean, "0,0,0"],
  [METADATA_KEYS.std, "1,1,1"],
  [METADATA_KEYS.trained, "true"],
  [METADATA_KEYS.trainingData, "LaMem"],
]);
const withKeys = (entries: Record<string, string>) => new Map([...BASE, ...Object.entries(entries)]);

/** A 256×256 image whose red channel is its x and green its y, so each pixel says where it came from. */
function coordinates(size = 256): { data: Buffer; width: number; height: number } {
  const data = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data.set([x, y, 128], (y * size + x) * 3);
  return { data, width: size, height: size };
}

describe("model geometry from metadata", () => {
  it("gives models without the newer keys the original contract: stretch, Lanczos 3, licence unspecified", () => {
    const meta = parseModelMetadata(BASE);
    expect(meta.resize).toEqual({ kind: "stretch" });
    expect(meta.resizeKernel).toBe("lanczos3");
    expect({ resize: meta.resize, resizeKernel: meta.resizeKernel }).toEqual(ORIGINAL_GEOMETRY);
    expect(meta.license).toBe("unspecified");
    expect(meta.weightsSha256).toBeUndefined();
  });

  it("reads stretch-then-crop, the kernel, the licence and the weights' sha256", () => {
    const sha = "986f094c1b116af6b7ad27d311ffca25af377d46d94ba7e05d943f88bfac8dac";
    const meta = parseModelMetadata(
      withKeys({
        [OPTIONAL_METADATA_KEYS.resize]: "stretch-crop",
        [OPTIONAL_METADATA_KEYS.resizeSize]: "256",
        [OPTIONAL_METADATA_KEYS.resizeKernel]: "linear",
        [OPTIONAL_METADATA_KEYS.license]: "ResMem Non-commercial License",
        [OPTIONAL_METADATA_KEYS.weightsSha256]: sha,
      }),
    );
    expect(meta).toMatchObject({
      inputSize: 227,
      resize: { kind: "stretch-crop", resizeSize: 256 },
      resizeKernel: "linear",
      license: "ResMem Non-commercial License",
      weightsSha256: sha,
    });
  });

  it.each([
    [{ [OPTIONAL_METADATA_KEYS.resize]: "letterbox" }, /"memscore.resize" must be stretch or stretch-crop/],
    [{ [OPTIONAL_METADATA_KEYS.resize]: "stretch-crop" }, /"memscore.resize_size" is missing/],
    [
      { [OPTIONAL_METADATA_KEYS.resize]: "stretch-crop", [OPTIONAL_METADATA_KEYS.resizeSize]: "200" },
      /"memscore.resize_size" must be an integer from 227/,
    ],
    [
      { [OPTIONAL_METADATA_KEYS.resizeSize]: "256" },
      /"memscore.resize_size" is set but "memscore.resize" is stretch/,
    ],
    [
      { [OPTIONAL_METADATA_KEYS.resizeKernel]: "bicubic" },
      /"memscore.resize_kernel" must be one of nearest, linear/,
    ],
    [{ [OPTIONAL_METADATA_KEYS.weightsSha256]: "abc" }, /"memscore.weights_sha256" must be 64 lowercase hex/],
  ])("refuses bad geometry metadata %o with a message naming the key", (keys, message) => {
    expect(() => parseModelMetadata(withKeys(keys as Record<string, string>))).toThrow(message);
  });

  it("the bundled model says what its weights are, and has the original geometry", async () => {
    const meta = await readModelMetadata(BUNDLED_MODEL_PATH);
    expect(meta).toMatchObject({
      trained: false,
      trainingData: "none",
      license: "none (seeded random initialisation)",
      resize: { kind: "stretch" },
      resizeKernel: "lanczos3",
    });
  });

  it("crops the centre at offset ⌊(R − S)/2⌋ after stretching, as torchvision's CenterCrop(227) of 256", async () => {
    const rgb = await toModelInput(coordinates(), {
      inputSize: 227,
      resize: { kind: "stretch-crop", resizeSize: 256 },
      resizeKernel: "linear",
    });
    expect(rgb.length).toBe(227 * 227 * 3);
    const at = (x: number, y: number) => Array.from(rgb.subarray((y * 227 + x) * 3, (y * 227 + x) * 3 + 3));
    expect(at(0, 0)).toEqual([14, 14, 128]);
    expect(at(226, 0)).toEqual([240, 14, 128]);
    expect(at(100, 200)).toEqual([114, 214, 128]);
  });

  it("uses the model's resize kernel", async () => {
    const photo = {
      data: (await sharp(await makePhoto(640, 480, 2))
        .raw()
        .toBuffer()) as Buffer,
      width: 640,
      height: 480,
    };
    const as = (resizeKernel: "nearest" | "linear" | "lanczos3") =>
      toModelInput(photo, { inputSize: 224, resize: { kind: "stretch" }, resizeKernel });
    const [nearest, linear, lanczos] = await Promise.all([as("nearest"), as("linear"), as("lanczos3")]);
    expect(nearest.equals(linear)).toBe(false);
    expect(linear.equals(lanczos)).toBe(false);
    // prepareImage with only inputSize is the original contract (Lanczos 3), as before.
    const jpeg = await sharp(photo.data, { raw: { width: 640, height: 480, channels: 3 } })
      .png()
      .toBuffer();
    const limits = { maxPixels: 1e8 };
    const legacy = await prepareImage(jpeg, { inputSize: 224 }, limits);
    const explicit = await prepareImage(jpeg, { inputSize: 224, ...ORIGINAL_GEOMETRY }, limits);
    expect(legacy.rgb.equals(explicit.rgb)).toBe(true);
    expect(legacy.rgb.equals(lanczos)).toBe(true);
  });
});

describe("a stretch-then-crop model in the chunk pipeline", () => {
  let services: TestServices;
  let s3: S3Client;
  let config: ReturnType<typeof resolveConfig>;
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    services = await startTestServices();
    Object.assign(process.env, services.env); // the S3 SDK reads credentials from the environment
    s3 = testS3Client(services.env);
    await s3.send(new CreateBucketCommand({ Bucket: input }));
    await s3.send(new CreateBucketCommand({ Bucket: output }));
    config = resolveConfig(services.env);
  });

  afterAll(async () => {
    s3?.destroy();
    await services?.stop();
  });

  it("feeds the model only the centre crop and names the model's training data and licence in the record", async () => {
    // White inside, a black border exactly as wide as the crop cuts off (14 px of 256): the
    // fixture's score is the mean of its input, so 1 means it saw white only.
    const framed = await sharp({ create: { width: 228, height: 228, channels: 3, background: "#ffffff" } })
      .extend({ top: 14, bottom: 14, left: 14, right: 14, background: "#000000" })
      .png()
      .toBuffer();
    // A wider border (20 of 268 px) is 19.1 px after the stretch to 256: the crop keeps some.
    const wider = await sharp({ create: { width: 228, height: 228, channels: 3, background: "#ffffff" } })
      .extend({ top: 20, bottom: 20, left: 20, right: 20, background: "#000000" })
      .png()
      .toBuffer();
    await putObjects(
      s3,
      input,
      new Map([
        ["framed.png", framed],
        ["framed-wider.png", wider],
      ]),
    );
    const job: ChunkJobData = {
      v: 1,
      runId: "geometry-run",
      chunkIndex: 0,
      outputPrefix: `s3://${output}/scores/`,
      images: ["framed.png", "framed-wider.png"].map((key) => ({ uri: `s3://${input}/${key}`, rel: key })),
    };
    const engine = await InferenceEngine.start(CROP_MODEL, {
      provider: "cpu",
      intraOpThreads: 1,
      batchSize: 2,
      maxBatchDelayMs: 20,
    });
    const pipeline = await PipelinePool.start({
      threads: 1,
      engine,
      settings: pipelineSettings(config),
      s3: pipelineS3(config),
      logger: silentLogger,
    });
    const outcome = await processChunk({ pipeline, inFlight: new Semaphore(4), logger: silentLogger }, job, {
      rerun: false,
      final: true,
    }).finally(async () => {
      await pipeline.close();
      await engine.close();
    });
    expect(outcome.counts).toMatchObject({ scored: 2, failed: 0 });
    expect(outcome.rows[0]?.score).toBe(1);
    expect(outcome.rows[1]?.score).toBeLessThan(0.99);

    const record = JSON.parse(
      (await getBytes(s3, output, "scores/framed.png.json")).toString("utf8"),
    ) as ImageRecord;
    const { sha256 } = await readModelMetadata(CROP_MODEL);
    expect(record.model).toEqual({
      name: "geometry-crop-fixture",
      version: "0.0.1",
      sha256,
      trained: false,
      training_data: "none",
      license: "test fixture licence",
    });
    expect(record.gradcam).toHaveLength(8); // the grid comes from the model's gradcam output
  });
});
