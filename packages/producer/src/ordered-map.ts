/**
 * Applies `fn` to a stream with at most `concurrency` calls in flight, yielding results in input
 * order. Reading ahead stops at the limit, so memory stays bounded however long the stream is.
 * The first rejection is thrown when its turn comes; later in-flight calls are left to finish.
 */
export async function* mapOrdered<T, R>(
  source: AsyncIterable<T>,
  fn: (item: T) => Promise<R>,
  concurrency: number,
): AsyncGenerator<R> {
  const inFlight: Promise<R>[] = [];
  for await (const item of source) {
    const result = fn(item);
    // Observed later, in order; without this a rejection would be reported as unhandled meanwhile.
    result.catch(() => {});
    inFlight.push(result);
    if (inFlight.length >= concurrency) yield await (inFlight.shift() as Promise<R>);
  }
  while (inFlight.length > 0) yield await (inFlight.shift() as Promise<R>);
}
