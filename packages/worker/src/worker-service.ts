import { hostname } from "node:os";
import {
  CHUNK_JOB_NAME,
  type ChunkJobData,
  checkRedisEvictionPolicy,
  completeRun,
  createRedisConnection,
  describeError,
  InvalidJobError,
  type Logger,
  type MemscoreConfig,
  parseS3Uri,
  RunState,
  Storage,
  validateChunkJob,
  writeResultsPart,
} from "@memscore/shared";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import sharp from "sharp";
import { BUNDLED_MODEL_PATH } from "./bundled-model.js";
import { type ChunkContext, processChunk } from "./chunk-processor.js";
import { InferenceEngine } from "./inference-engine.js";
import type { ModelInfo } from "./model-runtime.js";
import { resolveModelFile } from "./model-source.js";
import { RenderPool } from "./render-pool.js";
import { Semaphore } from "./semaphore.js";
import type { StageObserver } from "./stage-timings.js";
import { type BatchModel, ThreadedModelRuntime } from "./threaded-model-runtime.js";
import type { WorkerMetrics } from "./worker-metrics.js";

/** Lifecycle of a worker: a small explicit state machine. */
export type WorkerState = "starting" | "running" | "stopping" | "stopped";

export interface WorkerServiceOptions {
  logger: Logger;
  /** Receives per-image stage durations (metrics, benchmarks). */
  observe?: StageObserver;
  /** Prometheus metrics to update (stages, batches, images, chunk jobs, model). @defaultValue none */
  metrics?: WorkerMetrics;
  /** Bucket job outputs must be written to; empty allows any allowed bucket. */
  outputBucket?: string;
  /** Images between fetch and put at once. @defaultValue config.maxImagesInFlight */
  maxImagesInFlight?: number;
  /** BullMQ lock duration: a crashed worker's chunks are handed to others after this long. @defaultValue 30000 */
  lockDurationMs?: number;
}

/** A chunk this worker is processing, with the lock token that lets it hand the chunk back. */
interface ActiveChunk {
  job: Job<ChunkJobData, ChunkJobResult>;
  token: string;
}

/** What a chunk job returns (stored by BullMQ as the job's return value). */
export interface ChunkJobResult {
  scored: number;
  failed: number;
  reused: number;
}

/**
 * A memscore worker: loads the model once, then pulls chunk jobs from the run queue, scores
 * their images through a shared dynamic batcher, writes outputs and the chunk's results part,
 * and completes the run when it finishes the run's last chunk.
 */
export class WorkerService {
  state: WorkerState = "starting";
  readonly model: ModelInfo;
  readonly engine: InferenceEngine;
  private readonly worker: Worker<ChunkJobData, ChunkJobResult>;
  private readonly redis: Redis;
  private readonly storage: Storage;
  private readonly runtime: BatchModel;
  private readonly logger: Logger;
  private stopping?: Promise<void>;
  private forceNow?: () => void;
  private readonly activeChunks: Map<string, ActiveChunk>;
  private readonly closeRenderer: () => Promise<void>;

  private constructor(parts: {
    runtime: BatchModel;
    engine: InferenceEngine;
    worker: Worker<ChunkJobData, ChunkJobResult>;
    redis: Redis;
    storage: Storage;
    logger: Logger;
    activeChunks: Map<string, ActiveChunk>;
    closeRenderer: () => Promise<void>;
  }) {
    this.runtime = parts.runtime;
    this.model = parts.runtime.info;
    this.engine = parts.engine;
    this.worker = parts.worker;
    this.redis = parts.redis;
    this.storage = parts.storage;
    this.logger = parts.logger;
    this.activeChunks = parts.activeChunks;
    this.closeRenderer = parts.closeRenderer;
  }

  /** Loads the model, connects, and starts pulling jobs. */
  static async start(config: MemscoreConfig, options: WorkerServiceOptions): Promise<WorkerService> {
    const logger = options.logger;
    const metrics = options.metrics;
    const observe: StageObserver | undefined =
      options.observe && metrics
        ? (stage, seconds) => {
            options.observe?.(stage, seconds);
            metrics.observeStage(stage, seconds);
          }
        : (options.observe ?? metrics?.observeStage);
    // Thread budget: libvips threads per image operation (process-wide setting of sharp).
    sharp.concurrency(config.decodeThreads);
    const storage = Storage.fromConfig(config);
    const modelPath = await resolveModelFile(config, storage, logger);
    // Inference runs in its own thread so the main thread keeps fetching, decoding and writing.
    const runtime = await ThreadedModelRuntime.load(modelPath, {
      provider: config.provider,
      intraOpThreads: config.intraOpThreads,
      threadSpinning: config.ortThreadSpinning,
      logger,
    });
    if (!runtime.info.trained && modelPath !== BUNDLED_MODEL_PATH) {
      logger.warn("the model is untrained (memscore.trained=false): its scores are not memorability", {
        model: runtime.info.name,
        sha256: runtime.info.sha256,
      });
    }
    const engine = new InferenceEngine(runtime, {
      batchSize: config.batchSize,
      maxBatchDelayMs: config.maxBatchDelayMs,
      ...(observe && { observe }),
      ...(metrics && { onBatch: metrics.observeBatch }),
    });
    const redis = createRedisConnection(config.redisUrl, { name: "memscore-worker", logger });
    await checkRedisEvictionPolicy(redis, config.redisEvictionCheck, logger).catch((error: unknown) => {
      redis.disconnect();
      throw error;
    });
    const owner = `${hostname()}:${process.pid}`;
    const renderer = RenderPool.create(config.renderThreads);
    const context: ChunkContext = {
      storage,
      engine,
      render: renderer.render,
      model: runtime.info,
      limits: {
        maxImageBytes: config.maxImageBytes,
        maxImagePixels: config.maxImagePixels,
        heatmapMaxSide: config.heatmapMaxSide,
      },
      inFlight: new Semaphore(options.maxImagesInFlight ?? config.maxImagesInFlight),
      ...(observe && { observe }),
      logger,
    };
    const outputBucket = options.outputBucket
      ? parseS3Uri(`s3://${options.outputBucket}/`).bucket
      : undefined;

    const processJob = async (job: Job<ChunkJobData, ChunkJobResult>): Promise<ChunkJobResult> => {
      let data: ChunkJobData;
      try {
        data = validateChunkJob(job.data, {
          allowedBuckets: config.allowedBuckets,
          ...(outputBucket && { outputBucket }),
        });
      } catch (error) {
        // A malformed or hostile payload can never succeed: fail it once, never retry it.
        throw new UnrecoverableError(describeError(error));
      }
      if (job.name !== CHUNK_JOB_NAME) throw new UnrecoverableError(`unknown job name "${job.name}"`);
      const run = new RunState(redis, config.queueName, data.runId);
      if (!(await run.exists()))
        throw new UnrecoverableError(`unknown run "${data.runId}" (not created by a producer)`);

      const attempts = job.opts.attempts ?? 1;
      const outcome = await processChunk(context, data, {
        rerun: job.attemptsStarted > 1 || job.attemptsMade > 0,
        final: job.attemptsMade + 1 >= attempts,
      });
      await writeResultsPart(
        storage,
        data.outputPrefix,
        data.runId,
        { kind: "chunk", index: data.chunkIndex },
        outcome.rows,
      );
      const { finalize } = await run.recordChunk(data.chunkIndex, outcome.counts, owner);
      metrics?.chunkProcessed(outcome);
      if (finalize) await completeRun(storage, run, logger);
      return { scored: outcome.counts.scored, failed: outcome.counts.failed, reused: outcome.reused };
    };

    // Chunks in flight with their lock tokens, so a forced stop can hand them back at once.
    const activeChunks = new Map<string, ActiveChunk>();
    const processor = async (job: Job<ChunkJobData, ChunkJobResult>, token?: string) => {
      if (job.id !== undefined && token !== undefined) activeChunks.set(job.id, { job, token });
      try {
        return await processJob(job);
      } finally {
        if (job.id !== undefined) activeChunks.delete(job.id);
      }
    };

    const worker = new Worker<ChunkJobData, ChunkJobResult>(config.queueName, processor, {
      connection: redis,
      // Stored on each job it takes (job.processedBy): tells which process holds an active chunk.
      name: owner,
      concurrency: config.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      // Look for stalled chunks (of crashed workers) as often as a lock can lapse, not only every
      // 30 s (BullMQ's default): a short lock duration then really hands chunks over quickly.
      stalledInterval: Math.min(options.lockDurationMs ?? 30_000, 30_000),
      // A chunk whose worker was killed is handed back this many times before it fails.
      maxStalledCount: 10,
      autorun: false,
    });
    if (metrics) {
      worker.on("completed", () => metrics.chunkJobEnded("completed"));
      // BullMQ sets finishedOn only when the job fails for good; otherwise it is retried.
      worker.on("failed", (job) => metrics.chunkJobEnded(job?.finishedOn ? "failed" : "retried"));
    }
    worker.on("failed", (job, error) => {
      logger.warn("chunk failed", {
        jobId: job?.id,
        attemptsMade: job?.attemptsMade,
        error: describeError(error),
        unrecoverable: error instanceof UnrecoverableError || error instanceof InvalidJobError,
      });
    });
    worker.on("error", (error) => logger.error("worker error", { error: describeError(error) }));

    const service = new WorkerService({
      runtime,
      engine,
      worker,
      redis,
      storage,
      logger,
      activeChunks,
      closeRenderer: renderer.close,
    });
    void worker
      .run()
      .catch((error: unknown) => logger.error("worker stopped", { error: describeError(error) }));
    await worker.waitUntilReady();
    service.state = "running";
    metrics?.workerStarted(runtime.info, engine);
    logger.info("worker started", {
      queue: config.queueName,
      concurrency: config.concurrency,
      batchSize: config.batchSize,
      provider: runtime.info.provider,
    });
    return service;
  }

  /** True while jobs are being processed or waited for. */
  get isRunning(): boolean {
    return this.state === "running";
  }

  /**
   * Stops the worker. Graceful: stop taking jobs and let in-flight chunks finish. Forced (or
   * after `timeoutMs`): hand in-flight chunks back to the queue at once, so other workers redo
   * them (re-using any outputs already written) without waiting for their locks to lapse.
   * Idempotent: later calls share the first stop; a forced call escalates a graceful one.
   */
  stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    // A forced stop requested during a graceful one escalates it instead of waiting behind it.
    if (this.stopping && options.graceful === false) this.forceNow?.();
    this.stopping ??= (async () => {
      this.state = "stopping";
      const graceful = options.graceful ?? true;
      const deadline = options.timeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      let forced = !graceful;
      try {
        // close(false) in every case: it stops taking new chunks at once. BullMQ's close() is
        // idempotent, so a later close(true) would only wait for this same drain: forcing is done
        // here instead, by handing the in-flight chunks back and no longer waiting for the drain.
        const drained = this.worker.close(false);
        if (!forced) {
          forced = await Promise.race([
            drained.then(() => false),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(true), deadline);
              this.forceNow = () => resolve(true);
            }),
          ]);
        } else drained.catch(() => {});
        if (forced) {
          const handedBack = await this.handBackActiveChunks();
          this.logger.warn("forced stop: in-flight chunks handed back to the queue", {
            handedBack,
            ...(graceful && { timeoutMs: deadline }),
          });
        }
      } catch (error) {
        this.logger.error("error closing worker", { error: describeError(error) });
      } finally {
        if (timer) clearTimeout(timer);
      }
      // Each cleanup step on its own: one failure must not leave the others undone. The session
      // is released after a forced stop too: the inference thread handles "close" after the batch
      // it is running (a later batch from an abandoned chunk just fails), while a session left to
      // process exit was seen to abort the process (Napi::Error) instead of exiting 143.
      for (const step of [
        () => this.runtime.close(),
        () => this.closeRenderer(),
        () => this.redis.quit(),
        async () => this.storage.close(),
      ]) {
        try {
          await step();
        } catch (error) {
          this.logger.warn("cleanup step failed", { error: describeError(error) });
        }
      }
      this.state = "stopped";
      this.logger.info("worker stopped");
    })();
    return this.stopping;
  }

  /**
   * Moves this worker's in-flight chunks from active back to waiting (releasing their locks,
   * without counting an attempt), so another worker takes them now. BullMQ's cancelAllJobs()
   * only aborts processors, and a forced close() leaves the jobs locked until the lock lapses
   * and a stalled check finds them. A processor still running here afterwards can only write
   * the same outputs again (S3 PUTs are whole-object, RunState counts a chunk once), and its
   * completion is refused by BullMQ because it no longer holds the lock.
   */
  private async handBackActiveChunks(): Promise<number> {
    const chunks = [...this.activeChunks.values()];
    const results = await Promise.allSettled(chunks.map(({ job, token }) => job.moveToWait(token)));
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected") {
        // Usually the chunk finished meanwhile; otherwise its lock lapses and it is taken over later.
        this.logger.warn("could not hand a chunk back", {
          jobId: chunks[i]?.job.id,
          error: describeError(result.reason),
        });
      }
    }
    return results.filter((r) => r.status === "fulfilled").length;
  }
}
