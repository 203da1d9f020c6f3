import { ImageError } from "@memscore/shared";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePhoto } from "../../../test/support/images.js";
import { renderHeatmap } from "../src/heatmap.js";
import { RenderPool } from "../src/render-pool.js";

describe("RenderPool", () => {
  it("renders in its threads exactly what the main thread renders, for many images at once", async () => {
    const pool = RenderPool.create(2);
    try {
      const photos = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => makePhoto(160 + i * 10, 120, i)));
      const grids = photos.map((_, i) =>
        Float32Array.from({ length: 49 }, (_, j) => ((j * (i + 3)) % 11) / 10),
      );
      const options = { maxSide: 1024, maxPixels: 1e8 };
      const inThreads = await Promise.all(
        photos.map((p, i) => pool.render(p, grids[i] as Float32Array, 7, options)),
      );
      for (const [i, png] of inThreads.entries()) {
        const onMain = await renderHeatmap(photos[i] as Buffer, grids[i] as Float32Array, 7, options);
        expect(Buffer.compare(png, onMain), `image ${i}`).toBe(0);
        expect((await sharp(png).metadata()).width).toBe(160 + i * 10);
      }
    } finally {
      await pool.close();
      await pool.close(); // idempotent
    }
  });

  it("keeps a permanent image failure permanent across the thread boundary", async () => {
    const pool = RenderPool.create(1);
    try {
      const error = await pool
        .render(Buffer.from("not an image"), new Float32Array(49), 7, { maxPixels: 1e8 })
        .catch((e) => e);
      expect(error).toBeInstanceOf(Error);
      // The chunk pipeline treats ImageError as permanent and anything else as transient.
      const onMain = await renderHeatmap(Buffer.from("not an image"), new Float32Array(49), 7, {
        maxPixels: 1e8,
      }).catch((e) => e);
      expect(error instanceof ImageError).toBe(onMain instanceof ImageError);
      expect(error.message).toBe(onMain.message);
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
