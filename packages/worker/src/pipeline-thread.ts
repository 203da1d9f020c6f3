/**
 * Entry of a pipeline thread (see pipeline-pool.ts). Per-image work — S3 requests, decode,
 * resize, normalisation, the heatmap overlay and its encoding — runs here, beside other
 * pipeline threads, so a worker uses every core for it and its main thread keeps only the
 * per-chunk work. Each thread has its own S3 client and its own port into the inference engine.
 */
import { workerData } from "node:worker_threads";
import { Storage } from "@memscore/shared";
import sharp from "sharp";
import { InferenceClient } from "./inference-client.js";
import type {
  FileImageResult,
  ImageTask,
  PipelineReady,
  PipelineThreadInit,
  S3ImageResult,
} from "./pipeline-protocol.js";
import { ImageScorer } from "./score-image.js";
import { onCloseRequest, osThreadId, postStart, serveRequests, threadParentPort } from "./thread-channel.js";

const port = threadParentPort("pipeline-thread.js");
const init = workerData as PipelineThreadInit;

sharp.concurrency(init.settings.decodeThreads);
const storage = init.s3 ? new Storage(init.s3) : undefined;
const elements = 3 * init.model.inputSize * init.model.inputSize;
const inference = new InferenceClient(init.inference, elements);
const scorer = new ImageScorer(init.model, inference, init.settings, storage);

const server = serveRequests<ImageTask, S3ImageResult | FileImageResult>(port, async (task) => ({
  body: task.kind === "s3" ? await scorer.scoreS3(task) : await scorer.scoreFile(task),
}));

// Close only once the images already handed to this thread have replied.
onCloseRequest(port, async () => {
  await server.idle();
  inference.close();
  storage?.close();
  port.close();
});

postStart<PipelineReady>(port, { type: "ready", ready: { threadId: osThreadId() } });
