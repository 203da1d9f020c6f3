/**
 * Entry of the inference thread (see inference-engine.ts). It owns the model session and the
 * dynamic batcher: images arrive from every pipeline thread on ports of their own, share
 * batches, and each reply goes back on the port its image came from. onnxruntime-node runs a
 * session synchronously on the calling thread, so here a batch stalls only this thread; images
 * that arrive meanwhile queue up and make the next batch.
 */
import { workerData } from "node:worker_threads";
import { DynamicBatcher, paddedBatchShapes } from "./batcher.js";
import type {
  ConnectMessage,
  InferenceEvent,
  InferenceReady,
  InferenceThreadInit,
  InferReply,
  InferRequest,
} from "./inference-protocol.js";
import { type ModelOutput, ModelRuntime } from "./model-runtime.js";
import {
  forwardingLogger,
  onCloseRequest,
  osThreadId,
  postEvent,
  postStart,
  type RequestServer,
  serveRequests,
  threadParentPort,
  toThreadError,
} from "./thread-channel.js";

const port = threadParentPort("inference-thread.js");
const init = workerData as InferenceThreadInit;

let runtime: ModelRuntime;
try {
  runtime = await ModelRuntime.load(init.path, {
    provider: init.provider,
    ...(init.cudaDeviceId !== undefined && { cudaDeviceId: init.cudaDeviceId }),
    ...(init.intraOpThreads !== undefined && { intraOpThreads: init.intraOpThreads }),
    ...(init.threadSpinning !== undefined && { threadSpinning: init.threadSpinning }),
    logger: forwardingLogger(port),
  });
} catch (error) {
  postStart(port, { type: "failed", error: toThreadError(error) });
  port.close();
  throw error;
}

const elements = runtime.imageElements;
const padded = init.padBatches === "on" || (init.padBatches === "auto" && runtime.info.provider !== "cpu");
const shapes = padded ? paddedBatchShapes(init.batchSize) : undefined;
// The batch tensor, kept from batch to batch. A new one per batch (38 MB at 64 r50 images) is a
// fresh mapping whose pages fault in as the images are copied in: about 10,000 minor faults per
// batch of 64 against under 1,000 with the tensor kept (README, GPU), a cost that grows on VMs.
let batchTensor = new Float32Array(shapes ? init.batchSize * elements : 0);
if (shapes) {
  // Each shape once now (zeros, in the batch tensor), so that the provider's per-shape work
  // (cuDNN's convolution search on CUDA) happens before the first chunk rather than inside its
  // batches' time limit.
  const logger = forwardingLogger(port);
  const start = performance.now();
  for (const rows of shapes) await runtime.run(batchTensor.subarray(0, rows * elements), rows);
  logger.info("inference batches padded to fixed shapes", {
    provider: runtime.info.provider,
    shapes,
    warmUpMs: Math.round(performance.now() - start),
  });
}
let paddedRows = 0;

const batcher = new DynamicBatcher<Float32Array, ModelOutput & { seconds: number; input: Float32Array }>({
  maxBatchSize: init.batchSize,
  maxDelayMs: init.maxBatchDelayMs,
  runBatch: async (images) => {
    const rows = shapes?.find((s) => s >= images.length) ?? images.length;
    // One image is its own batch tensor; more are copied side by side (a memcpy each), and the
    // padding rows are zeroed.
    let input = images[0] as Float32Array;
    if (rows > 1) {
      if (batchTensor.length < rows * elements) batchTensor = new Float32Array(rows * elements);
      input = batchTensor.subarray(0, rows * elements);
      for (const [i, image] of images.entries()) input.set(image, i * elements);
      input.fill(0, images.length * elements);
    }
    postEvent<InferenceEvent>(port, { type: "batch-started", images: images.length });
    const start = performance.now();
    const outputs = await runtime.run(input, rows);
    const seconds = (performance.now() - start) / 1000;
    paddedRows += rows - images.length;
    // busyMs() counts the batch still marked running up to now: the totals include this batch.
    postEvent<InferenceEvent>(port, {
      type: "batch-done",
      images: images.length,
      seconds,
      ...batcher.stats,
      busyMs: batcher.busyMs(),
      paddedRows,
      pending: batcher.pending,
    });
    return outputs.slice(0, images.length).map((o, i) => ({
      ...o,
      seconds: seconds / images.length,
      input: images[i] as Float32Array,
    }));
  },
});

const clients: { port: ConnectMessage["port"]; server: RequestServer }[] = [];
port.on("message", (message: ConnectMessage | { kind: string }) => {
  if (message.kind !== "connect") return;
  const client = (message as ConnectMessage).port;
  const server = serveRequests<InferRequest, InferReply>(client, async ({ input }) => {
    if (input.length !== elements) {
      throw new RangeError(`expected ${elements} floats per image, got ${input.length}`);
    }
    const output = await batcher.submit(input);
    return {
      body: output,
      transfer: [output.gradcam.buffer as ArrayBuffer, output.input.buffer as ArrayBuffer],
    };
  });
  clients.push({ port: client, server });
});

onCloseRequest(port, async () => {
  // After the batch that may be running (a session released mid-run aborts the process), and
  // after what is queued: its senders are waiting for it.
  await batcher.flush();
  await Promise.all(clients.map(({ server }) => server.idle()));
  await runtime.close();
  for (const client of clients) client.port.close();
  port.close();
});

postStart<InferenceReady>(port, { type: "ready", ready: { info: runtime.info, threadId: osThreadId() } });
