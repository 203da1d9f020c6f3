import {
  ConfigError,
  closeRedisConnection,
  createQueueWorker,
  describeError,
  type HeatmapFormat,
  type Logger,
  RunState,
  S3UriError,
  ServiceStop,
  type StopOptions,
  type Storage,
  scheduleLastRunKey,
} from "@memscore/shared";
import { type Job, type Queue, UnrecoverableError, WaitingError, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { EnqueueProgress } from "./enqueue-options.js";
import { enqueueRun } from "./enqueue-run.js";
import { RunConflictError } from "./errors.js";
import { SCAN_JOB_NAME, type ScanJobData, scanQueueName, scanRunId, validateScanJob } from "./scan-job.js";
import type { ScanMetrics, ScanOutcome } from "./scan-metrics.js";
import { openScanQueue } from "./schedules.js";

/** Lifecycle of the producer service, as of the chunk worker's. */
export type ScanServiceState = "running" | "stopping" | "stopped";

export interface ScanServiceOptions {
  /** Connection for the scans queue and run state (closed by {@link ScanService.stop}). */
  redis: Redis;
  storage: Storage;
  /** The chunk queue runs are enqueued in; scans come from `${queueName}-scans`. */
  queueName: string;
  /** sha256 of the model the workers run, asked once per scan (it may change between scans). */
  modelSha256: () => Promise<string>;
  /** Heatmap format of scans whose schedule names none (MEMSCORE_HEATMAP_FORMAT). */
  heatmapFormat: HeatmapFormat;
  logger: Logger;
  /** Scans this process runs at once. @defaultValue 1 */
  concurrency?: number;
  /** BullMQ lock duration: a crashed producer's scan is taken over after this long. @defaultValue 30000 */
  lockDurationMs?: number;
  metrics?: ScanMetrics;
  /**
   * Progress of the runs enqueued, as process-wide totals across scans (feed ProducerMetrics
   * with it: its counters only grow).
   */
  onProgress?: (progress: EnqueueProgress) => void;
}

/** What one scan did (stored by BullMQ as the scan job's return value). */
export interface ScanResult {
  runId: string;
  outcome: "enqueued" | "skipped_busy" | "skipped_removed";
  /** Why the scan was skipped. */
  reason?: string;
  imagesEnqueued: number;
  imagesSkipped: number;
  chunks: number;
  resumed: boolean;
}

/** Counts of enqueue progress: a run's as last seen, or the process's across runs. */
interface ProgressTotals {
  listed: number;
  enqueued: number;
  skipped: number;
  chunks: number;
}

const NOTHING_ENQUEUED = { imagesEnqueued: 0, imagesSkipped: 0, chunks: 0, resumed: false } as const;

interface ActiveScan {
  job: Job<ScanJobData, ScanResult>;
  abort: AbortController;
}

/** The iteration time a job scheduler gave a job: its id is `repeat:SCHEDULER:MILLIS`. */
export function scheduledTime(job: Pick<Job, "id" | "timestamp" | "opts">): number {
  const match = /^repeat:.+:(\d+)$/.exec(job.id ?? "");
  if (match) return Number(match[1]);
  return job.timestamp + (job.opts.delay ?? 0);
}

/** Configuration problems of a scan payload or its run: retrying cannot help. */
const isPermanent = (error: unknown) =>
  error instanceof ConfigError || error instanceof S3UriError || error instanceof RunConflictError;

/**
 * The long-running producer service: takes scan jobs that schedules produce and turns each into
 * an enqueued run. BullMQ hands each scan job to one producer at a time, and each iteration's
 * run id is derived from the schedule and the iteration's time, so a scan delivered twice (its
 * producer died) resumes the same run from its checkpoint instead of starting another. A scan
 * is skipped while the schedule's previous one is still being listed or scored, so an image is
 * never enqueued by two runs of the same schedule at once.
 */
export class ScanService {
  state: ScanServiceState = "running";
  private readonly worker: Worker<ScanJobData, ScanResult>;
  private readonly queue: Queue<ScanJobData>;
  private readonly options: ScanServiceOptions;
  private readonly active = new Map<string, ActiveScan>();
  private readonly totals: ProgressTotals = { listed: 0, enqueued: 0, skipped: 0, chunks: 0 };
  private readonly stopper: ServiceStop;

  private constructor(options: ScanServiceOptions) {
    this.options = options;
    this.queue = openScanQueue(options.redis, options.queueName);
    this.worker = createQueueWorker<ScanJobData, ScanResult>(
      scanQueueName(options.queueName),
      (job, token) => this.process(job, token),
      {
        connection: options.redis,
        concurrency: options.concurrency ?? 1,
        lockDurationMs: options.lockDurationMs ?? 30_000,
        logger: options.logger,
        what: "scan",
      },
    );
    this.stopper = new ServiceStop({
      drain: () => this.worker.close(false),
      // Running scans stop between chunk groups (their progress is checkpointed) and hand
      // themselves back to the queue, so another producer resumes them at once.
      force: async (drained) => {
        const scans = [...this.active.values()];
        for (const scan of scans) scan.abort.abort(new Error("producer stopping"));
        if (scans.length > 0)
          options.logger.warn("stopping: running scans handed back to the queue", {
            scans: scans.map((s) => s.job.id),
          });
        await drained;
      },
      cleanup: [
        () => this.queue.close(),
        () => closeRedisConnection(options.redis),
        () => {
          this.state = "stopped";
          options.logger.info("producer service stopped");
        },
      ],
      logger: options.logger,
    });
    this.worker.on("failed", (job, error) =>
      options.logger.warn("scan failed", {
        jobId: job?.id,
        schedule: job?.data.schedule,
        attemptsMade: job?.attemptsMade,
        error: describeError(error),
      }),
    );
  }

  /** Connects and starts taking scan jobs. */
  static async start(options: ScanServiceOptions): Promise<ScanService> {
    const service = new ScanService(options);
    void service.worker
      .run()
      .catch((error: unknown) =>
        options.logger.error("scan worker stopped", { error: describeError(error) }),
      );
    await service.worker.waitUntilReady();
    options.logger.info("producer service started", {
      queue: options.queueName,
      scans: scanQueueName(options.queueName),
      concurrency: options.concurrency ?? 1,
    });
    return service;
  }

  get isRunning(): boolean {
    return this.state === "running";
  }

  private async process(job: Job<ScanJobData, ScanResult>, token?: string): Promise<ScanResult> {
    if (job.name !== SCAN_JOB_NAME) throw new UnrecoverableError(`unknown job name "${job.name}"`);
    let data: ScanJobData;
    try {
      data = validateScanJob(job.data);
    } catch (error) {
      throw new UnrecoverableError(describeError(error));
    }
    const abort = new AbortController();
    const id = job.id ?? "";
    this.active.set(id, { job, abort });
    this.options.metrics?.scanStarted();
    let outcome: ScanOutcome = "failed";
    try {
      const result = await this.scan(job, data, abort.signal);
      outcome = result.outcome;
      return result;
    } catch (error) {
      if (abort.signal.aborted && this.state !== "running") {
        // Stopping: hand the scan back now, so another producer resumes its run from the checkpoint.
        outcome = "handed_back";
        if (token !== undefined) await job.moveToWait(token);
        throw new WaitingError();
      }
      if (isPermanent(error)) throw new UnrecoverableError(describeError(error));
      throw error;
    } finally {
      this.active.delete(id);
      this.options.metrics?.scanEnded(data.schedule, outcome);
    }
  }

  private async scan(
    job: Job<ScanJobData, ScanResult>,
    data: ScanJobData,
    signal: AbortSignal,
  ): Promise<ScanResult> {
    const { redis, queueName, logger } = this.options;
    const runId = scanRunId(data.schedule, scheduledTime(job));
    // An iteration already waiting when its schedule was removed is not scanned.
    if (
      job.repeatJobKey !== undefined &&
      (await this.queue.getJobScheduler(job.repeatJobKey)) === undefined
    ) {
      logger.info("scan skipped", {
        schedule: data.schedule,
        runId,
        jobId: job.id,
        reason: "schedule removed",
      });
      return { ...NOTHING_ENQUEUED, runId, outcome: "skipped_removed", reason: "schedule removed" };
    }
    const busy = await this.busyReason(job, data.schedule, runId);
    if (busy) {
      logger.info("scan skipped", { schedule: data.schedule, runId, jobId: job.id, reason: busy });
      return {
        runId,
        outcome: "skipped_busy",
        reason: busy,
        imagesEnqueued: 0,
        imagesSkipped: 0,
        chunks: 0,
        resumed: false,
      };
    }
    await redis.set(scheduleLastRunKey(queueName, data.schedule), runId);
    const modelSha256 = await this.options.modelSha256();
    logger.info("scan started", { schedule: data.schedule, runId, jobId: job.id, input: data.input });
    const checkpoint = await new RunState(redis, queueName, runId).getCheckpoint();
    const seen = {
      listed: 0,
      enqueued: checkpoint?.imagesEnqueued ?? 0,
      skipped: checkpoint?.imagesSkipped ?? 0,
      chunks: checkpoint?.nextChunkIndex ?? 0,
    };
    const summary = await enqueueRun({
      storage: this.options.storage,
      redis,
      queueName,
      runId,
      input: { prefix: data.input },
      outputPrefix: data.outputPrefix,
      skipExisting: data.skipExisting,
      modelSha256,
      heatmapFormat: data.heatmapFormat ?? this.options.heatmapFormat,
      logger,
      signal,
      ...(data.chunkSize !== undefined && { chunkSize: data.chunkSize }),
      ...(data.maxPending !== undefined && { maxPending: data.maxPending }),
      onProgress: (p) => this.addProgress(p, seen),
    });
    logger.info("scan enqueued a run", {
      schedule: data.schedule,
      runId,
      jobId: job.id,
      imagesEnqueued: summary.imagesEnqueued,
      imagesSkipped: summary.imagesSkipped,
      chunks: summary.chunks,
      resumed: summary.resumed,
      completed: summary.completed,
    });
    return {
      runId,
      outcome: "enqueued",
      imagesEnqueued: summary.imagesEnqueued,
      imagesSkipped: summary.imagesSkipped,
      chunks: summary.chunks,
      resumed: summary.resumed,
    };
  }

  /**
   * Why this scan must wait for a later iteration, or undefined when it may run: another scan of
   * the schedule is running (it outlasted the cadence), or the schedule's previous run is listed
   * but not yet scored (its images would be enqueued twice, since they have no records yet).
   */
  private async busyReason(
    job: Job<ScanJobData, ScanResult>,
    schedule: string,
    runId: string,
  ): Promise<string | undefined> {
    const { redis, queueName } = this.options;
    const running = (await this.queue.getActive()).filter(
      (other) => other.id !== job.id && (other.data as Partial<ScanJobData>)?.schedule === schedule,
    );
    if (running.length > 0) return `scan ${running[0]?.id} of this schedule is still running`;
    const previous = await redis.get(scheduleLastRunKey(queueName, schedule));
    if (previous === null || previous === runId) return undefined;
    const snapshot = await new RunState(redis, queueName, previous).snapshot();
    if (snapshot?.listingDone && snapshot.completedAt === undefined)
      return `previous run ${previous} is still being scored`;
    return undefined;
  }

  /** Adds one progress report of a run to the process-wide totals and reports those. */
  private addProgress(p: EnqueueProgress, seen: ProgressTotals): void {
    const grow = (key: keyof ProgressTotals, now: number) => {
      if (now > seen[key]) {
        this.totals[key] += now - seen[key];
        seen[key] = now;
      }
    };
    grow("listed", p.imagesListed);
    grow("enqueued", p.imagesEnqueued);
    grow("skipped", p.imagesSkipped);
    grow("chunks", p.chunksEnqueued);
    this.options.onProgress?.({
      runId: p.runId,
      imagesListed: this.totals.listed,
      imagesEnqueued: this.totals.enqueued,
      imagesSkipped: this.totals.skipped,
      chunksEnqueued: this.totals.chunks,
      waitingForWorkers: p.waitingForWorkers,
    });
  }

  /**
   * Stops taking scans. Graceful: running scans may finish until `timeoutMs`. Forced (or at the
   * deadline): running scans stop between chunk groups (their progress is checkpointed) and are
   * handed back to the queue, so another producer resumes them at once. Idempotent; a forced
   * call escalates a graceful one.
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.state = this.state === "running" ? "stopping" : this.state;
    return this.stopper.stop(options);
  }
}
