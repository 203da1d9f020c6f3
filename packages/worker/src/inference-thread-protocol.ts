import type { LogFields } from "@memscore/shared";
import type { ModelInfo } from "./model-runtime.js";

/** Main thread → inference thread. */
export type ThreadRequest =
  | { kind: "run"; id: number; input: Float32Array; count: number }
  | { kind: "close" };

/** An error as it crosses the thread boundary (classes do not survive structured cloning). */
export interface ThreadError {
  name: string;
  code: string | undefined;
  message: string;
}

/** Inference thread → main thread. */
export type ThreadReply =
  | { kind: "loaded"; info: ModelInfo }
  | { kind: "load-failed"; error: ThreadError }
  | { kind: "ran"; id: number; scores: Float32Array; gradcams: Float32Array }
  | { kind: "run-failed"; id: number; error: ThreadError }
  | { kind: "log"; level: "debug" | "info" | "warn" | "error"; message: string; fields: LogFields };
