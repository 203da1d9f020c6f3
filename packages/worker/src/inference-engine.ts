import { DynamicBatcher } from "./batcher.js";
import type { ModelOutput } from "./model-runtime.js";
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
 * The model behind a dynamic batcher: callers submit one preprocessed image each, and images
 * from every in-flight chunk share batches. The batch tensor is assembled while the previous
 * batch is still running, so the engine goes straight from one inference to the next.
 */
export class InferenceEngine {
  readonly runtime: BatchModel;
  private readonly batcher: DynamicBatcher<Float32Array, ModelOutput>;
  readonly batchSize: number;

  constructor(runtime: BatchModel, options: InferenceEngineOptions) {
    this.runtime = runtime;
    this.batchSize = options.batchSize;
    const elements = runtime.imageElements;
    this.batcher = new DynamicBatcher<Float32Array, ModelOutput>({
      maxBatchSize: options.batchSize,
      maxDelayMs: options.maxBatchDelayMs,
      maxConcurrentBatches: options.maxConcurrentBatches ?? 1,
      runBatch: async (tensors) => {
        const input = new Float32Array(tensors.length * elements);
        for (const [i, t] of tensors.entries()) input.set(t, i * elements);
        const start = performance.now();
        const outputs = await runtime.run(input, tensors.length);
        // Per-image share of the batch's inference time, so stage sums stay per image.
        const seconds = (performance.now() - start) / 1000;
        const perImage = seconds / tensors.length;
        for (let i = 0; i < tensors.length; i++) options.observe?.("infer", perImage);
        options.onBatch?.(tensors.length, seconds);
        return outputs;
      },
    });
  }

  /** Scores one preprocessed image (a CHW tensor of the model's input size). */
  infer(tensor: Float32Array): Promise<ModelOutput> {
    return this.batcher.submit(tensor);
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
