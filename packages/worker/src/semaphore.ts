/**
 * Counts permits for a bounded stage: at most `limit` holders at once, waiters served in FIFO
 * order. Bounding how many images are between "fetched" and "written" is what keeps a worker's
 * memory flat however deep the queue is.
 */
export class Semaphore {
  private available: number;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (limit < 1) throw new RangeError("limit must be at least 1");
    this.available = limit;
  }

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.available++;
  }

  /** Runs `task` holding one permit. */
  async use<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  get inUse(): number {
    return this.limit - this.available;
  }
}
