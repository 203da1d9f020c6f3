import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import {
  BUNDLED_MODEL_PATH,
  InferenceEngine,
  ModelRuntime,
  prepareImage,
  rgbToTensor,
} from "../src/index.js";

describe("InferenceEngine", () => {
  let runtime: ModelRuntime;
  beforeAll(async () => {
    runtime = await ModelRuntime.load(BUNDLED_MODEL_PATH, { provider: "cpu", intraOpThreads: 1 });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it("normalises each image's pixels into its batch slot: scores equal the model run on each tensor alone", async () => {
    const images = await Promise.all(
      [1, 2, 3].map(
        async (seed) =>
          (await prepareImage(await makePhoto(160, 120, seed), runtime.info, { maxPixels: 1e7 })).rgb,
      ),
    );
    const engine = new InferenceEngine(runtime, { batchSize: 3, maxBatchDelayMs: 1000 });
    const batched = await Promise.all(images.map((rgb) => engine.infer(rgb)));
    expect(engine.stats.batches).toBe(1);
    for (const [i, rgb] of images.entries()) {
      const [alone] = await runtime.run(rgbToTensor(rgb, runtime.info), 1);
      expect(batched[i]?.score).toBeCloseTo(alone?.score as number, 5);
      expect(Array.from(batched[i]?.gradcam ?? [])).toEqual(
        Array.from(alone?.gradcam ?? []).map((v) => expect.closeTo(v, 5)),
      );
    }
  });

  it("rejects an image of the wrong size on its own; the rest of the batch is scored", async () => {
    const good = (await prepareImage(await makePhoto(64, 64, 9), runtime.info, { maxPixels: 1e7 })).rgb;
    const engine = new InferenceEngine(runtime, { batchSize: 2, maxBatchDelayMs: 20 });
    const [wrong, ok] = await Promise.allSettled([engine.infer(new Uint8Array(12)), engine.infer(good)]);
    expect(wrong).toMatchObject({
      status: "rejected",
      reason: { message: expect.stringMatching(/RGB bytes per image, got 12/) },
    });
    expect(ok).toMatchObject({ status: "fulfilled", value: { score: expect.any(Number) } });
  });
});
