import type { MessagePort } from "node:worker_threads";
import type { BatchPadding, ExecutionProviderChoice } from "@memscore/shared";
import type { ModelInfo } from "./model-runtime.js";

/** What the inference thread is started with. */
export interface InferenceThreadInit {
  path: string;
  provider: ExecutionProviderChoice;
  cudaDeviceId?: number | undefined;
  intraOpThreads?: number | undefined;
  threadSpinning?: boolean | undefined;
  batchSize: number;
  maxBatchDelayMs: number;
  padBatches: BatchPadding;
}

/** What the inference thread answers once its model is loaded. */
export interface InferenceReady {
  info: ModelInfo;
  /** The thread's OS thread id (Linux), for CPU accounting by thread. */
  threadId: number | undefined;
}

/** One image for the model: its normalised CHW float32 tensor, transferred (never copied). */
export interface InferRequest {
  input: Float32Array;
}

/** One image's model outputs. */
export interface InferReply {
  score: number;
  /** Raw Grad-CAM, row-major gridSize × gridSize. */
  gradcam: Float32Array;
  /** This image's share of its batch's inference time, in seconds. */
  seconds: number;
  /** The request's tensor, handed back (transferred) for the sender to fill with its next image. */
  input: Float32Array;
}

/** Events of the inference thread for the main thread (metrics, the watchdog). */
export type InferenceEvent =
  | { type: "batch-started"; images: number }
  | {
      type: "batch-done";
      images: number;
      seconds: number;
      /** Totals since the thread started. */
      batches: number;
      items: number;
      busyMs: number;
      /** Rows run beyond the images: padding (MEMSCORE_PAD_BATCHES). */
      paddedRows: number;
      /** Images waiting for the next batch. */
      pending: number;
    };

/** Main thread → inference thread: a port on which a pipeline thread will send images. */
export interface ConnectMessage {
  kind: "connect";
  port: MessagePort;
}
