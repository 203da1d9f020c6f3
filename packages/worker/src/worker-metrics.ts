import { DURATION_BUCKETS_SECONDS, IMAGE_ERROR_REASONS, type ImageErrorReason } from "@memscore/shared";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { ChunkOutcome } from "./chunk-processor.js";
import type { InferenceEngine } from "./inference-engine.js";
import type { ModelInfo } from "./model-runtime.js";
import { STAGES, type StageObserver } from "./stage-timings.js";

/** How a chunk job attempt ended: completed, failed for good, or failed and going to be retried. */
export type ChunkJobOutcome = "completed" | "failed" | "retried";

const IMAGE_OUTCOMES = ["scored", "error", "reused"] as const;
const CHUNK_OUTCOMES: readonly ChunkJobOutcome[] = ["completed", "failed", "retried"];
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const BATCH_FILL_BUCKETS = [0.125, 0.25, 0.5, 0.75, 0.9, 1];

/**
 * A worker's Prometheus metrics. Every label has a small fixed set of values (outcome, reason,
 * stage): nothing per image or per key. Updates are counter increments and histogram
 * observations, so the hot path allocates nothing; engine totals are read when scraped.
 */
export class WorkerMetrics {
  private readonly images: Counter<"outcome">;
  private readonly imageErrors: Counter<"reason">;
  private readonly chunks: Counter<"outcome">;
  private readonly stageSeconds: Histogram<"stage">;
  private readonly batchImages: Histogram;
  private readonly batchFill: Histogram;
  private readonly batchSeconds: Histogram;
  private readonly modelInfo: Gauge<"name" | "version" | "sha256" | "provider" | "trained">;
  private readonly ready: Gauge;
  private readonly wedged: Gauge;
  private engine: InferenceEngine | undefined;
  private batchCapacity = 1;

  constructor(registry: Registry) {
    const registers = [registry];
    this.images = new Counter({
      name: "memscore_images_processed_total",
      help: "Images given an outcome in completed chunk jobs: scored, error, or reused (taken from an earlier attempt's outputs).",
      labelNames: ["outcome"],
      registers,
    });
    this.imageErrors = new Counter({
      name: "memscore_image_errors_total",
      help: "Images that could not be scored, by reason (not_image, decode_failed, too_large, ...).",
      labelNames: ["reason"],
      registers,
    });
    this.chunks = new Counter({
      name: "memscore_chunk_jobs_total",
      help: "Chunk job attempts by outcome: completed, failed (for good) or retried.",
      labelNames: ["outcome"],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: "memscore_stage_duration_seconds",
      help: "Time one image spends in a stage (infer: its share of the batch's inference).",
      labelNames: ["stage"],
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.batchImages = new Histogram({
      name: "memscore_inference_batch_size",
      help: "Images per inference batch.",
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    this.batchFill = new Histogram({
      name: "memscore_inference_batch_fill_ratio",
      help: "Images per inference batch divided by the configured batch size (1 = full).",
      buckets: BATCH_FILL_BUCKETS,
      registers,
    });
    this.batchSeconds = new Histogram({
      name: "memscore_inference_batch_duration_seconds",
      help: "Wall time of one inference batch.",
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers,
    });
    // The engine's busy time is a counter, not a ratio gauge: rate() of it is the busy ratio
    // (the accelerator-utilisation proxy) over any window, right for any number of scrapers,
    // whereas a "ratio since the last scrape" gauge would depend on who scraped last.
    const metrics = this;
    let busyReported = 0;
    new Counter({
      name: "memscore_engine_busy_seconds_total",
      help: "Time the inference engine spent running at least one batch; rate() of it is the busy ratio.",
      registers,
      collect() {
        const busy = (metrics.engine?.stats.busyMs ?? 0) / 1000;
        if (busy > busyReported) this.inc(busy - busyReported);
        busyReported = Math.max(busyReported, busy);
      },
    });
    new Gauge({
      name: "memscore_engine_pending_images",
      help: "Preprocessed images waiting for an inference batch.",
      registers,
      collect() {
        this.set(metrics.engine?.stats.pending ?? 0);
      },
    });
    this.modelInfo = new Gauge({
      name: "memscore_model_info",
      help: "The model this worker runs (value 1).",
      labelNames: ["name", "version", "sha256", "provider", "trained"],
      registers,
    });
    new Gauge({
      name: "memscore_worker_up",
      help: "1 while this worker process runs and exports metrics.",
      registers,
    }).set(1);
    this.ready = new Gauge({
      name: "memscore_worker_ready",
      help: "1 once the model is loaded and the worker takes jobs, 0 while loading or stopping.",
      registers,
    });
    this.ready.set(0);
    this.wedged = new Gauge({
      name: "memscore_inference_wedged",
      help: "1 once a batch has run longer than MEMSCORE_INFERENCE_TIMEOUT_MS (the engine is wedged; /healthz fails), else 0.",
      registers,
    });
    this.wedged.set(0);
    // Zero-valued series from the start, so rate() and ratios work before the first event.
    for (const outcome of IMAGE_OUTCOMES) this.images.inc({ outcome }, 0);
    for (const outcome of CHUNK_OUTCOMES) this.chunks.inc({ outcome }, 0);
    for (const reason of IMAGE_ERROR_REASONS) this.imageErrors.inc({ reason }, 0);
    for (const stage of STAGES) this.stageSeconds.zero({ stage });
  }

  /** Plugs into WorkerService's stage hook. */
  readonly observeStage: StageObserver = (stage, seconds) => {
    this.stageSeconds.observe({ stage }, seconds);
  };

  /** Plugs into InferenceEngine's batch hook. */
  readonly observeBatch = (images: number, seconds: number): void => {
    this.batchImages.observe(images);
    this.batchFill.observe(images / this.batchCapacity);
    this.batchSeconds.observe(seconds);
  };

  /** The worker has loaded its model and started: record the model, follow the engine. */
  workerStarted(model: ModelInfo, engine: InferenceEngine): void {
    this.engine = engine;
    this.batchCapacity = engine.batchSize;
    this.modelInfo.reset();
    this.modelInfo.set(
      {
        name: model.name,
        version: model.version,
        sha256: model.sha256,
        provider: model.provider,
        trained: String(model.trained),
      },
      1,
    );
    this.ready.set(1);
  }

  /** The engine is wedged: the worker takes no more jobs and asks to be restarted. */
  engineWedged(): void {
    this.wedged.set(1);
    this.ready.set(0);
  }

  /** The worker stops taking jobs. */
  workerStopping(): void {
    this.ready.set(0);
  }

  /** A chunk's images all have outcomes (counted once its job attempt completes). */
  chunkProcessed(outcome: ChunkOutcome): void {
    const reusedScored = outcome.reused - outcome.reusedFailed;
    this.images.inc({ outcome: "scored" }, outcome.counts.scored - reusedScored);
    this.images.inc({ outcome: "error" }, outcome.counts.failed - outcome.reusedFailed);
    this.images.inc({ outcome: "reused" }, outcome.reused);
    for (const [reason, n] of Object.entries(outcome.counts.failuresByReason) as [
      ImageErrorReason,
      number,
    ][]) {
      this.imageErrors.inc({ reason }, n);
    }
  }

  /** A chunk job attempt ended. */
  chunkJobEnded(outcome: ChunkJobOutcome): void {
    this.chunks.inc({ outcome });
  }
}
