// Runs an ONNX model with onnxruntime-node (the runtime the worker uses, CPU provider) on a raw
// float32 input tensor, for parity checks against PyTorch that leave preprocessing out.
//   node model/tools/ort-run.mjs MODEL INPUT.f32 OUT_DIR
// INPUT.f32 holds N images [N,3,S,S] back to back (little-endian float32; S from the model).
// Writes OUT_DIR/<output name>.f32 per output and prints {"outputs": {name: shape}} as JSON.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-node";

const [modelPath, inputPath, outDir] = process.argv.slice(2);
if (!modelPath || !inputPath || !outDir) {
  console.error("usage: node model/tools/ort-run.mjs MODEL INPUT.f32 OUT_DIR");
  process.exit(2);
}
const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
});
const [input] = session.inputMetadata;
const size = Number(input.shape[2]);
const bytes = await readFile(inputPath);
const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
const count = data.length / (3 * size * size);
if (!Number.isInteger(count) || count < 1) {
  console.error(`${inputPath}: ${data.length} floats is not a whole number of [3,${size},${size}] images`);
  process.exit(2);
}
const results = await session.run({ [input.name]: new ort.Tensor("float32", data, [count, 3, size, size]) });
await mkdir(outDir, { recursive: true });
const shapes = {};
for (const [name, tensor] of Object.entries(results)) {
  const values = tensor.data;
  await writeFile(
    join(outDir, `${name}.f32`),
    Buffer.from(values.buffer, values.byteOffset, values.byteLength),
  );
  shapes[name] = tensor.dims;
}
await session.release();
console.log(JSON.stringify({ outputs: shapes }));
