// Writes the exact 224×224 RGB pixels the worker feeds the model (prepareImage: sharp decode at
// ≤1024 px, EXIF orientation, sRGB, resize without cropping) as lossless PNGs, so PyTorch references (model/reference.py
// --no-resize) see byte-identical input. Usage: node model/tools/dump-preprocessed.mjs OUT_DIR IMAGE...
import { mkdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { prepareImage } from "@memscore/worker";
import sharp from "sharp";

const [outDir, ...images] = process.argv.slice(2);
if (!outDir || images.length === 0) {
  console.error("usage: node model/tools/dump-preprocessed.mjs OUT_DIR IMAGE...");
  process.exit(2);
}
const size = 224;
await mkdir(outDir, { recursive: true });
for (const image of images) {
  const { rgb } = await prepareImage(await readFile(image), { inputSize: size }, { maxPixels: 100_000_000 });
  const out = join(outDir, `${basename(image)}.png`);
  await sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toFile(out);
  console.log(out);
}
