import { constants } from "node:os";
import type { Logger, StopOptions } from "@memscore/shared";

/**
 * The longest a forced stop may take before the process exits anyway. Cleanup talks to Redis and
 * S3, which may be gone; every step is bounded, and this is the bound on all of them together.
 */
export const FORCED_STOP_EXIT_MS = 10_000;

/**
 * Two-stage shutdown for long-running commands, over a service's {@link StopOptions} stop. The
 * first SIGTERM/SIGINT starts a graceful stop with `drainTimeoutMs`; a second signal a forced
 * one. Resolves with the exit code a shell expects after that signal (128 + signal number), once
 * the stop has finished. A forced stop that has not finished within {@link FORCED_STOP_EXIT_MS}
 * (or a graceful one within `drainTimeoutMs` plus that) exits the process with the same code:
 * whatever a server that has gone away is doing, the process ends.
 */
export function installShutdownHandlers(options: {
  logger: Logger;
  stop: (options: StopOptions) => Promise<void>;
  /** The graceful stop's drain deadline, after which it turns forced. */
  drainTimeoutMs: number;
}): Promise<number> {
  return new Promise((resolve) => {
    let signals = 0;
    const exitAfter = (ms: number, code: number) => {
      setTimeout(() => {
        options.logger.error("stop did not finish in time: exiting now", { afterMs: ms });
        process.exit(code);
      }, ms).unref();
    };
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      const code = 128 + (constants.signals[signal] ?? 15);
      if (signals === 1) {
        options.logger.info("shutting down gracefully (send the signal again to force)", { signal });
        exitAfter(options.drainTimeoutMs + FORCED_STOP_EXIT_MS, code);
        void options.stop({ graceful: true, timeoutMs: options.drainTimeoutMs }).then(() => resolve(code));
      } else if (signals === 2) {
        options.logger.warn("forced shutdown", { signal });
        exitAfter(FORCED_STOP_EXIT_MS, code);
        void options.stop({ graceful: false }).then(() => resolve(code));
      }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
