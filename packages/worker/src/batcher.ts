/**
 * The batch shapes of a padded engine: powers of two below `maxBatchSize`, then `maxBatchSize`
 * (16 → 1, 2, 4, 8, 16; 48 → 1, 2, 4, 8, 16, 32, 48). A batch of n images runs as the smallest
 * shape ≥ n, so at most half of any batch is padding.
 */
export function paddedBatchShapes(maxBatchSize: number): number[] {
  const shapes: number[] = [];
  for (let rows = 1; rows < maxBatchSize; rows *= 2) shapes.push(rows);
  shapes.push(maxBatchSize);
  return shapes;
}

/** Options of a {@link DynamicBatcher}. */
export interface DynamicBatcherOptions<I, O> {
  /** Largest batch handed to `runBatch`. */
  maxBatchSize: number;
  /** How long the oldest waiting item may wait for a batch to fill before a partial batch runs. */
  maxDelayMs: number;
  /** Batches running at once (one per model session is the norm). @defaultValue 1 */
  maxConcurrentBatches?: number;
  /** Runs one batch; must return one output per input, in order. */
  runBatch: (items: I[]) => Promise<O[]>;
}

interface Pending<I, O> {
  item: I;
  enqueuedAt: number;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** Counters for batch efficiency (mean fill = items ÷ (batches × maxBatchSize)). */
export interface BatcherStats {
  batches: number;
  items: number;
  /** Milliseconds during which at least one batch was running (the engine's busy time). */
  busyMs: number;
}

/**
 * Dynamic batching in the manner of Triton's: items from all callers are grouped into batches of
 * up to `maxBatchSize`. A batch runs as soon as it is full, or once its oldest item has waited
 * `maxDelayMs`, whichever comes first — but only while fewer than `maxConcurrentBatches` run.
 * Items that arrive while the engine is busy accumulate, so under load every batch is full and
 * the engine never waits for a timer; when load is light, one image still completes within
 * `maxDelayMs` plus one inference.
 */
export class DynamicBatcher<I, O> {
  private readonly options: Required<DynamicBatcherOptions<I, O>>;
  private readonly queue: Pending<I, O>[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private busySince = 0;
  private idleWaiters: (() => void)[] = [];
  private flushing = false;
  readonly stats: BatcherStats = { batches: 0, items: 0, busyMs: 0 };

  constructor(options: DynamicBatcherOptions<I, O>) {
    if (options.maxBatchSize < 1) throw new RangeError("maxBatchSize must be at least 1");
    this.options = { maxConcurrentBatches: 1, ...options };
  }

  /** Queues one item; resolves with its own output once its batch has run. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, enqueuedAt: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting for a batch. */
  get pending(): number {
    return this.queue.length;
  }

  /** Engine busy time including the batch running now, in milliseconds. */
  busyMs(now = performance.now()): number {
    return this.stats.busyMs + (this.running > 0 ? now - this.busySince : 0);
  }

  /**
   * Runs what is queued without waiting for fuller batches (when closing), then resolves once
   * nothing is queued or running.
   */
  async flush(): Promise<void> {
    this.flushing = true;
    this.schedule();
    await this.drain();
  }

  /** Resolves once nothing is queued or running. */
  async drain(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.queue.length === 0 || this.running >= this.options.maxConcurrentBatches) return;
    const waited = performance.now() - (this.queue[0] as Pending<I, O>).enqueuedAt;
    if (
      this.queue.length >= this.options.maxBatchSize ||
      waited >= this.options.maxDelayMs ||
      this.flushing
    ) {
      this.clearTimer();
      this.launch(this.queue.splice(0, this.options.maxBatchSize));
      this.schedule(); // another slot may be free (maxConcurrentBatches > 1)
      return;
    }
    // Not full and not yet late: wake up when the oldest item's delay is spent.
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.options.maxDelayMs - waited);
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private launch(batch: Pending<I, O>[]): void {
    if (this.running === 0) this.busySince = performance.now();
    this.running++;
    this.stats.batches++;
    this.stats.items += batch.length;
    const settle = (apply: () => void) => {
      this.running--;
      if (this.running === 0) this.stats.busyMs += performance.now() - this.busySince;
      apply();
      this.schedule();
      if (this.queue.length === 0 && this.running === 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      }
    };
    this.options.runBatch(batch.map((p) => p.item)).then(
      (outputs) =>
        settle(() => {
          if (outputs.length !== batch.length) {
            const error = new Error(`runBatch returned ${outputs.length} outputs for ${batch.length} inputs`);
            for (const p of batch) p.reject(error);
            return;
          }
          for (const [i, p] of batch.entries()) p.resolve(outputs[i] as O);
        }),
      (error: unknown) =>
        settle(() => {
          for (const p of batch) p.reject(error);
        }),
    );
  }
}
