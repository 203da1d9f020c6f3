/**
 * What the worker's WebAssembly kernels (overlay.wat, resample.wat, tensor.wat) share: compiling
 * one from its base64 module, once per thread (each thread gets its own instance and memory),
 * and growing its memory to what a call needs.
 */

// WebAssembly is a global of Node.js that @types/node 20 leaves out (TypeScript's DOM lib has
// it): the little of it used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => unknown;
  Instance: new (module: unknown) => { exports: unknown };
};

/** A kernel's exported linear memory. */
export interface KernelMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The exports of a kernel module (`npm run wasm:build` writes each module's base64). */
export function instantiateKernel<T extends { memory: KernelMemory }>(base64: string): T {
  return new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(base64, "base64"))).exports as T;
}

/**
 * The kernel's memory, grown to at least `bytes`: once to the largest image a thread has
 * handled, then reused. Views made before a grow are detached, so take them after this.
 */
export function reserveMemory(memory: KernelMemory, bytes: number): ArrayBuffer {
  if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65_536));
  return memory.buffer;
}
