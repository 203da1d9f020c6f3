import { hostname } from "node:os";
import {
  CHUNK_JOB_NAME,
  type ChunkJobData,
  checkRedisEvictionPolicy,
  closeRedisConnection,
  completeRun,
  createQueueWorker,
  createRedisConnection,
  describeError,
  InvalidJobError,
  type Logger,
  type MemscoreConfig,
  parseS3Uri,
  RunState,
  ServiceStop,
  type StopOptions,
  Storage,
  settleWithin,
  validateChunkJob,
  writeResultsPart,
} from "@memscore/shared";
import { type Job, UnrecoverableError, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import sharp from "sharp";
import { BUNDLED_MODEL_PATH } from "./bundled-model.js";
import { type ChunkContext, processChunk } from "./chunk-processor.js";
import { engineOptions, InferenceEngine } from "./inference-engine.js";
import { jpegCodecProblem } from "./jpeg-codec.js";
import type { ModelInfo } from "./model-runtime.js";
import { resolveModelFile } from "./model-source.js";
import { PipelinePool, pipelineS3, pipelineSettings } from "./pipeline-pool.js";
import { describeRunModel } from "./run-model.js";
import { Semaphore } from "./semaphore.js";
import type { StageObserver } from "./stage-timings.js";
import type { WorkerMetrics } from "./worker-metrics.js";

/** How long a forced stop waits for Redis to take its chunks back before leaving them to lapse. */
const HAND_BACK_TIMEOUT_MS = 3_000;

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
  private readonly pipeline: PipelinePool;
  private readonly logger: Logger;
  private readonly stopper: ServiceStop;
  private watchdog?: NodeJS.Timeout;
  private wedged?: string;
  private readonly activeChunks: Map<string, ActiveChunk>;

  private constructor(parts: {
    engine: InferenceEngine;
    pipeline: PipelinePool;
    worker: Worker<ChunkJobData, ChunkJobResult>;
    redis: Redis;
    storage: Storage;
    logger: Logger;
    activeChunks: Map<string, ActiveChunk>;
  }) {
    this.model = parts.engine.info;
    this.engine = parts.engine;
    this.pipeline = parts.pipeline;
    this.worker = parts.worker;
    this.redis = parts.redis;
    this.storage = parts.storage;
    this.logger = parts.logger;
    this.activeChunks = parts.activeChunks;
    this.stopper = new ServiceStop({
      // close(false) in every case: it stops taking new chunks at once. BullMQ's close() is
      // idempotent, so a later close(true) would only wait for this same drain: forcing is done
      // by handing the in-flight chunks back and no longer waiting for the drain.
      drain: () => this.worker.close(false),
      force: async (_drained, why) => {
        if (this.activeChunks.size === 0) return;
        const handedBack = await this.handBackActiveChunks();
        this.logger.warn("forced stop: in-flight chunks handed back to the queue", {
          handedBack,
          ...(why.deadlineMs !== undefined && { timeoutMs: why.deadlineMs }),
        });
      },
      // The session is released after a forced stop too: the inference thread handles "close"
      // after the batch it is running (a later batch from an abandoned chunk just fails), while
      // a session left to process exit was seen to abort the process (Napi::Error) instead of
      // exiting 143.
      cleanup: [
        () => this.pipeline.close(),
        () => this.engine.close(),
        () => closeRedisConnection(this.redis),
        () => this.storage.close(),
        () => {
          this.state = "stopped";
          this.logger.info("worker stopped");
        },
      ],
      logger: this.logger,
    });
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
    if (jpegCodecProblem) {
      logger.warn("JPEGs are decoded by libvips: the native JPEG codec is missing", {
        problem: jpegCodecProblem,
      });
    }
    const storage = Storage.fromConfig(config);
    const modelPath = await resolveModelFile(config, storage, logger);
    // Inference runs in its own thread, fed straight by the pipeline threads.
    const engine = await InferenceEngine.start(
      modelPath,
      engineOptions(config, { logger, ...(metrics && { onBatch: metrics.observeBatch }) }),
    );
    if (!engine.info.trained && modelPath !== BUNDLED_MODEL_PATH) {
      logger.warn("the model is untrained (memscore.trained=false): its scores are not memorability", {
        model: engine.info.name,
        sha256: engine.info.sha256,
      });
    }
    const pipeline = await PipelinePool.start({
      threads: config.pipelineThreads,
      engine,
      settings: pipelineSettings(config),
      s3: pipelineS3(config),
      ...(observe && { observe }),
      logger,
    }).catch(async (error: unknown) => {
      await engine.close();
      throw error;
    });
    const redis = createRedisConnection(config.redisUrl, { name: "memscore-worker", logger });
    await checkRedisEvictionPolicy(redis, config.redisEvictionCheck, logger).catch(async (error: unknown) => {
      redis.disconnect();
      await pipeline.close();
      await engine.close();
      throw error;
    });
    const owner = `${hostname()}:${process.pid}`;
    const context: ChunkContext = {
      pipeline,
      inFlight: new Semaphore(options.maxImagesInFlight ?? config.maxImagesInFlight),
      modelSha256: engine.info.sha256,
      logger,
    };
    const runModel = describeRunModel(engine.info);
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
      const { completes } = await run.recordChunk(data.chunkIndex, outcome.counts, owner, runModel);
      metrics?.chunkProcessed(outcome);
      if (completes) await completeRun(storage, run, logger);
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

    const worker = createQueueWorker<ChunkJobData, ChunkJobResult>(config.queueName, processor, {
      connection: redis,
      // Stored on each job it takes (job.processedBy): tells which process holds an active chunk.
      name: owner,
      concurrency: config.concurrency,
      lockDurationMs: options.lockDurationMs ?? 30_000,
      // A chunk whose worker was killed is handed back this many times before it fails.
      maxStalledCount: 10,
      logger,
      what: "chunk",
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

    const service = new WorkerService({
      engine,
      pipeline,
      worker,
      redis,
      storage,
      logger,
      activeChunks,
    });
    void worker
      .run()
      .catch((error: unknown) => logger.error("worker stopped", { error: describeError(error) }));
    await worker.waitUntilReady();
    service.state = "running";
    service.watchEngine(config.inferenceTimeoutMs, metrics);
    metrics?.workerStarted(engine.info, engine);
    logger.info("worker started", {
      queue: config.queueName,
      concurrency: config.concurrency,
      batchSize: config.batchSize,
      pipelineThreads: pipeline.size,
      provider: engine.info.provider,
    });
    return service;
  }

  /** OS thread ids (Linux only) of the inference thread and the pipeline threads, for CPU accounting. */
  get threadIds(): { inference: number | undefined; pipeline: number[] } {
    return { inference: this.engine.threadId, pipeline: this.pipeline.threadIds };
  }

  /**
   * Whether this worker works: `true`, or why not (its inference engine is wedged). `/healthz`
   * reports it, so an orchestrator restarts a worker whose GPU or native call has hung.
   */
  health(): true | string {
    return this.wedged ?? true;
  }

  /**
   * The inference watchdog. A batch that runs longer than `timeoutMs` means the engine is
   * wedged: BullMQ would keep renewing this worker's chunk locks from the main thread for ever,
   * so its chunks would never move. Instead they are handed back to the queue at once (another
   * worker redoes them, reusing any outputs already written), no new chunk is taken, and
   * {@link health} turns false.
   */
  private watchEngine(timeoutMs: number, metrics: WorkerMetrics | undefined): void {
    this.watchdog = setInterval(
      () => {
        const running = this.engine.runningBatchMs();
        if (this.wedged || this.state !== "running" || running <= timeoutMs) return;
        this.wedged = `inference engine wedged: a batch has run for ${Math.round(running)} ms (limit ${timeoutMs} ms, MEMSCORE_INFERENCE_TIMEOUT_MS)`;
        this.logger.error("inference engine wedged: handing chunks back and taking no more", {
          batchMs: Math.round(running),
          timeoutMs,
          chunks: this.activeChunks.size,
        });
        metrics?.engineWedged();
        void this.worker.pause(true).catch(() => {});
        void this.handBackActiveChunks().then((handedBack) =>
          this.logger.warn("chunks of the wedged worker handed back to the queue", { handedBack }),
        );
      },
      Math.max(100, Math.min(1_000, timeoutMs / 10)),
    );
    this.watchdog.unref();
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
  stop(options: StopOptions = {}): Promise<void> {
    if (!this.stopper.started) {
      this.state = "stopping";
      clearInterval(this.watchdog);
    }
    return this.stopper.stop(options);
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
    const handing = Promise.allSettled(chunks.map(({ job, token }) => job.moveToWait(token)));
    // With Redis unreachable the moves would wait for a reconnect: give up after a while, the
    // chunks' locks then lapse and another worker takes them over.
    const outcome = await settleWithin(handing, HAND_BACK_TIMEOUT_MS);
    if (!outcome.settled) {
      this.logger.warn("could not hand chunks back: Redis did not answer", {
        chunks: chunks.length,
        timeoutMs: HAND_BACK_TIMEOUT_MS,
      });
      return 0;
    }
    const results = outcome.value;
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
