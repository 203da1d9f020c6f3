/**
 * Throughput over a sliding time window: recent speed, not the average since the start, so the
 * rate and ETA follow workers joining or leaving the fleet.
 */
export class SlidingRate {
  private readonly samples: { at: number; value: number }[] = [];
  private readonly windowMs: number;

  /** @param windowMs how far back samples count. @defaultValue 30000 */
  constructor(windowMs = 30_000) {
    this.windowMs = windowMs;
  }

  /** Records a cumulative count (e.g. images done so far) at a time in ms. */
  add(value: number, at: number = Date.now()): void {
    this.samples.push({ at, value });
    // Keep one sample older than the window so the rate spans the whole window.
    while (this.samples.length > 2 && (this.samples[1] as { at: number }).at <= at - this.windowMs)
      this.samples.shift();
  }

  /** Units per second over the window; 0 until two samples at least 1 ms apart exist. */
  perSecond(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < 1) return 0;
    return ((last.value - first.value) * 1000) / (last.at - first.at);
  }
}
