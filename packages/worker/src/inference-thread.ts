/**
 * Entry of the inference thread (see threaded-model-runtime.ts). onnxruntime-node's
 * `session.run` is synchronous on the calling thread, so in the main thread it would stall
 * fetch, decode, render and put for the whole of every batch; here it stalls only this thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ExecutionProviderChoice, LogFields, Logger } from "@memscore/shared";
import type { ThreadReply, ThreadRequest } from "./inference-thread-protocol.js";
import { ModelRuntime } from "./model-runtime.js";

interface ThreadInit {
  path: string;
  provider: ExecutionProviderChoice;
  cudaDeviceId?: number;
  intraOpThreads?: number;
  threadSpinning?: boolean;
}

const port = parentPort;
if (!port) throw new Error("inference-thread.js must run as a worker thread");
const post = (reply: ThreadReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

/** Log lines go to the main thread's logger. */
const forwardingLogger = (base: LogFields = {}): Logger => {
  const log =
    (level: "debug" | "info" | "warn" | "error") =>
    (message: string, fields: LogFields = {}) =>
      post({ kind: "log", level, message, fields: { ...base, ...fields } });
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (fields) => forwardingLogger({ ...base, ...fields }),
  };
};

const errorReply = (error: unknown) => ({
  name: error instanceof Error ? error.name : "Error",
  code: (error as { code?: unknown }).code as string | undefined,
  message: error instanceof Error ? error.message : String(error),
});

const init = workerData as ThreadInit;
let runtime: ModelRuntime | undefined;
try {
  runtime = await ModelRuntime.load(init.path, {
    provider: init.provider,
    ...(init.cudaDeviceId !== undefined && { cudaDeviceId: init.cudaDeviceId }),
    ...(init.intraOpThreads !== undefined && { intraOpThreads: init.intraOpThreads }),
    ...(init.threadSpinning !== undefined && { threadSpinning: init.threadSpinning }),
    logger: forwardingLogger(),
  });
  post({ kind: "loaded", info: runtime.info });
} catch (error) {
  post({ kind: "load-failed", error: errorReply(error) });
}

port.on("message", async (request: ThreadRequest) => {
  if (request.kind === "close") {
    await runtime?.close();
    port.close();
    return;
  }
  try {
    if (!runtime) throw new Error("model not loaded");
    const outputs = await runtime.run(request.input, request.count);
    const scores = Float32Array.from(outputs, (o) => o.score);
    const cells = outputs[0]?.gradcam.length ?? 0;
    const gradcams = new Float32Array(outputs.length * cells);
    for (const [i, o] of outputs.entries()) gradcams.set(o.gradcam, i * cells);
    post({ kind: "ran", id: request.id, scores, gradcams }, [scores.buffer, gradcams.buffer]);
  } catch (error) {
    post({ kind: "run-failed", id: request.id, error: errorReply(error) });
  }
});
