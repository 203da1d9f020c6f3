import { describeError } from "./errors.js";
import type { Logger } from "./logger.js";

/** The drain deadline of every service's graceful stop, unless the caller gives another. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** How to stop: drain what is in hand (until `timeoutMs`), or at once. */
export interface StopOptions {
  /** @defaultValue true */
  graceful?: boolean;
  /** Deadline of a graceful drain, after which the stop turns forced. @defaultValue {@link DEFAULT_DRAIN_TIMEOUT_MS} */
  timeoutMs?: number;
}

/** What stopping one service means: its three steps. */
export interface StopSteps {
  /** Stop taking work and resolve once the work in hand is done (BullMQ's `worker.close(false)`). */
  drain: () => Promise<void>;
  /**
   * Hand the work in hand back so others take it now; `drained` is the drain still under way.
   * Called when the stop is forced, or a graceful drain outlives its deadline (then `deadlineMs`
   * is that deadline).
   */
  force: (drained: Promise<void>, why: { deadlineMs?: number }) => Promise<void>;
  /** Release what the service holds (threads, connections), each step on its own. */
  cleanup: readonly (() => unknown)[];
  logger: Logger;
}

/**
 * The graceful → forced stop that every long-running service shares (the worker and the
 * producer service): drain until the deadline, then force; a forced call during a graceful stop
 * escalates it instead of waiting behind it; every cleanup step runs, in order, even if one
 * fails. Idempotent: later calls share the first stop.
 */
export class ServiceStop {
  private stopping?: Promise<void>;
  private forceNow?: () => void;

  constructor(private readonly steps: StopSteps) {}

  get started(): boolean {
    return this.stopping !== undefined;
  }

  stop(options: StopOptions = {}): Promise<void> {
    if (this.stopping && options.graceful === false) this.forceNow?.();
    this.stopping ??= this.run(options.graceful ?? true, options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
    return this.stopping;
  }

  private async run(graceful: boolean, timeoutMs: number): Promise<void> {
    const { logger } = this.steps;
    let timer: NodeJS.Timeout | undefined;
    try {
      const drained = this.steps.drain();
      let forced = !graceful;
      if (graceful) {
        forced = await Promise.race([
          drained.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), timeoutMs);
            this.forceNow = () => resolve(true);
          }),
        ]);
      } else drained.catch(() => {});
      if (forced) await this.steps.force(drained, graceful ? { deadlineMs: timeoutMs } : {});
    } catch (error) {
      logger.error("error while stopping", { error: describeError(error) });
    } finally {
      if (timer) clearTimeout(timer);
    }
    for (const step of this.steps.cleanup) {
      try {
        await step();
      } catch (error) {
        logger.warn("cleanup step failed", { error: describeError(error) });
      }
    }
  }
}
