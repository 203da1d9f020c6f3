// Writes the images of the train/serve test (model/tests/test_train_serve.py) into OUT_DIR: one
// for each way a file's pixels differ from what a plain decoder returns. Generated here with
// sharp, so the repository carries no binary fixtures for it.
//   node model/tools/train-serve-images.mjs OUT_DIR
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";

const [outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node model/tools/train-serve-images.mjs OUT_DIR");
  process.exit(2);
}

/** Photograph-like pixels: smooth colour gradients plus noise (8-bit RGB, or RGBA with alpha). */
function photoPixels(width, height, seed, channels = 3) {
  const px = Buffer.alloc(width * height * channels);
  let s = seed * 2654435761;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = (s >>> 24) % 40;
      const i = (y * width + x) * channels;
      px[i] = ((x * 230) / width + noise + seed * 23) % 256;
      px[i + 1] = ((y * 230) / height + noise) % 256;
      px[i + 2] = (((x + y) * 200) / (width + height) + seed * 7 + noise) % 256;
      if (channels === 4) px[i + 3] = Math.round((255 * x) / (width - 1)); // transparent left, opaque right
    }
  }
  return sharp(px, { raw: { width, height, channels } });
}

await mkdir(outDir, { recursive: true });
const out = (name) => join(outDir, name);
// Pixels converted into Display P3 and tagged with its profile: a viewer (and the worker)
// converts them back to sRGB; a decoder that ignores the profile sees other colours.
await photoPixels(640, 480, 1).withIccProfile("p3").jpeg({ quality: 92 }).toFile(out("icc-display-p3.jpg"));
await photoPixels(500, 400, 2, 4).png().toFile(out("alpha.png"));
// Stored landscape, shown portrait (EXIF orientation 6: rotate 90° clockwise).
await photoPixels(600, 400, 3)
  .withMetadata({ orientation: 6 })
  .jpeg({ quality: 92 })
  .toFile(out("exif-rotated.jpg"));
await photoPixels(480, 360, 4).toColourspace("cmyk").jpeg({ quality: 92 }).toFile(out("cmyk.jpg"));
await photoPixels(400, 300, 5).toColourspace("rgb16").png().toFile(out("sixteen-bit.png"));
await photoPixels(420, 300, 6).toColourspace("b-w").png().toFile(out("grey.png"));
await photoPixels(4000, 3000, 7).jpeg({ quality: 90 }).toFile(out("large-4000x3000.jpg"));
console.log(outDir);
