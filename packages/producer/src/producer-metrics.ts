import { Counter, Gauge, type Registry } from "prom-client";
import type { EnqueueProgress } from "./enqueue-options.js";

/** Run totals already enqueued before this process started (a resumed run), not to be counted again. */
export interface ProducerMetricsBaseline {
  imagesEnqueued: number;
  imagesSkipped: number;
  chunksEnqueued: number;
}

/**
 * A producer's Prometheus metrics, fed from the enqueue's progress reports (so the enqueue loop
 * needs no metrics code). Counters count what this process did; a resumed run's earlier totals
 * are the baseline and are not counted again.
 */
export class ProducerMetrics {
  private readonly listed: Counter;
  private readonly enqueued: Counter;
  private readonly skipped: Counter;
  private readonly chunks: Counter;
  private readonly backpressureWaits: Counter;
  private readonly waiting: Gauge;
  private last: { listed: number; enqueued: number; skipped: number; chunks: number; waiting: boolean };

  constructor(registry: Registry, baseline?: ProducerMetricsBaseline) {
    const registers = [registry];
    this.listed = new Counter({
      name: "memscore_producer_images_listed_total",
      help: "Images read from the input (S3 listing or manifest).",
      registers,
    });
    this.enqueued = new Counter({
      name: "memscore_producer_images_enqueued_total",
      help: "Images enqueued in chunk jobs.",
      registers,
    });
    this.skipped = new Counter({
      name: "memscore_producer_images_skipped_total",
      help: "Images left out because their output record is current (--skip-existing).",
      registers,
    });
    this.chunks = new Counter({
      name: "memscore_producer_chunks_enqueued_total",
      help: "Chunk jobs enqueued.",
      registers,
    });
    this.backpressureWaits = new Counter({
      name: "memscore_producer_backpressure_waits_total",
      help: "Times the producer paused because the run's unfinished chunks reached --max-pending.",
      registers,
    });
    this.waiting = new Gauge({
      name: "memscore_producer_waiting_for_workers",
      help: "1 while the producer is paused by backpressure, else 0.",
      registers,
    });
    this.waiting.set(0);
    this.last = {
      listed: 0,
      enqueued: baseline?.imagesEnqueued ?? 0,
      skipped: baseline?.imagesSkipped ?? 0,
      chunks: baseline?.chunksEnqueued ?? 0,
      waiting: false,
    };
  }

  /** Takes one progress report of `enqueueRun`; counts what changed since the previous one. */
  readonly observe = (progress: EnqueueProgress): void => {
    const grow = (counter: Counter, now: number, before: number) => {
      if (now > before) counter.inc(now - before);
      return Math.max(now, before);
    };
    this.last.listed = grow(this.listed, progress.imagesListed, this.last.listed);
    this.last.enqueued = grow(this.enqueued, progress.imagesEnqueued, this.last.enqueued);
    this.last.skipped = grow(this.skipped, progress.imagesSkipped, this.last.skipped);
    this.last.chunks = grow(this.chunks, progress.chunksEnqueued, this.last.chunks);
    if (progress.waitingForWorkers && !this.last.waiting) this.backpressureWaits.inc();
    this.last.waiting = progress.waitingForWorkers;
    this.waiting.set(progress.waitingForWorkers ? 1 : 0);
  };
}
