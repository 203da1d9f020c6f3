import { describeError, type Logger, scrapeRead } from "@memscore/shared";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";
import type { ScanJobData } from "./scan-job.js";
import { lastScheduledRun, listSchedules } from "./schedules.js";

export interface ScheduleMetricsOptions {
  /** The scans queue ({@link openScanQueue}). */
  scanQueue: Queue<ScanJobData>;
  redis: Redis;
  /** The chunk queue's name: the `queue` label, as on every other queue gauge. */
  queueName: string;
  /** Scrapes within this long of the last read reuse it. @defaultValue 5000 */
  cacheMs?: number;
  /** A slower read leaves the gauges out of that scrape. @defaultValue 2000 */
  timeoutMs?: number;
  logger?: Logger;
}

interface ScheduleReading {
  schedule: string;
  nextAt: number | undefined;
  lastRunAt: number | undefined;
}

/**
 * Per-schedule gauges read from Redis when scraped, so they survive producer restarts and say
 * the same in every producer: when the next iteration is due (overdue means no producer takes
 * scans) and when the schedule's latest run was created. `schedule` is bounded by the schedules.
 */
export function registerScheduleMetrics(registry: Registry, options: ScheduleMetricsOptions): void {
  const cacheMs = options.cacheMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  let lastError = "";

  const read = async (): Promise<ScheduleReading[]> => {
    try {
      const schedules = await listSchedules(options.scanQueue);
      const runs = await Promise.all(
        schedules.map((s) => lastScheduledRun(options.redis, options.queueName, s.name)),
      );
      lastError = "";
      return schedules.map((s, i) => {
        const createdAt = Date.parse(runs[i]?.createdAt ?? "");
        return {
          schedule: s.name,
          nextAt: s.nextAt,
          lastRunAt: Number.isNaN(createdAt) ? undefined : createdAt,
        };
      });
    } catch (error) {
      if (describeError(error) !== lastError) {
        lastError = describeError(error);
        options.logger?.warn("cannot read schedules for metrics", { error: lastError });
      }
      return []; // absent rather than stale; memscore_redis_up says why
    }
  };
  const current = scrapeRead(read, { cacheMs, timeoutMs, onTimeout: [] });

  const gauge = (name: string, help: string, value: (r: ScheduleReading) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ["queue", "schedule"],
      registers: [registry],
      async collect() {
        const readings = await current();
        this.reset();
        for (const r of readings) {
          const v = value(r);
          if (v !== undefined) this.set({ queue: options.queueName, schedule: r.schedule }, v / 1000);
        }
      },
    });
  gauge(
    "memscore_schedule_next_run_timestamp_seconds",
    "When a schedule's next iteration is due (Unix time); in the past means no producer is taking scans.",
    (r) => r.nextAt,
  );
  gauge(
    "memscore_schedule_last_run_timestamp_seconds",
    "When a schedule's latest run was created (Unix time).",
    (r) => r.lastRunAt,
  );
}
