import {
  type ConfigOverrides,
  createLogger,
  DEFAULT_DRAIN_TIMEOUT_MS,
  type StopOptions,
} from "@memscore/shared";
import { WorkerMetrics, WorkerService } from "@memscore/worker";
import { integerFlag, parseCommandArgs, resolveCommandConfig } from "../args.js";
import { startProcessOps } from "../process-ops.js";
import { installShutdownHandlers } from "../shutdown.js";

const HELP = `usage: memscore worker [options]

Pulls chunk jobs from the run queue, scores their images and writes outputs to S3.
Runs until SIGTERM/SIGINT: the first signal drains in-flight chunks (up to --shutdown-timeout),
a second one (or the deadline) stops at once and hands unfinished chunks back to the queue.

options:
  --concurrency N            chunk jobs in flight (MEMSCORE_CONCURRENCY, default 4)
  --batch-size B             images per inference (MEMSCORE_BATCH_SIZE, default 16)
  --max-batch-delay-ms MS    wait for a fuller batch at most this long (MEMSCORE_MAX_BATCH_DELAY_MS, default 20)
  --pad-batches auto|on|off  run partial batches as 1, 2, 4, … rows up to the batch size, each shape once at
                             start (MEMSCORE_PAD_BATCHES, default auto: on every provider but cpu)
  --provider NAME            auto | cpu | cuda | webgpu (MEMSCORE_PROVIDER, default auto)
  --cuda-device N            GPU of the cuda provider (MEMSCORE_CUDA_DEVICE_ID, default 0)
  --threads N                ONNX Runtime intra-op threads (MEMSCORE_INTRA_OP_THREADS, default: usable cores)
  --decode-threads N         libvips threads per decode/render (MEMSCORE_DECODE_THREADS, default 1)
  --pipeline-threads N       threads carrying images through fetch, decode, render and put, each with its
                             own S3 client (MEMSCORE_PIPELINE_THREADS, default: usable cores)
  --heatmap-quality Q        JPEG/WebP heatmap quality 1-100 (MEMSCORE_HEATMAP_QUALITY, default 85); the
                             heatmap format is the run's (memscore enqueue --heatmap-format)
  --max-images-in-flight N   images between fetch and put; bounds memory (MEMSCORE_MAX_IMAGES_IN_FLIGHT,
                             default max(4 × batch size, 32))
  --model PATH|s3://URI      model file (MEMSCORE_MODEL, default: the bundled untrained model)
  --queue NAME               queue name (MEMSCORE_QUEUE, default memscore)
  --inference-timeout-ms MS  a batch running longer means the engine is wedged: chunks go back to the
                             queue and /healthz fails (MEMSCORE_INFERENCE_TIMEOUT_MS, default 60000);
                             /healthz also fails while the model takes over MEMSCORE_MODEL_LOAD_TIMEOUT_MS
                             (default 600000) to load
  --shutdown-timeout MS      graceful drain deadline (default 30000)
  --lock-duration MS         how soon a crashed worker's chunks go to others (default 30000)
  --metrics-port N           port of /metrics, /healthz, /readyz (MEMSCORE_METRICS_PORT, default 9464;
                             0 picks a free one, logged); bind address: MEMSCORE_METRICS_HOST (127.0.0.1)

thread budget: inference runs in its own thread with --threads ONNX Runtime threads, fed straight
by --pipeline-threads pipeline threads; the main thread only takes chunk jobs and writes their
results. Decode and encode run on libuv's pool (UV_THREADPOOL_SIZE, default: the core count, at
least 4) with --decode-threads libvips threads each. Usable cores are the container's CPU limit
when it has one, else the core count. On a CPU-only machine keep --threads at the usable cores
and --decode-threads at 1 so image work does not crowd out inference.
ONNX Runtime's threads do not busy-wait between operators unless MEMSCORE_ORT_THREAD_SPINNING=true
(spinning is faster for inference alone and slower next to decode and rendering).`;

const FLAG_TO_CONFIG: Record<string, keyof ConfigOverrides> = {
  concurrency: "concurrency",
  "batch-size": "batchSize",
  "max-batch-delay-ms": "maxBatchDelayMs",
  "pad-batches": "padBatches",
  provider: "provider",
  "cuda-device": "cudaDeviceId",
  threads: "intraOpThreads",
  "decode-threads": "decodeThreads",
  "pipeline-threads": "pipelineThreads",
  "inference-timeout-ms": "inferenceTimeoutMs",
  "heatmap-quality": "heatmapQuality",
  "max-images-in-flight": "maxImagesInFlight",
  model: "model",
  queue: "queueName",
  "metrics-port": "metricsPort",
};

export async function workerCommand(args: string[]): Promise<number> {
  const options = Object.fromEntries(
    Object.keys(FLAG_TO_CONFIG).map((f) => [f, { type: "string" as const }]),
  );
  const parsed = parseCommandArgs(
    args,
    { ...options, "shutdown-timeout": { type: "string" }, "lock-duration": { type: "string" } },
    HELP,
  );
  if (!parsed) return 0;
  const config = resolveCommandConfig(parsed.values, FLAG_TO_CONFIG);
  const logger = createLogger({
    level: config.logLevel,
    format: config.logFormat,
    base: { pid: process.pid },
  });
  const shutdownTimeout =
    integerFlag(parsed.values, "shutdown-timeout", { min: 1, max: 24 * 3_600_000 }) ??
    DEFAULT_DRAIN_TIMEOUT_MS;
  const lockDurationMs =
    integerFlag(parsed.values, "lock-duration", { min: 1_000, max: 3_600_000 }) ?? 30_000;

  // Metrics/health first, so /readyz answers "loading model" while the model loads.
  let loaded: WorkerService | undefined;
  const loadStarted = Date.now();
  const ops = await startProcessOps(config, {
    connectionName: "memscore-worker-ops",
    logger,
    readiness: () => ({
      model: loaded === undefined ? "loading model" : loaded.isRunning || `worker ${loaded.state}`,
    }),
    liveness: () => {
      if (loaded) return loaded.health();
      const loading = Date.now() - loadStarted;
      return loading <= config.modelLoadTimeoutMs
        ? true
        : `the model has been loading for ${loading} ms (limit ${config.modelLoadTimeoutMs} ms, MEMSCORE_MODEL_LOAD_TIMEOUT_MS)`;
    },
  });
  const metrics = new WorkerMetrics(ops.registry);
  const service = await WorkerService.start(config, {
    logger,
    lockDurationMs,
    metrics,
    ...(config.outputBucket && { outputBucket: config.outputBucket }),
  }).catch(async (error: unknown) => {
    await ops.close();
    throw error;
  });
  loaded = service;
  const stop = async (options: StopOptions) => {
    metrics.workerStopping();
    await service.stop(options);
    await ops.close();
  };
  return installShutdownHandlers({
    logger,
    stop,
    drainTimeoutMs: shutdownTimeout,
  });
}
