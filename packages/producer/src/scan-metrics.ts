import { Counter, Gauge, type Registry } from "prom-client";

/** How a scheduled scan ended. */
export type ScanOutcome = "enqueued" | "skipped_busy" | "skipped_removed" | "failed" | "handed_back";

/**
 * Metrics of the producer service's scheduled scans. The per-image counters of the runs it
 * enqueues are {@link ProducerMetrics}'; these count scans. `schedule` is bounded by the
 * number of schedules.
 */
export class ScanMetrics {
  private readonly scans: Counter;
  private readonly active: Gauge;
  private readonly lastEnqueued: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.scans = new Counter({
      name: "memscore_producer_scans_total",
      help: "Scheduled scans, by schedule and outcome (enqueued, skipped_busy, skipped_removed, failed, handed_back).",
      labelNames: ["schedule", "outcome"],
      registers,
    });
    this.active = new Gauge({
      name: "memscore_producer_scans_active",
      help: "Scheduled scans this producer is running now.",
      registers,
    });
    this.active.set(0);
    this.lastEnqueued = new Gauge({
      name: "memscore_producer_last_scan_timestamp_seconds",
      help: "When a schedule's last scan that enqueued a run finished (Unix time).",
      labelNames: ["schedule"],
      registers,
    });
  }

  scanStarted(): void {
    this.active.inc();
  }

  scanEnded(schedule: string, outcome: ScanOutcome): void {
    this.active.dec();
    this.scans.inc({ schedule, outcome });
    if (outcome === "enqueued") this.lastEnqueued.set({ schedule }, Date.now() / 1000);
  }
}
