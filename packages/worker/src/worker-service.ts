import { hostname } from "node:os";
import {
  CHUNK_JOB_NAME,
  type ChunkJobData,
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
import { type ChunkContext, processChunk } from "./chunk-processor.js";
import { InferenceEngine } from "./inference-engine.js";
import { type ModelInfo, ModelRuntime } from "./model-runtime.js";
import { resolveModelFile } from "./model-source.js";
import { Semaphore } from "./semaphore.js";
import type { StageObserver } from "./stage-timings.js";

/** Lifecycle of a worker: a small explicit state machine. */
export type WorkerState = "starting" | "running" | "stopping" | "stopped";

export interface WorkerServiceOptions {
  logger: Logger;
  /** Receives per-image stage durations (metrics, benchmarks). */
  observe?: StageObserver;
  /** Bucket job outputs must be written to; empty allows any allowed bucket. */
  outputBucket?: string;
  /** Images between fetch and put at once. @defaultValue max(4 × batch size, 32) */
  maxImagesInFlight?: number;
  /** BullMQ lock duration: a crashed worker's chunks are handed to others after this long. @defaultValue 30000 */
  lockDurationMs?: number;
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
  private readonly runtime: ModelRuntime;
  private readonly logger: Logger;
  private stopping?: Promise<void>;
  private forceNow?: () => void;

  private constructor(parts: {
    runtime: ModelRuntime;
    engine: InferenceEngine;
    worker: Worker<ChunkJobData, ChunkJobResult>;
    redis: Redis;
    storage: Storage;
    logger: Logger;
  }) {
    this.runtime = parts.runtime;
    this.model = parts.runtime.info;
    this.engine = parts.engine;
    this.worker = parts.worker;
    this.redis = parts.redis;
    this.storage = parts.storage;
    this.logger = parts.logger;
  }

  /** Loads the model, connects, and starts pulling jobs. */
  static async start(config: MemscoreConfig, options: WorkerServiceOptions): Promise<WorkerService> {
    const logger = options.logger;
    const storage = Storage.fromConfig(config);
    const modelPath = await resolveModelFile(config, storage, logger);
    const runtime = await ModelRuntime.load(modelPath, {
      provider: config.provider,
      intraOpThreads: config.intraOpThreads,
      logger,
    });
    const engine = new InferenceEngine(runtime, {
      batchSize: config.batchSize,
      maxBatchDelayMs: config.maxBatchDelayMs,
      ...(options.observe && { observe: options.observe }),
    });
    const redis = createRedisConnection(config.redisUrl, { name: "memscore-worker", logger });
    const owner = `${hostname()}:${process.pid}`;
    const context: ChunkContext = {
      storage,
      engine,
      model: runtime.info,
      limits: {
        maxImageBytes: config.maxImageBytes,
        maxImagePixels: config.maxImagePixels,
        heatmapMaxSide: config.heatmapMaxSide,
      },
      inFlight: new Semaphore(options.maxImagesInFlight ?? Math.max(4 * config.batchSize, 32)),
      ...(options.observe && { observe: options.observe }),
      logger,
    };
    const outputBucket = options.outputBucket
      ? parseS3Uri(`s3://${options.outputBucket}/`).bucket
      : undefined;

    const processor = async (job: Job<ChunkJobData, ChunkJobResult>): Promise<ChunkJobResult> => {
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
      if (finalize) await completeRun(storage, run, logger);
      return { scored: outcome.counts.scored, failed: outcome.counts.failed, reused: outcome.reused };
    };

    const worker = new Worker<ChunkJobData, ChunkJobResult>(config.queueName, processor, {
      connection: redis,
      concurrency: config.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      // A chunk whose worker was killed is handed back this many times before it fails.
      maxStalledCount: 10,
      autorun: false,
    });
    worker.on("failed", (job, error) => {
      logger.warn("chunk failed", {
        jobId: job?.id,
        attemptsMade: job?.attemptsMade,
        error: describeError(error),
        unrecoverable: error instanceof UnrecoverableError || error instanceof InvalidJobError,
      });
    });
    worker.on("error", (error) => logger.error("worker error", { error: describeError(error) }));

    const service = new WorkerService({ runtime, engine, worker, redis, storage, logger });
    void worker
      .run()
      .catch((error: unknown) => logger.error("worker stopped", { error: describeError(error) }));
    await worker.waitUntilReady();
    service.state = "running";
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
   * after `timeoutMs`): abandon in-flight chunks; their locks lapse and other workers take them
   * over, re-using any outputs already written. Idempotent: later calls share the first stop.
   */
  stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    // A forced stop requested during a graceful one escalates it instead of waiting behind it.
    if (this.stopping && options.graceful === false) this.forceNow?.();
    this.stopping ??= (async () => {
      this.state = "stopping";
      const graceful = options.graceful ?? true;
      const deadline = options.timeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      try {
        const closing = this.worker.close(!graceful);
        const timedOut = await Promise.race([
          closing.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), deadline);
            this.forceNow = () => resolve(true);
          }),
        ]);
        if (timedOut) {
          this.logger.warn("forcing stop: in-flight chunks go back to the queue", { timeoutMs: deadline });
          await this.worker.close(true);
        }
      } catch (error) {
        this.logger.error("error closing worker", { error: describeError(error) });
      } finally {
        if (timer) clearTimeout(timer);
      }
      // Each cleanup step on its own: one failure must not leave the others undone.
      for (const step of [
        () => this.runtime.close(),
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
}
