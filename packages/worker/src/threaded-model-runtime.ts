import { Worker } from "node:worker_threads";
import { type Logger, MemscoreError, ModelContractError, silentLogger } from "@memscore/shared";
import type { ThreadError, ThreadReply, ThreadRequest } from "./inference-thread-protocol.js";
import type { ModelInfo, ModelOutput, ModelRuntime, ModelRuntimeOptions } from "./model-runtime.js";

/** What the inference engine needs from a loaded model: {@link ModelRuntime} or {@link ThreadedModelRuntime}. */
export type BatchModel = Pick<ModelRuntime, "info" | "imageElements" | "run" | "close">;

// Run from sources (vitest), the thread still runs the built file: a worker thread cannot load
// TypeScript. `npm test` builds first.
const THREAD_ENTRY = import.meta.url.endsWith(".ts")
  ? new URL("../dist/inference-thread.js", import.meta.url)
  : new URL("./inference-thread.js", import.meta.url);

function toError(error: ThreadError): Error {
  if (error.code === "model_contract") return new ModelContractError(error.message);
  if (error.code) return new MemscoreError(error.code, error.message);
  const plain = new Error(error.message);
  plain.name = error.name;
  return plain;
}

/**
 * A {@link ModelRuntime} that lives in its own worker thread. onnxruntime-node runs a session
 * synchronously on the calling thread, so in the main thread every batch would stop fetches,
 * decodes, renders and puts for its whole duration (measured: the event loop's longest gap
 * equals the batch time); here the main thread keeps feeding the batcher while a batch runs.
 * Input tensors are transferred, not copied.
 */
export class ThreadedModelRuntime implements BatchModel {
  readonly info: ModelInfo;
  private readonly thread: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (o: ModelOutput[]) => void; reject: (e: unknown) => void }
  >();
  private nextId = 0;
  private closed?: Promise<void>;

  private constructor(info: ModelInfo, thread: Worker) {
    this.info = info;
    this.thread = thread;
  }

  /** Starts the thread and loads the model in it; rejects as {@link ModelRuntime.load} would. */
  static async load(path: string, options: ModelRuntimeOptions = {}): Promise<ThreadedModelRuntime> {
    const logger: Logger = options.logger ?? silentLogger;
    const thread = new Worker(THREAD_ENTRY, {
      workerData: {
        path,
        provider: options.provider ?? "auto",
        cudaDeviceId: options.cudaDeviceId,
        intraOpThreads: options.intraOpThreads,
        threadSpinning: options.threadSpinning,
      },
    });
    let runtime: ThreadedModelRuntime | undefined;
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      thread.on("message", (reply: ThreadReply) => {
        switch (reply.kind) {
          case "log":
            logger[reply.level](reply.message, reply.fields);
            break;
          case "loaded":
            resolve(reply.info);
            break;
          case "load-failed":
            reject(toError(reply.error));
            break;
          default:
            runtime?.settle(reply);
        }
      });
      thread.on("error", (error) => {
        reject(error);
        runtime?.failAll(error);
      });
      thread.on("exit", (code) => {
        const error = new Error(`inference thread exited with code ${code}`);
        reject(error);
        runtime?.failAll(error);
      });
    }).catch(async (error: unknown) => {
      await thread.terminate();
      throw error;
    });
    runtime = new ThreadedModelRuntime(info, thread);
    return runtime;
  }

  /** Elements of one preprocessed image: 3 × inputSize × inputSize. */
  get imageElements(): number {
    return 3 * this.info.inputSize * this.info.inputSize;
  }

  /** Runs one batch in the thread. `input` is transferred: the caller must not use it afterwards. */
  run(input: Float32Array, count: number): Promise<ModelOutput[]> {
    if (count < 1 || input.length !== count * this.imageElements) {
      return Promise.reject(
        new RangeError(
          `expected ${count} images of ${this.imageElements} floats, got ${input.length} floats`,
        ),
      );
    }
    if (this.closed) return Promise.reject(new Error("model runtime is closed"));
    const id = this.nextId++;
    return new Promise<ModelOutput[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const request: ThreadRequest = { kind: "run", id, input, count };
      this.thread.postMessage(request, [input.buffer as ArrayBuffer]);
    });
  }

  /** Releases the session and ends the thread. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.thread.once("exit", () => resolve());
      const request: ThreadRequest = { kind: "close" };
      this.thread.postMessage(request);
      // A thread that does not end by itself (a stuck native call) is ended for it.
      setTimeout(() => void this.thread.terminate(), 5_000).unref();
    });
    return this.closed;
  }

  private settle(reply: ThreadReply): void {
    if (reply.kind !== "ran" && reply.kind !== "run-failed") return;
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if (reply.kind === "run-failed") {
      waiter.reject(toError(reply.error));
      return;
    }
    const cells = this.info.gridSize * this.info.gridSize;
    const outputs: ModelOutput[] = [];
    for (let i = 0; i < reply.scores.length; i++) {
      outputs.push({
        score: reply.scores[i] as number,
        gradcam: reply.gradcams.slice(i * cells, (i + 1) * cells),
      });
    }
    waiter.resolve(outputs);
  }

  private failAll(error: unknown): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}
