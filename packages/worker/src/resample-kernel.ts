/**
 * The model input's Lanczos 3 downsizing without a sharp call: resample.wat, compiled into
 * resample-wasm.ts, loaded once per thread, fed the same weight tables libvips builds, so the
 * output is byte for byte what `sharp(...).resize(w, h, { fit: "fill", kernel: "lanczos3" })`
 * gives (tested against sharp for every width and height from 224 to 1024). A sharp resize costs
 * about 0.75 CPU-ms per call whatever the image's size (pipeline set-up in libvips: an 8×8 image
 * costs as much); this costs what the arithmetic costs. Sizes it does not reproduce return
 * undefined and the caller asks sharp. The tables are those of the libvips that sharp bundles
 * (8.18); the test compares against sharp itself, so an upgrade that changes its resize fails.
 */
import type { RgbImage } from "./preprocess.js";
import { RESAMPLE_WASM_BASE64 } from "./resample-wasm.js";
import { instantiateKernel, type KernelMemory, reserveMemory } from "./wasm-kernel.js";

interface ResampleKernel {
  memory: KernelMemory;
  shrinkV2(src: number, rowBytes: number, outRows: number, dst: number): void;
  shrinkH2(src: number, pairs: number, dst: number): void;
  reduceV(
    src: number,
    rowBytes: number,
    dst: number,
    outRows: number,
    n: number,
    weights: number,
    rows: number,
  ): void;
  reduceH(
    src: number,
    width: number,
    rows: number,
    dst: number,
    outWidth: number,
    taps: number,
    weights: number,
    starts: number,
    padL: number,
    padR: number,
    scratch: number,
  ): void;
}

let kernel: ResampleKernel | undefined;

function resampleKernel(): ResampleKernel {
  kernel ??= instantiateKernel<ResampleKernel>(RESAMPLE_WASM_BASE64);
  return kernel;
}

/** libvips' fixed-point scale of weights (VIPS_INTERPOLATE_SHIFT 12) and its 64 sub-pixel phases. */
const WEIGHT_SCALE = 4096;
const PHASES = 64;

/** How many times 2 divides n (n > 0). */
function twos(n: number): number {
  let count = 0;
  for (let m = n; m % 2 === 0; m /= 2) count++;
  return count;
}

/** C's rint: halves go to the even neighbour. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const lanczos3 = (x: number) => (x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0);

/** Which pass an axis plan is for: reduceV takes taps in pairs, reduceH in fours. */
type Axis = "vertical" | "horizontal";

/**
 * One axis's resampling plan, built once per size and kept: the 2:1 box shrink first when libvips
 * does one, then the reduce's tables as the kernel takes them, so a call only copies them in.
 */
interface AxisPlan {
  box: boolean;
  /** Input length after the box shrink. */
  length: number;
  /** Weights per output sample, padded with zeros to the pass's multiple; 0 when no reduce. */
  taps: number;
  /** i16 weights, `taps` per output sample. */
  weights: Int16Array;
  /**
   * Vertical: each weight's input row, clamped at the edges (libvips extends an image by copying
   * its edge). Horizontal: each output's first input pixel, as a byte offset into the row padded
   * with `pad` copies of its first pixel (the kernel repeats the edges).
   */
  sources: Int32Array;
  pad: number;
}

const plans = new Map<string, AxisPlan | undefined>();

/**
 * libvips' plan for an axis of `length` samples reduced to `out`, or undefined where this kernel
 * does not reproduce it: upsizing, a box shrink other than 2:1 of an even length, or sizes where
 * an output sample's position can fall exactly on the boundary between two of the 64 phases, so
 * that only libvips' own floating-point rounding decides which mask it takes.
 */
function planAxis(length: number, out: number, axis: Axis): AxisPlan | undefined {
  const key = `${axis} ${length}/${out}`;
  if (plans.has(key)) return plans.get(key);
  if (plans.size > 256) plans.clear();
  const plan = makePlan(length, out, axis);
  plans.set(key, plan);
  return plan;
}

function makePlan(length: number, out: number, axis: Axis): AxisPlan | undefined {
  const none = {
    box: false,
    length,
    taps: 0,
    weights: new Int16Array(0),
    sources: new Int32Array(0),
    pad: 0,
  };
  if (out === length) return none;
  if (out > length) return undefined;
  // sharp asks vips_resize for a scale of 1 / (length / out); libvips inverts it back.
  let shrink = 1 / (1 / (length / out));
  // vips_reduce's gap of 2: an integer box shrink of ⌊shrink / 2⌋ first.
  const boxFactor = Math.max(1, Math.floor(shrink / 2));
  if (boxFactor > 2 || (boxFactor === 2 && length % 2 !== 0)) return undefined;
  const box = boxFactor === 2;
  // Output o sits at 128·position = 64·(2o + 1)·length ÷ (out·boxFactor), less an integer; it
  // is exactly an odd integer, a boundary between phases, for some o only when out·boxFactor
  // has six more factors of two than length (never for 224 or 227; for 256, when length is 4
  // modulo 8). Even integers and whole positions give the same weights either way.
  if (twos(out * boxFactor) === 6 + twos(length)) return undefined;
  if (box) shrink /= 2;
  const reduced = box ? length / 2 : length;
  if (shrink === 1) return { ...none, box, length: reduced };
  const n = 2 * rint(3 * shrink) + 1;
  // One mask per phase, as libvips tabulates them: weights normalised to sum 1, then scaled to
  // 4096 and truncated.
  const masks: number[][] = [];
  for (let t = 0; t <= PHASES; t++) {
    const x = Math.fround(t / PHASES);
    const half = x + n / 2 - 1;
    const raw: number[] = [];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const l = lanczos3((i - half) / shrink);
      raw.push(l);
      sum += l;
    }
    masks.push(raw.map((l) => Math.trunc((l / sum) * WEIGHT_SCALE)));
  }
  const taps = axis === "vertical" ? (n + 1) & ~1 : (n + 3) & ~3;
  const pad = axis === "vertical" ? 0 : (n >> 1) + 2;
  const weights = new Int16Array(out * taps);
  const sources = new Int32Array(axis === "vertical" ? out * taps : out);
  const back = (n >> 1) - 1;
  for (let o = 0; o < out; o++) {
    // The centre of output sample o in input coordinates, less one: libvips' origin.
    const position = (o + 0.5) * shrink - 1;
    const first = Math.floor(position) - back;
    const phase = ((Math.floor(position * PHASES * 2) & (PHASES * 2 - 1)) + 1) >> 1;
    weights.set(masks[phase] as number[], o * taps);
    if (axis === "horizontal") sources[o] = (first + pad) * 3;
    else for (let i = 0; i < taps; i++) sources[o * taps + i] = Math.min(reduced - 1, Math.max(0, first + i));
  }
  return { box, length: reduced, taps, weights, sources, pad };
}

/** Room every kernel function may read or write past the end of a buffer. */
const SLACK = 16;

/**
 * `image` resized to exactly width × height with Lanczos 3, as sharp's fill resize gives it, or
 * undefined where this kernel does not reproduce sharp (see planAxis): the caller uses sharp.
 */
export function resizeLanczos3(image: RgbImage, width: number, height: number): Buffer | undefined {
  const vertical = planAxis(image.height, height, "vertical");
  const horizontal = planAxis(image.width, width, "horizontal");
  if (!vertical || !horizontal) return undefined;
  const wasm = resampleKernel();

  // Layout: tables, then each stage's image, each followed by its slack.
  let at = 0;
  const take = (bytes: number) => {
    const start = at;
    at = (at + bytes + SLACK + 15) & ~15;
    return start;
  };
  const vWeightsAt = take(vertical.weights.byteLength);
  const vRowsAt = take(vertical.sources.byteLength);
  const hWeightsAt = take(horizontal.weights.byteLength);
  const hStartsAt = take(horizontal.sources.byteLength);
  const srcAt = take(image.data.length);
  const vBoxAt = vertical.box ? take(image.width * vertical.length * 3) : srcAt;
  const vOutAt = vertical.taps ? take(image.width * height * 3) : vBoxAt;
  const hBoxAt = horizontal.box ? take(horizontal.length * height * 3) : vOutAt;
  const dstAt = horizontal.taps ? take(width * height * 3) : hBoxAt;
  const padR = horizontal.taps + 8;
  const scratchAt = take((horizontal.pad + horizontal.length + padR + 2) * 3);
  const memory = reserveMemory(wasm.memory, at);

  new Uint8Array(memory, srcAt, image.data.length).set(image.data);
  const rowBytes = image.width * 3;
  if (vertical.box) wasm.shrinkV2(srcAt, rowBytes, vertical.length, vBoxAt);
  if (vertical.taps) {
    new Int16Array(memory, vWeightsAt, vertical.weights.length).set(vertical.weights);
    const rows = new Int32Array(memory, vRowsAt, vertical.sources.length);
    for (let i = 0; i < rows.length; i++) rows[i] = (vertical.sources[i] as number) * rowBytes;
    wasm.reduceV(vBoxAt, rowBytes, vOutAt, height, vertical.taps, vWeightsAt, vRowsAt);
  }
  if (horizontal.box) wasm.shrinkH2(vOutAt, (image.width / 2) * height, hBoxAt);
  if (horizontal.taps) {
    new Int16Array(memory, hWeightsAt, horizontal.weights.length).set(horizontal.weights);
    new Int32Array(memory, hStartsAt, horizontal.sources.length).set(horizontal.sources);
    wasm.reduceH(
      hBoxAt,
      horizontal.length,
      height,
      dstAt,
      width,
      horizontal.taps,
      hWeightsAt,
      hStartsAt,
      horizontal.pad,
      padR,
      scratchAt,
    );
  }
  return Buffer.from(new Uint8Array(memory, dstAt, width * height * 3));
}
