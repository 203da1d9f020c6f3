/**
 * The model input's normalisation kernel: tensor.wat, compiled into tensor-wasm.ts, loaded once
 * per thread, fed by rgbToTensor (preprocess.ts, which defines the arithmetic).
 */
import { TENSOR_WASM_BASE64 } from "./tensor-wasm.js";
import { instantiateKernel, type KernelMemory, reserveMemory } from "./wasm-kernel.js";

/** Per channel (R, G, B): the scale, then the shift, of value = byte · scale + shift. */
export type ChannelAffine = [number, number, number, number, number, number];

interface TensorKernel {
  memory: KernelMemory;
  toPlanes(rgb: number, pixels: number, out: number, ...affine: ChannelAffine): void;
}

let kernel: TensorKernel | undefined;

/**
 * HWC RGB bytes into three float32 planes of `out` from `offset`, four values at a time: 0.29
 * CPU-ms per 224² image in a JavaScript loop, 0.10 here with the copies in and out (both into a
 * reused tensor). The same float64 operations, so the same bits.
 */
export function normaliseRgb(
  rgb: Uint8Array,
  affine: ChannelAffine,
  out: Float32Array,
  offset: number,
): void {
  kernel ??= instantiateKernel<TensorKernel>(TENSOR_WASM_BASE64);
  const pixels = rgb.length / 3;
  // The pixels first, then the planes, each with the 16 bytes the kernel may run past its end.
  const planesAt = (rgb.length + 16 + 15) & ~15;
  const memory = reserveMemory(kernel.memory, planesAt + pixels * 12 + 16);
  new Uint8Array(memory, 0, rgb.length).set(rgb);
  kernel.toPlanes(0, pixels, planesAt, ...affine);
  out.set(new Float32Array(memory, planesAt, pixels * 3), offset);
}
