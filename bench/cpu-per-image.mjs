#!/usr/bin/env node
// CPU cost per image of every non-inference step of the worker, measured alone (one process,
// one libvips thread, CPU time not wall time, so other load on the machine matters less):
// header inspection; the one decode (≤1024 px: libjpeg-turbo through the worker's native codec,
// checked to give libvips' pixels, and libvips alone as before it) and the resize of its pixels
// to the model's input (the worker's WebAssembly Lanczos 3, and the sharp call it replaced),
// against the two decodes used before (one straight to 224 with shrink-on-load, one for the
// heatmap); the tensor; grid upsample + blend (the worker's fused loop and the two versions
// before it, checked to give identical bytes); JPEG encode (the default heatmap format, by the
// native codec and by libvips) and WebP (the other lossy one); PNG encode (the worker's encoder,
// checked lossless, against libvips by zlib level and filter).
//
//   node bench/cpu-per-image.mjs [--images 40] [--size 640x480] [--levels 1,3,4,6] [--json]
//                                [--dir DIR]   (JPEGs from DIR instead of the generated images)
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  decodeImage,
  decodeWithLibvips,
  encodeHeatmap,
  encodeRgbPng,
  inspectImage,
  jpegCodec,
  jpegCodecProblem,
  normaliseGrid,
  overlayHeatmap,
  resizePixels,
  rgbToTensor,
  toModelInput,
  upsampleGrid,
} from "@memscore/worker";
import sharp from "sharp";
import { TURBO_LUT } from "../packages/worker/dist/colormap.js";
import { benchArgs, countFlag, countListFlag, sizeFlag } from "./lib/args.mjs";
import { benchImages } from "./lib/bench-images.mjs";
import { describeMachine, printMachine } from "./lib/machine.mjs";

const { values } = benchArgs({
  options: {
    images: { type: "string", default: "40" },
    size: { type: "string", default: "640x480" },
    levels: { type: "string", default: "1,3,4,6" },
    dir: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
sharp.concurrency(1);
const { width, height } = sizeFlag("size", values.size);
const { dir, files } = values.dir
  ? { dir: values.dir, files: (await readdir(values.dir)).filter((f) => /\.jpe?g$/i.test(f)).sort() }
  : await benchImages(countFlag("images", values.images, "images"), width, height);
const bodies = await Promise.all(files.map((f) => readFile(join(dir, f))));
const cam = Float32Array.from({ length: 49 }, (_, i) => (i * 7919) % 13);
const limits = { maxPixels: 1e8 };
const meta = { inputSize: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** The worker's one decode (prepareImage), as { data, info } like sharp's own results. */
const decodeOnce = async (body) => {
  const { data, width, height } = await decodeImage(body, 1024, limits);
  return { data, info: { width, height } };
};

/** The model's own decode before decoding once: straight to 224 with shrink-on-load. */
const previousModelDecode = (body) =>
  sharp(body, { limitInputPixels: 1e8, failOn: "error", sequentialRead: true })
    .rotate()
    .flatten({ background: "#ffffff" })
    .toColourspace("srgb")
    .resize(224, 224, { fit: "fill", kernel: "lanczos3" })
    .removeAlpha()
    .raw({ depth: "uchar" })
    .toBuffer();

/** The per-pixel loops renderHeatmap used before (reference for speed and for identical output). */
function legacyOverlay(data, gradcam, gridSize, w, h, alpha = 0.5) {
  const grid = normaliseGrid(gradcam);
  const heat = new Float32Array(w * h);
  const sx = gridSize / w;
  const sy = gridSize / h;
  for (let y = 0; y < h; y++) {
    const gy = Math.min(gridSize - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(gy);
    const y1 = Math.min(gridSize - 1, y0 + 1);
    const fy = gy - y0;
    for (let x = 0; x < w; x++) {
      const gx = Math.min(gridSize - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(gx);
      const x1 = Math.min(gridSize - 1, x0 + 1);
      const fx = gx - x0;
      const top = grid[y0 * gridSize + x0] * (1 - fx) + grid[y0 * gridSize + x1] * fx;
      const bottom = grid[y1 * gridSize + x0] * (1 - fx) + grid[y1 * gridSize + x1] * fx;
      heat[y * w + x] = top * (1 - fy) + bottom * fy;
    }
  }
  const out = Buffer.allocUnsafe(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const level = Math.round(heat[i] * 255) * 3;
    for (let c = 0; c < 3; c++) {
      out[i * 3 + c] = Math.round(data[i * 3 + c] * (1 - alpha) + TURBO_LUT[level + c] * alpha);
    }
  }
  return out;
}

/** The overlay before it was fused: upsample the whole grid, then blend with the same table. */
const table = new Uint8Array(65536);
for (let d = 0; d < 256; d++)
  for (let c = 0; c < 256; c++) table[d * 256 + c] = Math.round(d * 0.5 + c * 0.5);
function upsampleThenBlend(data, gradcam, gridSize, w, h) {
  const heat = upsampleGrid(normaliseGrid(gradcam), gridSize, w, h);
  const out = Buffer.allocUnsafe(w * h * 3);
  for (let i = 0, p = 0; i < heat.length; i++, p += 3) {
    const level = Math.round(heat[i] * 255) * 3;
    out[p] = table[(data[p] << 8) | TURBO_LUT[level]];
    out[p + 1] = table[(data[p + 1] << 8) | TURBO_LUT[level + 1]];
    out[p + 2] = table[(data[p + 2] << 8) | TURBO_LUT[level + 2]];
  }
  return out;
}

if (!jpegCodec) console.error(`note: ${jpegCodecProblem}; both decode rows below are libvips`);
const decoded = [];
for (const [i, body] of bodies.entries()) {
  decoded.push(await decodeOnce(body));
  // The worker's decode must be libvips' pixels, whichever library made them.
  if (!(await decodeWithLibvips(body, 1024, limits)).data.equals(decoded[i].data))
    throw new Error(`decode of image ${i} differs from libvips'`);
}
const grid = normaliseGrid(cam);
const overlays = decoded.map(({ data, info }) => overlayHeatmap(data, info.width, info.height, grid, 7));
for (const [i, { data, info }] of decoded.entries()) {
  const overlay = overlays[i] ?? Buffer.alloc(0);
  if (!legacyOverlay(data, cam, 7, info.width, info.height).equals(overlay))
    throw new Error(`overlay of image ${i} differs from the per-pixel loops`);
  if (!upsampleThenBlend(data, cam, 7, info.width, info.height).equals(overlay))
    throw new Error(`overlay of image ${i} differs from upsample-then-blend`);
  // The worker's PNG encoder is lossless: decoding its file gives the overlay's pixels back.
  const png = await encodeRgbPng(overlay, info.width, info.height);
  const back = await sharp(png).raw().toBuffer();
  if (!back.equals(overlay)) throw new Error(`PNG of image ${i} does not decode to its pixels`);
}

/** CPU ms per image of `fn` over every image; round 0 warms up, round 1 is reported. */
async function cpuPerImage(fn) {
  let result;
  for (const round of [0, 1]) {
    let bytes = 0;
    const cpu = process.cpuUsage();
    for (let i = 0; i < bodies.length; i++) bytes += (await fn(i)) ?? 0;
    const used = process.cpuUsage(cpu);
    if (round === 1)
      result = { cpuMs: (used.user + used.system) / 1000 / bodies.length, kB: bytes / 1024 / bodies.length };
  }
  return result;
}

const rows = [];
const add = async (name, fn) => rows.push({ name, ...(await cpuPerImage(fn)) });
await add("inspect (header)", async (i) => void (await inspectImage(bodies[i], limits)));
await add("decode (≤1024 px): the one decode now", async (i) => void (await decodeOnce(bodies[i])));
await add(
  "before: the same decode by libvips alone",
  async (i) => void (await decodeWithLibvips(bodies[i], 1024, limits)),
);
await add("model input: resize those pixels to 224 (wasm)", async (i) => {
  const { data, info } = decoded[i];
  const geometry = { inputSize: 224, resize: { kind: "stretch" }, resizeKernel: "lanczos3" };
  void (await toModelInput({ data, width: info.width, height: info.height }, geometry));
});
await add("before: the same resize by a sharp call", async (i) => {
  const { data, info } = decoded[i];
  void (await resizePixels({ data, width: info.width, height: info.height }, 224, 224, "fill"));
});
await add("before: the model's own decode to 224", async (i) => void (await previousModelDecode(bodies[i])));
const modelRgb = await previousModelDecode(bodies[0]);
// Into a reused tensor, as the worker fills the inference client's spare tensors.
const tensor = new Float32Array(3 * 224 * 224);
await add("rgbToTensor", async () => void rgbToTensor(modelRgb, meta, tensor));
await add("overlay, per-pixel loops (first version)", async (i) => {
  const { data, info } = decoded[i];
  legacyOverlay(data, cam, 7, info.width, info.height);
});
await add("overlay, upsample then blend table (second)", async (i) => {
  const { data, info } = decoded[i];
  upsampleThenBlend(data, cam, 7, info.width, info.height);
});
// The worker draws in place on the decoded pixels (renderHeatmap): no frame-sized allocation.
const canvases = decoded.map(({ data }) => Buffer.from(data));
await add("overlay, heatmap.ts now (in place)", async (i) => {
  const { info } = decoded[i];
  overlayHeatmap(canvases[i], info.width, info.height, normaliseGrid(cam), 7, canvases[i]);
});
for (const format of ["jpeg", "webp"]) {
  await add(`${format.toUpperCase()} encode q85 (encodeHeatmap)`, async (i) => {
    const { info } = decoded[i];
    return (await encodeHeatmap(overlays[i], info.width, info.height, format, 85)).length;
  });
}
await add("before: JPEG encode q85 by libvips", async (i) => {
  const { info } = decoded[i];
  const raw = { width: info.width, height: info.height, channels: 3 };
  return (await sharp(overlays[i], { raw }).jpeg({ quality: 85, optimiseCoding: false }).toBuffer()).length;
});
await add("PNG encode, worker's (up filter + Z_RLE)", async (i) => {
  const { info } = decoded[i];
  return (await encodeRgbPng(overlays[i], info.width, info.height)).length;
});
for (const level of countListFlag("levels", values.levels, "compression levels", 0)) {
  for (const adaptiveFiltering of [false, true]) {
    await add(
      `PNG encode, libvips level ${level}${adaptiveFiltering ? ", adaptive filtering" : ""}`,
      async (i) => {
        const { info } = decoded[i];
        const png = await sharp(overlays[i], { raw: { width: info.width, height: info.height, channels: 3 } })
          .png({ compressionLevel: level, adaptiveFiltering })
          .toBuffer();
        return png.length;
      },
    );
  }
}
await add("record JSON (grid rows + stringify)", async () => {
  const g = normaliseGrid(cam);
  const gradcam = Array.from({ length: 7 }, (_, r) =>
    Array.from(g.subarray(r * 7, r * 7 + 7), (v) => Math.round(v * 1e6) / 1e6),
  );
  return JSON.stringify({ uri: "s3://bench-in/run/img-00000.jpg", score: 0.5, gradcam }).length;
});

const cpu = (prefix) => rows.find((r) => r.name.startsWith(prefix))?.cpuMs ?? 0;
// Before: the heatmap's decode by libvips plus the model's own.
const twoDecodes = cpu("before: the same decode by libvips") + cpu("before: the model");
const oneDecode = cpu("decode (") + cpu("model input");
if (values.json) {
  console.log(
    JSON.stringify(
      { benchmark: "cpu-per-image", machine: describeMachine(), rows, twoDecodes, oneDecode },
      null,
      2,
    ),
  );
} else {
  const what = values.dir ? `from ${values.dir}` : `of ${width}x${height}`;
  console.log(`inputs: ${bodies.length} images ${what}; one libvips thread; CPU ms per image`);
  printMachine(describeMachine());
  console.log(
    "  decode output: the worker's pixels are libvips' on every image; overlay output: identical bytes from all three overlays on every image; every PNG decodes to its pixels",
  );
  for (const r of rows) {
    console.log(
      `  ${r.name.padEnd(46)} ${r.cpuMs.toFixed(2).padStart(7)} ms${r.kB ? `  ${r.kB.toFixed(0).padStart(5)} kB` : ""}`,
    );
  }
  console.log(
    `  decoding: before, two decodes (model + heatmap) ${twoDecodes.toFixed(2)} ms; now, one decode + resize ${oneDecode.toFixed(2)} ms`,
  );
}
