import { Worker } from "node:worker_threads";
import { ImageError, type ImageErrorReason, MemscoreError } from "@memscore/shared";
import { type HeatmapOptions, renderHeatmap } from "./heatmap.js";
import type { RgbImage } from "./preprocess.js";
import type { RenderReply, RenderRequest } from "./render-protocol.js";

/**
 * Renders one image's heatmap overlay PNG on its decoded pixels (see heatmap.ts for what it
 * draws). The pixels may be drawn on: callers pass pixels they no longer need.
 */
export type HeatmapRenderer = (
  image: RgbImage,
  gradcam: Float32Array,
  gridSize: number,
  options?: HeatmapOptions,
) => Promise<Buffer>;

// Tests run the TypeScript sources; the thread itself always runs the built JavaScript.
const THREAD_ENTRY = import.meta.url.endsWith(".ts")
  ? new URL("../dist/render-thread.js", import.meta.url)
  : new URL("./render-thread.js", import.meta.url);

interface Waiter {
  resolve: (png: Buffer) => void;
  reject: (error: unknown) => void;
}

/** Rebuilds a thread's error as the class the chunk pipeline sorts on (ImageError = permanent). */
function toError(error: Extract<RenderReply, { kind: "render-failed" }>["error"]): Error {
  if (error.name === "ImageError" && error.reason)
    return new ImageError(error.reason as ImageErrorReason, error.message);
  if (error.code) return new MemscoreError(error.code, error.message);
  const plain = new Error(error.message);
  plain.name = error.name;
  return plain;
}

/**
 * A fixed pool of render threads, used round-robin by least outstanding work. Pixels are copied
 * to the thread: buffers from sharp are not all transferable, and a copy costs far less than
 * the render.
 */
export class RenderPool {
  private readonly threads: { worker: Worker; waiters: Map<number, Waiter> }[];
  private nextId = 0;
  private closed?: Promise<void>;

  private constructor(size: number) {
    this.threads = Array.from({ length: size }, () => {
      const worker = new Worker(THREAD_ENTRY);
      const waiters = new Map<number, Waiter>();
      worker.on("message", (reply: RenderReply) => {
        const waiter = waiters.get(reply.id);
        if (!waiter) return;
        waiters.delete(reply.id);
        if (reply.kind === "rendered")
          waiter.resolve(Buffer.from(reply.png.buffer, reply.png.byteOffset, reply.png.byteLength));
        else waiter.reject(toError(reply.error));
      });
      const failAll = (error: Error) => {
        for (const waiter of waiters.values()) waiter.reject(error);
        waiters.clear();
      };
      worker.on("error", failAll);
      worker.on("exit", (code) => failAll(new Error(`render thread exited with code ${code}`)));
      return { worker, waiters };
    });
  }

  /**
   * A renderer for `threads` render threads; with 0 it renders on the calling (main) thread,
   * which is the simplest choice where a second thread would only compete for the same core.
   */
  static create(threads: number): { render: HeatmapRenderer; close: () => Promise<void> } {
    if (threads <= 0) return { render: renderHeatmap, close: async () => {} };
    const pool = new RenderPool(threads);
    return { render: (...args) => pool.render(...args), close: () => pool.close() };
  }

  render(
    image: RgbImage,
    gradcam: Float32Array,
    gridSize: number,
    options: HeatmapOptions = {},
  ): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error("render pool is closed"));
    const thread = this.threads.reduce((a, b) => (b.waiters.size < a.waiters.size ? b : a));
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      thread.waiters.set(id, { resolve, reject });
      const request: RenderRequest = {
        kind: "render",
        id,
        image: { data: image.data, width: image.width, height: image.height },
        gradcam,
        gridSize,
        options,
      };
      thread.worker.postMessage(request);
    });
  }

  /** Ends the threads after the renders they hold. Idempotent. */
  close(): Promise<void> {
    this.closed ??= Promise.all(
      this.threads.map(
        ({ worker }) =>
          new Promise<void>((resolve) => {
            worker.once("exit", () => resolve());
            worker.postMessage({ kind: "close" } satisfies RenderRequest);
            setTimeout(() => void worker.terminate(), 5_000).unref();
          }),
      ),
    ).then(() => {});
    return this.closed;
  }
}
