/** What {@link settleWithin} saw: the task's value, or that the deadline came first. */
export type Settled<T> = { settled: true; value: T } | { settled: false };

/**
 * Waits for `task` at most `ms` milliseconds. A cleanup step that talks to a server that has gone
 * (Redis, S3) can wait for a reconnect forever; a stopping process must not. A rejection is
 * rethrown; the task itself is not cancelled (callers drop what it holds afterwards).
 */
export async function settleWithin<T>(task: Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ settled: false }), ms);
  });
  try {
    return await Promise.race([task.then((value): Settled<T> => ({ settled: true, value })), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
