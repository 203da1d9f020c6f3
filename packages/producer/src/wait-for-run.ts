import { setTimeout as sleep } from "node:timers/promises";
import { type RunSnapshot, RunState } from "@memscore/shared";
import type { Redis } from "ioredis";
import { RunNotFoundError } from "./errors.js";
import { SlidingRate } from "./progress-rate.js";

/** A run's progress as seen by someone waiting for it. */
export interface RunProgress {
  snapshot: RunSnapshot;
  /** Images with an outcome (scored or failed). */
  done: number;
  /** Images enqueued so far; final once `snapshot.listingDone` is true. */
  total: number;
  /** Images per second over the last ~30 s. */
  rate: number;
  /** Seconds left at the current rate; undefined while unknown (listing not done, or no rate yet). */
  etaSeconds: number | undefined;
  failuresByReason: Record<string, number>;
}

export interface WaitForRunOptions {
  onProgress?: (progress: RunProgress) => void;
  signal?: AbortSignal;
  /**
   * Wait between polls, in ms; or a function of the progress so far that picks each wait (a
   * benchmark that must see the end within milliseconds polls often only near it).
   * @defaultValue 500
   */
  pollMs?: number | ((progress: RunProgress) => number);
  /** Width of the rate window. @defaultValue 30000 */
  rateWindowMs?: number;
}

/** Derives progress numbers from a snapshot and the rate so far. */
export function runProgress(snapshot: RunSnapshot, rate: number): RunProgress {
  const done = snapshot.imagesScored + snapshot.imagesFailed;
  const total = Math.max(snapshot.imagesEnqueued, done);
  const etaSeconds =
    snapshot.completedAt !== undefined
      ? 0
      : snapshot.listingDone && rate > 0
        ? (total - done) / rate
        : undefined;
  return { snapshot, done, total, rate, etaSeconds, failuresByReason: snapshot.failuresByReason };
}

/**
 * Polls a run until its results table is written (`completedAt` set), reporting progress on
 * every poll. Returns the final snapshot. Aborting rejects with the signal's reason; the run
 * itself goes on.
 */
export async function waitForRun(
  redis: Redis,
  queueName: string,
  runId: string,
  options: WaitForRunOptions = {},
): Promise<RunSnapshot> {
  const run = new RunState(redis, queueName, runId);
  const rate = new SlidingRate(options.rateWindowMs);
  for (;;) {
    options.signal?.throwIfAborted();
    const snapshot = await run.snapshot();
    if (!snapshot) throw new RunNotFoundError(runId, queueName);
    rate.add(snapshot.imagesScored + snapshot.imagesFailed);
    const progress = runProgress(snapshot, rate.perSecond());
    options.onProgress?.(progress);
    if (snapshot.completedAt !== undefined) return snapshot;
    const pollMs = typeof options.pollMs === "function" ? options.pollMs(progress) : (options.pollMs ?? 500);
    await sleep(pollMs, undefined, { signal: options.signal });
  }
}
