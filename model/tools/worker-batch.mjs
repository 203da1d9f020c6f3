// Writes the batch tensor the worker feeds a model for the given images, in order: each image
// through prepareImage (the worker's decode and the model's geometry) and rgbToTensor (its
// normalisation) into one [N,3,S,S] float32 buffer, exactly as the inference engine assembles a
// batch. For bit-for-bit comparisons with model/'s loader (model/tests/test_train_serve.py).
//   node model/tools/worker-batch.mjs MODEL OUT.f32 IMAGE...
import { readFile, writeFile } from "node:fs/promises";
import { prepareImage, readModelMetadata, rgbToTensor } from "@memscore/worker";

const [modelPath, outPath, ...images] = process.argv.slice(2);
if (!modelPath || !outPath || images.length === 0) {
  console.error("usage: node model/tools/worker-batch.mjs MODEL OUT.f32 IMAGE...");
  process.exit(2);
}
const model = await readModelMetadata(modelPath);
const elements = 3 * model.inputSize * model.inputSize;
const batch = new Float32Array(images.length * elements);
for (const [i, image] of images.entries()) {
  const { rgb } = await prepareImage(await readFile(image), model, { maxPixels: 100_000_000 });
  rgbToTensor(rgb, model, batch, i * elements);
}
await writeFile(outPath, Buffer.from(batch.buffer));
console.log(JSON.stringify({ images: images.length, inputSize: model.inputSize }));
