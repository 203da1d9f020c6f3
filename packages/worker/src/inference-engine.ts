import { DynamicBatcher } from "./batcher.js";
import type { ModelOutput } from "./model-runtime.js";
import { rgbToTensor } from "./preprocess.js";
import type { StageObserver } from "./stage-timings.js";
import type { BatchModel } from "./threaded-model-runtime.js";

export interface InferenceEngineOptions {
  batchSize: number;
  maxBatchDelayMs: number;
  /** Batches running at once on the one session. @defaultValue 1 */
  maxConcurrentBatches?: number;
  observe?: StageObserver;
  /** Receives every batch's size (images) and inference time (seconds), for metrics. */
  onBatch?: (images: number, seconds: number) => void;
}

/**
 * The model behind a dynamic batcher: callers submit one image's model-sized RGB pixels each,
 * and images from every in-flight chunk share batches. The batch tensor is assembled (pixels
 * normalised straight into it) while the previous batch is still running, so the engine goes
 * straight from one inference to the next.
 */
export class InferenceEngine {
  readonly runtime: BatchModel;
  private readonly batcher: DynamicBatcher<Uint8Array, ModelOutput>;
  readonly batchSize: number;

  constructor(runtime: BatchModel, options: InferenceEngineOptions) {
    this.runtime = runtime;
    this.batchSize = options.batchSize;
    const elements = runtime.imageElements;
    this.batcher = new DynamicBatcher<Uint8Array, ModelOutput>({
      maxBatchSize: options.batchSize,
      maxDelayMs: options.maxBatchDelayMs,
      maxConcurrentBatches: options.maxConcurrentBatches ?? 1,
      runBatch: async (images) => {
        const input = new Float32Array(images.length * elements);
        for (const [i, rgb] of images.entries()) rgbToTensor(rgb, runtime.info, input, i * elements);
        const start = performance.now();
        const outputs = await runtime.run(input, images.length);
        // Per-image share of the batch's inference time, so stage sums stay per image.
        const seconds = (performance.now() - start) / 1000;
        const perImage = seconds / images.length;
        for (let i = 0; i < images.length; i++) options.observe?.("infer", perImage);
        options.onBatch?.(images.length, seconds);
        return outputs;
      },
    });
  }

  /**
   * Scores one image given as the model's input pixels (inputSize² RGB bytes, HWC, as
   * {@link prepareImage} returns them). A wrong size rejects this image only.
   */
  infer(rgb: Uint8Array): Promise<ModelOutput> {
    if (rgb.length !== this.runtime.imageElements) {
      return Promise.reject(
        new RangeError(`expected ${this.runtime.imageElements} RGB bytes per image, got ${rgb.length}`),
      );
    }
    return this.batcher.submit(rgb);
  }

  /** Batches run, images inferred, and engine busy time so far. */
  get stats(): { batches: number; items: number; busyMs: number; pending: number } {
    return { ...this.batcher.stats, busyMs: this.batcher.busyMs(), pending: this.batcher.pending };
  }

  /** Mean batch fill: images per inference ÷ batch size (1.0 = every batch full). */
  get meanBatchFill(): number {
    const { batches, items } = this.batcher.stats;
    return batches === 0 ? 0 : items / (batches * this.batchSize);
  }

  drain(): Promise<void> {
    return this.batcher.drain();
  }
}
