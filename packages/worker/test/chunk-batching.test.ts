import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  type ChunkJobData,
  type ImageRecord,
  parseS3Uri,
  resolveConfig,
  type Storage,
  silentLogger,
} from "@memscore/shared";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { getBytes, putObjects, testS3Client, testStorage } from "../../../test/support/s3.js";
import { startTestServices, type TestServices, uniqueName } from "../../../test/support/services.js";
import {
  BUNDLED_MODEL_PATH,
  InferenceEngine,
  ModelRuntime,
  PipelinePool,
  pipelineS3,
  pipelineSettings,
  prepareImage,
  processChunk,
  rgbToTensor,
  Semaphore,
} from "../src/index.js";

// A chunk through the real stages (S3 GET, sharp, in two pipeline threads; the batcher and ONNX
// Runtime in the inference thread; heatmap, S3 PUT): images from both threads share batches,
// each result goes back to its own image, and an undecodable image fails alone.
describe("chunk processing with shared batches", () => {
  let services: TestServices;
  let s3: S3Client;
  let storage: Storage;
  let config: ReturnType<typeof resolveConfig>;
  const input = uniqueName("in");
  const output = uniqueName("out");
  const photos = new Map<string, Buffer>();

  beforeAll(async () => {
    services = await startTestServices();
    s3 = testS3Client(services.env);
    await s3.send(new CreateBucketCommand({ Bucket: input }));
    await s3.send(new CreateBucketCommand({ Bucket: output }));
    for (let i = 0; i < 6; i++)
      photos.set(`p/photo-${i}.jpg`, await makePhoto(120 + i * 40, 90 + i * 30, i + 1));
    const good = photos.get("p/photo-0.jpg") as Buffer;
    await putObjects(
      s3,
      input,
      new Map<string, Buffer>([...photos, ["p/broken.jpg", good.subarray(0, good.length >> 1)]]),
    );
    config = resolveConfig(services.env);
    storage = testStorage(services.env);
  });

  afterAll(async () => {
    storage?.close();
    s3?.destroy();
    await services?.stop();
  });

  it("scores every good image with its own result, in shared batches, and isolates the broken one", async () => {
    // One batch holds the whole chunk, so the broken image is in the same wave as the good ones.
    const engine = await InferenceEngine.start(BUNDLED_MODEL_PATH, {
      provider: "cpu",
      intraOpThreads: 1,
      batchSize: 7,
      maxBatchDelayMs: 50,
    });
    const pipeline = await PipelinePool.start({
      threads: 2,
      engine,
      settings: pipelineSettings(config),
      s3: pipelineS3(config),
      logger: silentLogger,
    });
    const keys = [
      "p/photo-0.jpg",
      "p/photo-1.jpg",
      "p/photo-2.jpg",
      "p/broken.jpg",
      "p/photo-3.jpg",
      "p/photo-4.jpg",
      "p/photo-5.jpg",
    ];
    const job: ChunkJobData = {
      v: 1,
      runId: "batching-run",
      chunkIndex: 0,
      outputPrefix: `s3://${output}/scores/`,
      heatmapFormat: "jpeg",
      images: keys.map((key) => ({ uri: `s3://${input}/${key}`, rel: key.slice(2) })),
    };
    const outcome = await processChunk({ pipeline, inFlight: new Semaphore(16), logger: silentLogger }, job, {
      rerun: false,
      final: true,
    }).finally(async () => {
      await pipeline.close();
      await engine.close();
    });

    // Rows come back in chunk order; only the broken image failed.
    expect(outcome.rows.map((r) => r.uri)).toEqual(job.images.map((i) => i.uri));
    expect(outcome.counts).toMatchObject({ scored: 6, failed: 1 });
    const broken = outcome.rows[3];
    expect(broken).toMatchObject({ status: "error", error_reason: "decode_failed" });
    // The six good images went through inference together, not one by one.
    expect(engine.stats.items).toBe(6);
    expect(engine.stats.batches).toBeLessThan(6);

    // Each image's score is the one the model gives that image on its own.
    const alone = await ModelRuntime.load(BUNDLED_MODEL_PATH, { provider: "cpu", intraOpThreads: 1 });
    try {
      const scores = new Set<number>();
      for (const [i, row] of outcome.rows.entries()) {
        if (i === 3) continue;
        const key = keys[i] as string;
        const prepared = await prepareImage(photos.get(key) as Buffer, alone.info, { maxPixels: 1e7 });
        const [own] = await alone.run(rgbToTensor(prepared.rgb, alone.info), 1);
        expect(row.status).toBe("scored");
        expect(row.score).toBeCloseTo(own?.score as number, 5);
        scores.add(row.score as number);

        const record = JSON.parse(
          (await getBytes(s3, output, `scores/${key.slice(2)}.json`)).toString(),
        ) as ImageRecord;
        expect(record.score).toBe(row.score);
        expect(record.input).toMatchObject({ width: prepared.width, height: prepared.height });
        const heatmap = parseS3Uri(row.heatmap as string);
        const meta = await sharp(await getBytes(s3, heatmap.bucket, heatmap.key)).metadata();
        expect(heatmap.key).toBe(`scores/${key.slice(2)}.heatmap.jpg`);
        expect(meta.format).toBe("jpeg");
        expect([meta.width, meta.height]).toEqual([prepared.width, prepared.height]);
      }
      // Different images, different scores: a mix-up of results could not pass unnoticed.
      expect(scores.size).toBe(6);
    } finally {
      await alone.close();
    }
  });
});
