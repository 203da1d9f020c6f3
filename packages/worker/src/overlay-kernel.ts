/**
 * The heatmap overlay's per-pixel kernel: overlay.wat, compiled into overlay-wasm.ts, loaded once
 * per thread (each thread has its own instance and memory), fed by heatmap.ts.
 */
import { TURBO_LUT } from "./colormap.js";
import { OVERLAY_WASM_BASE64 } from "./overlay-wasm.js";
import { instantiateKernel, type KernelMemory, reserveMemory } from "./wasm-kernel.js";

interface OverlayKernel {
  memory: KernelMemory;
  blendRow(top: number, bottom: number, fy: number, colour: number, pixels: number, width: number): void;
}

/** Where blendRows puts things in the kernel's memory (overlay.wat): Turbo first, 1 KiB. */
const KERNEL_ALONG_AT = 1024;

let kernel: OverlayKernel | undefined;

/** The overlay kernel (overlay.wat), compiled and given the Turbo table once per thread. */
function overlayKernel(): OverlayKernel {
  if (!kernel) {
    kernel = instantiateKernel<OverlayKernel>(OVERLAY_WASM_BASE64);
    const words = new Uint8Array(kernel.memory.buffer, 0, KERNEL_ALONG_AT);
    for (let level = 0; level < 256; level++)
      words.set(TURBO_LUT.subarray(level * 3, level * 3 + 3), level * 4);
  }
  return kernel;
}

/**
 * The heatmap blend of every row of an image, in WebAssembly with SIMD (overlay.wat): heat
 * levels two pixels at a time, the average sixteen bytes at a time. `along[r]` is grid row r
 * interpolated at every column; row y blends rows lo[y] and hi[y] with weight w[y]. A byte-wise
 * JavaScript loop took 1.3–1.4 CPU-ms per 640×480 image, a word-wide one 1.3, this about 0.55
 * with the copies in and out (bench/cpu-per-image.mjs, in place); the same arithmetic, so the
 * same bytes.
 */
export function blendRows(
  rgb: Uint8Array,
  width: number,
  height: number,
  along: Float64Array[],
  rows: { lo: Int32Array; hi: Int32Array; w: Float64Array },
  out: Uint8Array,
): void {
  const wasm = overlayKernel();
  const rowBytes = width * 3;
  const colourAt = KERNEL_ALONG_AT + along.length * width * 8;
  const pixelsAt = colourAt + rowBytes + 16;
  const needed = pixelsAt + rowBytes * height;
  const memory = reserveMemory(wasm.memory, needed);
  const alongRows = new Float64Array(memory, KERNEL_ALONG_AT, along.length * width);
  for (const [r, line] of along.entries()) alongRows.set(line, r * width);
  const pixels = new Uint8Array(memory, pixelsAt, rowBytes * height);
  pixels.set(rgb);
  for (let y = 0; y < height; y++) {
    wasm.blendRow(
      KERNEL_ALONG_AT + (rows.lo[y] as number) * width * 8,
      KERNEL_ALONG_AT + (rows.hi[y] as number) * width * 8,
      rows.w[y] as number,
      colourAt,
      pixelsAt + y * rowBytes,
      width,
    );
  }
  out.set(pixels);
}
