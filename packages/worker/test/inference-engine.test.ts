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
    const cells = runtime.info.gridSize * runtime.info.gridSize;
    expect(cells).toBe(49);
    for (const [i, rgb] of images.entries()) {
      const [alone] = await runtime.run(rgbToTensor(rgb, runtime.info), 1);
      const image = batched[i];
      expect(image?.score).toBeCloseTo(alone?.score as number, 5);
      // Each image's own 7×7 grid, not a neighbour's slice of the batch or an empty one.
      expect(image?.gradcam).toBeInstanceOf(Float32Array);
      expect(image?.gradcam.length).toBe(cells);
      expect(alone?.gradcam.length).toBe(cells);
      expect(Array.from(image?.gradcam as Float32Array)).toEqual(
        Array.from(alone?.gradcam as Float32Array).map((v) => expect.closeTo(v, 5)),
      );
    }
    // Different photographs, different grids: a grid handed to the wrong image would show.
    expect(Array.from(batched[0]?.gradcam ?? [])).not.toEqual(Array.from(batched[1]?.gradcam ?? []));
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
