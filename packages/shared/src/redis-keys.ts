/**
 * Every Redis key memscore writes besides BullMQ's own, in one place, so the producer, the
 * workers and the status command read and write the same names. All live under
 * `memscore:<queue>:` so one queue's state can be found (and removed) as a whole.
 */

/** The keys of one run's state (see RunState). */
export function runKeys(queueName: string, runId: string) {
  const base = `memscore:${queueName}:run:${runId}`;
  return {
    /** Hash: metadata, counters, listing and completion fields. */
    meta: base,
    /** Set: indices of the chunks recorded done. */
    done: `${base}:done`,
    /** Hash: failed images by reason. */
    failures: `${base}:failures`,
    /** Hash: where a resumed listing continues. */
    checkpoint: `${base}:checkpoint`,
  };
}

/** Sorted set of a queue's run ids by creation time. */
export function runIndexKey(queueName: string): string {
  return `memscore:${queueName}:runs`;
}

/** The run id of a schedule's latest scan. */
export function scheduleLastRunKey(queueName: string, schedule: string): string {
  return `memscore:${queueName}:schedule:${schedule}:last-run`;
}
