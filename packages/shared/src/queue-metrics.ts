import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";
import { describeError } from "./errors.js";
import type { Logger } from "./logger.js";
import { QUEUE_JOB_STATES, type QueueOverview, readQueueOverview, runImageCounts } from "./queue-overview.js";
import { scrapeRead } from "./scrape-read.js";

export interface QueueMetricsOptions {
  queue: Queue;
  /** A connection for run state reads; best with `enableOfflineQueue: false`, so reads fail fast. */
  redis: Redis;
  /** Scrapes within this long of the last read reuse it, so scrapes don't hammer Redis. @defaultValue 1000 */
  cacheMs?: number;
  /** A read slower than this reports Redis as down for that scrape. @defaultValue 2000 */
  timeoutMs?: number;
  /** Newest runs examined for progress. @defaultValue 50 */
  maxRuns?: number;
  logger?: Logger;
}

/**
 * Registers the queue-level gauges, read from Redis when scraped. Every worker and producer
 * exports them (so dashboards and autoscalers work with workers alone); aggregate them across
 * processes with `max`, not `sum`. Per-run series exist only while a run is in progress, so
 * `run_id` is bounded by the active runs.
 */
export function registerQueueMetrics(registry: Registry, options: QueueMetricsOptions): void {
  const queue = options.queue.name;
  const cacheMs = options.cacheMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const finishedRuns = new Set<string>();
  let lastError = "";
  let warnedNoWorkerList = false;

  const read = async (): Promise<QueueOverview | undefined> => {
    try {
      const overview = await readQueueOverview(options.queue, options.redis, {
        maxRuns: options.maxRuns ?? 50,
        skipRunIds: finishedRuns,
      });
      for (const run of overview.runs) if (run.completedAt !== undefined) finishedRuns.add(run.runId);
      lastError = "";
      if (overview.workersUnavailable !== undefined && !warnedNoWorkerList) {
        // Once per process: the cause (an ACL or a managed service's policy) does not go away.
        warnedNoWorkerList = true;
        options.logger?.warn(
          "Redis refuses CLIENT LIST: memscore_queue_workers is not exported; every other queue gauge is",
          { queue, error: overview.workersUnavailable },
        );
      }
      return overview;
    } catch (error) {
      if (describeError(error) !== lastError) {
        lastError = describeError(error);
        options.logger?.warn("cannot read queue metrics from Redis", { queue, error: lastError });
      }
      return undefined;
    }
  };

  const current = scrapeRead(read, { cacheMs, timeoutMs, onTimeout: undefined });

  const redisUp = new Gauge({
    name: "memscore_redis_up",
    help: "1 when the last read of queue state from Redis succeeded, else 0.",
    labelNames: ["queue"],
    registers: [registry],
    async collect() {
      this.set({ queue }, (await current()) ? 1 : 0);
    },
  });
  void redisUp;

  // Gauges that describe the queue: absent (rather than stale) while Redis cannot be read.
  const queueGauge = (
    name: string,
    help: string,
    labelNames: string[],
    apply: (gauge: Gauge, overview: QueueOverview) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const overview = await current();
        this.reset();
        if (overview) apply(this, overview);
      },
    });

  queueGauge(
    "memscore_queue_jobs",
    "Chunk jobs in the queue, by BullMQ state.",
    ["queue", "state"],
    (g, o) => {
      for (const state of QUEUE_JOB_STATES) g.set({ queue, state }, o.jobs[state]);
    },
  );
  queueGauge(
    "memscore_queue_oldest_waiting_job_age_seconds",
    "Age of the oldest waiting chunk job (0 when none waits).",
    ["queue"],
    (g, o) => g.set({ queue }, o.oldestWaitingAgeSeconds),
  );
  queueGauge(
    "memscore_queue_workers",
    "BullMQ workers connected to the queue (absent when Redis refuses CLIENT LIST).",
    ["queue"],
    (g, o) => {
      if (o.workers) g.set({ queue }, o.workers.count);
    },
  );
  const inProgress = (o: QueueOverview) => o.runs.filter((r) => r.completedAt === undefined);
  queueGauge(
    "memscore_run_images_enqueued",
    "Images enqueued so far in a run in progress (final once its listing is done).",
    ["queue", "run_id"],
    (g, o) => {
      for (const run of inProgress(o)) g.set({ queue, run_id: run.runId }, runImageCounts(run).total);
    },
  );
  queueGauge(
    "memscore_run_images_done",
    "Images with an outcome (scored or failed) in a run in progress.",
    ["queue", "run_id"],
    (g, o) => {
      for (const run of inProgress(o)) g.set({ queue, run_id: run.runId }, runImageCounts(run).done);
    },
  );
  queueGauge(
    "memscore_run_images_failed",
    "Images that could not be scored in a run in progress.",
    ["queue", "run_id"],
    (g, o) => {
      for (const run of inProgress(o)) g.set({ queue, run_id: run.runId }, run.imagesFailed);
    },
  );
  queueGauge(
    "memscore_run_listing_done",
    "1 once the producer has enqueued a run's last chunk, else 0 (runs in progress).",
    ["queue", "run_id"],
    (g, o) => {
      for (const run of inProgress(o)) g.set({ queue, run_id: run.runId }, run.listingDone ? 1 : 0);
    },
  );
}
