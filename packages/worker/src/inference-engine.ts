import { MessageChannel, type MessagePort } from "node:worker_threads";
import {
  type BatchPadding,
  type ExecutionProviderChoice,
  type Logger,
  type MemscoreConfig,
  silentLogger,
} from "@memscore/shared";
import type {
  ConnectMessage,
  InferenceEvent,
  InferenceReady,
  InferenceThreadInit,
} from "./inference-protocol.js";
import type { ModelInfo } from "./model-runtime.js";
import { type StartedThread, startThread, threadEntry } from "./thread-channel.js";

export interface InferenceEngineOptions {
  provider?: ExecutionProviderChoice;
  /** GPU of the cuda provider. @defaultValue 0 */
  cudaDeviceId?: number;
  /** ONNX Runtime intra-op threads. @defaultValue ONNX Runtime's own default (all cores) */
  intraOpThreads?: number;
  /** ONNX Runtime threads busy-wait between operators. @defaultValue false */
  threadSpinning?: boolean;
  /** Largest batch. */
  batchSize: number;
  /** How long a partial batch waits for more images. */
  maxBatchDelayMs: number;
  /** Pad partial batches to a few fixed shapes (MemscoreConfig.padBatches). @defaultValue "auto" */
  padBatches?: BatchPadding;
  /** Receives every batch's size (images) and inference time (seconds), for metrics. */
  onBatch?: (images: number, seconds: number) => void;
  logger?: Logger;
}

/** The engine a config asks for: provider, device, ONNX Runtime threads and batching. */
export function engineOptions(
  config: MemscoreConfig,
  extra: Pick<InferenceEngineOptions, "onBatch" | "logger"> = {},
): InferenceEngineOptions {
  return {
    provider: config.provider,
    cudaDeviceId: config.cudaDeviceId,
    intraOpThreads: config.intraOpThreads,
    threadSpinning: config.ortThreadSpinning,
    batchSize: config.batchSize,
    maxBatchDelayMs: config.maxBatchDelayMs,
    padBatches: config.padBatches,
    ...extra,
  };
}

/** Engine counters, as of the last batch. */
export interface EngineStats {
  batches: number;
  items: number;
  /** Milliseconds during which a batch was running. */
  busyMs: number;
  /** Rows run beyond the images, to keep to the padded batch shapes: work done for nothing. */
  paddedRows: number;
  /** Images waiting for a batch. */
  pending: number;
}

/**
 * The model behind a dynamic batcher, in its own thread (inference-thread.ts): one session,
 * fed by every pipeline thread through a port of its own ({@link connect}), so images from all
 * chunks in flight share batches while this (main) thread does none of the work. The main
 * thread sees the engine through its batch events: counters for metrics and benchmarks, and
 * how long the running batch has taken (the watchdog's input).
 */
export class InferenceEngine {
  readonly info: ModelInfo;
  readonly batchSize: number;
  /** The inference thread's OS thread id (Linux only), for CPU accounting by thread. */
  readonly threadId: number | undefined;
  private readonly thread: StartedThread<InferenceReady>;
  private latest: EngineStats = { batches: 0, items: 0, busyMs: 0, paddedRows: 0, pending: 0 };
  private runningSince: number | undefined;

  private constructor(thread: StartedThread<InferenceReady>, batchSize: number) {
    this.thread = thread;
    this.info = thread.ready.info;
    this.threadId = thread.ready.threadId;
    this.batchSize = batchSize;
  }

  /** Starts the thread and loads the model in it; rejects as {@link ModelRuntime.load} would. */
  static async start(path: string, options: InferenceEngineOptions): Promise<InferenceEngine> {
    let engine: InferenceEngine | undefined;
    const init: InferenceThreadInit = {
      path,
      provider: options.provider ?? "auto",
      cudaDeviceId: options.cudaDeviceId,
      intraOpThreads: options.intraOpThreads,
      threadSpinning: options.threadSpinning,
      batchSize: options.batchSize,
      maxBatchDelayMs: options.maxBatchDelayMs,
      padBatches: options.padBatches ?? "auto",
    };
    const thread = await startThread<InferenceReady, InferenceEvent>(
      threadEntry("inference-thread.js", import.meta.url),
      {
        name: "memscore-inference",
        workerData: init,
        logger: options.logger ?? silentLogger,
        onEvent: (event) => {
          if (!engine) return;
          if (event.type === "batch-started") {
            engine.runningSince = performance.now();
            return;
          }
          engine.runningSince = undefined;
          engine.latest = {
            batches: event.batches,
            items: event.items,
            busyMs: event.busyMs,
            paddedRows: event.paddedRows,
            pending: event.pending,
          };
          options.onBatch?.(event.images, event.seconds);
        },
      },
    );
    engine = new InferenceEngine(thread, options.batchSize);
    return engine;
  }

  /** Elements of one preprocessed image: 3 × inputSize × inputSize. */
  get imageElements(): number {
    return 3 * this.info.inputSize * this.info.inputSize;
  }

  /**
   * A new port into the engine for one client thread: {@link InferenceClient} on the returned
   * end sends images and receives their outputs, with no hop through the main thread.
   */
  connect(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.thread.worker.postMessage({ kind: "connect", port: port2 } satisfies ConnectMessage, [port2]);
    return port1;
  }

  /** Counters as of the last finished batch. */
  get stats(): EngineStats {
    return { ...this.latest };
  }

  /** Mean batch fill: images per inference ÷ batch size (1.0 = every batch full). */
  get meanBatchFill(): number {
    const { batches, items } = this.latest;
    return batches === 0 ? 0 : items / (batches * this.batchSize);
  }

  /** How long the batch running now has been running, in ms; 0 when none runs. */
  runningBatchMs(now = performance.now()): number {
    return this.runningSince === undefined ? 0 : now - this.runningSince;
  }

  /** Resolves with what ended the thread (it crashed, or was closed). */
  get ended(): Promise<Error> {
    return this.thread.ended;
  }

  /** Ends the thread after the batch it is running (terminated if it does not end within 5 s). */
  close(): Promise<void> {
    return this.thread.close();
  }
}
