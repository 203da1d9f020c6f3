import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { renderHeatmap } from "../src/heatmap.js";
import { decodeImage, type RgbImage } from "../src/preprocess.js";
import { RenderPool } from "../src/render-pool.js";

const copy = (image: RgbImage): RgbImage => ({ ...image, data: Buffer.from(image.data) });

describe("RenderPool", () => {
  it("renders in its threads exactly what the main thread renders, for many images at once", async () => {
    const pool = RenderPool.create(2);
    try {
      const images = await Promise.all(
        [0, 1, 2, 3, 4, 5].map(async (i) =>
          decodeImage(await makePhoto(160 + i * 10, 120, i), 1024, { maxPixels: 1e8 }),
        ),
      );
      const grids = images.map((_, i) =>
        Float32Array.from({ length: 49 }, (_, j) => ((j * (i + 3)) % 11) / 10),
      );
      const inThreads = await Promise.all(
        images.map((image, i) => pool.render(copy(image), grids[i] as Float32Array, 7)),
      );
      for (const [i, png] of inThreads.entries()) {
        const onMain = await renderHeatmap(copy(images[i] as RgbImage), grids[i] as Float32Array, 7);
        expect(Buffer.compare(png, onMain), `image ${i}`).toBe(0);
        expect((await sharp(png).metadata()).width).toBe(160 + i * 10);
      }
    } finally {
      await pool.close();
      await pool.close(); // idempotent
    }
  });

  it("returns a render that fails in a thread as the error the main thread gives", async () => {
    const pool = RenderPool.create(1);
    try {
      // Pixels that do not match their stated size: a bug upstream, not a bad image.
      const broken = { data: Buffer.alloc(10), width: 4, height: 4 };
      const inThread = await pool.render(broken, new Float32Array(49), 7).catch((e) => e);
      const onMain = await renderHeatmap(broken, new Float32Array(49), 7).catch((e) => e);
      expect(inThread).toBeInstanceOf(Error);
      expect(inThread.message).toBe(onMain.message);
      expect(inThread.message).toMatch(/expected 48 RGB bytes/);
    } finally {
      await pool.close();
    }
  });

  it("renders on the calling thread when configured with no render threads", async () => {
    const { render, close } = RenderPool.create(0);
    expect(render).toBe(renderHeatmap);
    await close();
  });
});
