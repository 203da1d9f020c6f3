export interface ScrapeReadOptions<T> {
  /** Calls within this long of the last read's end reuse its result. */
  cacheMs: number;
  /** A read slower than this answers `onTimeout` for that call (the read goes on for the next). */
  timeoutMs: number;
  onTimeout: T;
}

/**
 * Wraps the read behind gauges collected on scrape: one read at a time, shared by every gauge
 * of a scrape and by concurrent scrapes, cached briefly so scrapes do not hammer Redis, and
 * waited for only up to a timeout, so a read hanging on a dead connection cannot hang a scrape.
 * `read` must not reject (it reports its own failures in its result).
 */
export function scrapeRead<T>(read: () => Promise<T>, options: ScrapeReadOptions<T>): () => Promise<T> {
  let cached: { value: T; at: number } | undefined;
  let reading: Promise<T> | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < options.cacheMs) return cached.value;
    reading ??= read().then((value) => {
      cached = { value, at: Date.now() };
      reading = undefined;
      return value;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<T>((resolve) => {
      timer = setTimeout(() => resolve(options.onTimeout), options.timeoutMs);
    });
    try {
      return await Promise.race([reading, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}
