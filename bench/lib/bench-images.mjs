import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { REPO_ROOT } from "./model-file.mjs";

/** A photograph-like JPEG: smooth gradients plus noise, so the codec does realistic work. */
export async function photoJpeg(width, height, seed) {
  const rgb = Buffer.alloc(width * height * 3);
  let s = (seed + 1) * 2654435761;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = (s >>> 24) % 32;
      const i = (y * width + x) * 3;
      rgb[i] = ((x * 255) / width + noise + seed * 37) % 256;
      rgb[i + 1] = ((y * 255) / height + noise) % 256;
      rgb[i + 2] = (((x + y) * 128) / (width + height) + seed * 11) % 256;
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/**
 * A directory of `count` JPEGs of width×height, generated once and reused (git-ignored
 * .bench-out/), so every benchmark in a run reads exactly the same files.
 */
export async function benchImages(count, width, height) {
  const dir = join(REPO_ROOT, ".bench-out", `images-${width}x${height}-${count}`);
  if (!existsSync(dir)) {
    const partial = `${dir}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    for (let i = 0; i < count; i++) {
      await writeFile(
        join(partial, `img-${String(i).padStart(5, "0")}.jpg`),
        await photoJpeg(width, height, i),
      );
    }
    await rename(partial, dir);
  }
  const files = (await readdir(dir)).filter((f) => f.endsWith(".jpg")).sort();
  return { dir, files };
}
