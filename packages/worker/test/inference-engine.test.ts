import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import {
  BUNDLED_MODEL_PATH,
  InferenceClient,
  InferenceEngine,
  ModelRuntime,
  prepareImage,
  rgbToTensor,
} from "../src/index.js";

// The engine lives in its own thread; a client on any thread (here the test's) sends tensors
// through a port of its own and gets back each image's own outputs.
describe("InferenceEngine", () => {
  let runtime: ModelRuntime;
  beforeAll(async () => {
    runtime = await ModelRuntime.load(BUNDLED_MODEL_PATH, { provider: "cpu", intraOpThreads: 1 });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  const start = (batchSize: number, maxBatchDelayMs: number, padBatches?: "on" | "off") =>
    InferenceEngine.start(BUNDLED_MODEL_PATH, {
      provider: "cpu",
      intraOpThreads: 1,
      batchSize,
      maxBatchDelayMs,
      ...(padBatches && { padBatches }),
    });

  const photoTensor = async (seed: number) =>
    rgbToTensor(
      (await prepareImage(await makePhoto(160, 120, seed), runtime.info, { maxPixels: 1e7 })).rgb,
      runtime.info,
    );

  it("batches images from two clients and returns each its own score and grid", async () => {
    const engine = await start(4, 1_000);
    const clients = [0, 1].map(() => new InferenceClient(engine.connect(), engine.imageElements));
    try {
      const inputs = await Promise.all(
        [1, 2, 3, 4].map(async (seed) =>
          rgbToTensor(
            (await prepareImage(await makePhoto(160, 120, seed), runtime.info, { maxPixels: 1e7 })).rgb,
            runtime.info,
          ),
        ),
      );
      // Copies: the engine takes ownership of what it is sent.
      const batched = await Promise.all(
        inputs.map((input, i) => (clients[i % 2] as InferenceClient).infer(input.slice())),
      );
      expect(engine.stats).toMatchObject({ batches: 1, items: 4 });
      expect(engine.meanBatchFill).toBe(1);
      const cells = runtime.info.gridSize ** 2;
      for (const [i, input] of inputs.entries()) {
        const [alone] = await runtime.run(input, 1);
        expect(batched[i]?.gradcam).toHaveLength(cells);
        expect(alone?.gradcam).toHaveLength(cells);
        expect(batched[i]?.score).toBeCloseTo(alone?.score as number, 5);
        expect(Array.from(batched[i]?.gradcam as Float32Array)).toEqual(
          Array.from(alone?.gradcam as Float32Array).map((v) => expect.closeTo(v, 5)),
        );
      }
      expect(new Set(batched.map((b) => b.score)).size).toBe(4);
      // Different photographs, different grids: a grid handed to the wrong image would show.
      expect(Array.from(batched[0]?.gradcam as Float32Array)).not.toEqual(
        Array.from(batched[1]?.gradcam as Float32Array),
      );
    } finally {
      for (const client of clients) client.close();
      await engine.close();
    }
  });

  it("pads a partial batch to the next shape and gives each image the outputs it gets alone", async () => {
    // Batch size 8: shapes 1, 2, 4, 8; three images run as one batch of four rows.
    const engine = await start(8, 1_000, "on");
    const client = new InferenceClient(engine.connect(), engine.imageElements);
    try {
      const inputs = await Promise.all([11, 12, 13].map(photoTensor));
      const batched = await Promise.all(inputs.map((input) => client.infer(input.slice())));
      expect(engine.stats).toMatchObject({ batches: 1, items: 3, paddedRows: 1 });
      // Then a smaller batch, in the first one's (reused) tensor: two images, two rows.
      const again = await Promise.all(inputs.slice(1).map((input) => client.infer(input.slice())));
      expect(engine.stats).toMatchObject({ batches: 2, items: 5, paddedRows: 1 });
      for (const [i, input] of inputs.entries()) {
        const [alone] = await runtime.run(input, 1);
        for (const output of i === 0 ? [batched[0]] : [batched[i], again[i - 1]]) {
          expect(output?.score).toBeCloseTo(alone?.score as number, 5);
          expect(Array.from(output?.gradcam as Float32Array)).toEqual(
            Array.from(alone?.gradcam as Float32Array).map((v) => expect.closeTo(v, 5)),
          );
        }
      }
    } finally {
      client.close();
      await engine.close();
    }
  });

  it("runs batches at their own size on the CPU provider (auto) and with padding off", async () => {
    for (const padBatches of [undefined, "off"] as const) {
      const engine = await start(8, 1_000, padBatches);
      const client = new InferenceClient(engine.connect(), engine.imageElements);
      try {
        const inputs = await Promise.all([21, 22, 23].map(photoTensor));
        await Promise.all(inputs.map((input) => client.infer(input)));
        expect(engine.stats).toMatchObject({ batches: 1, items: 3, paddedRows: 0 });
      } finally {
        client.close();
        await engine.close();
      }
    }
  });

  it("rejects an image of the wrong size on its own; the rest of the batch is scored", async () => {
    const engine = await start(2, 20);
    const client = new InferenceClient(engine.connect(), engine.imageElements);
    try {
      const good = rgbToTensor(
        (await prepareImage(await makePhoto(64, 64, 9), runtime.info, { maxPixels: 1e7 })).rgb,
        runtime.info,
      );
      const [wrong, ok] = await Promise.allSettled([client.infer(new Float32Array(12)), client.infer(good)]);
      expect(wrong).toMatchObject({
        status: "rejected",
        reason: { message: expect.stringMatching(/floats per image, got 12/) },
      });
      expect(ok).toMatchObject({ status: "fulfilled", value: { score: expect.any(Number) } });
    } finally {
      client.close();
      await engine.close();
    }
  });

  it("rejects images at once after the engine has closed, instead of leaving them waiting", async () => {
    const engine = await start(4, 20);
    const client = new InferenceClient(engine.connect(), engine.imageElements);
    await expect(client.infer(new Float32Array(engine.imageElements))).resolves.toMatchObject({
      score: expect.any(Number),
    });
    await engine.close();
    await expect(client.infer(new Float32Array(engine.imageElements))).rejects.toThrow(/ended/);
    client.close();
  });
});
