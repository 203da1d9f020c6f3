import { constants } from "node:os";
import type { Logger } from "@memscore/shared";

/**
 * Two-stage shutdown for long-running commands. The first SIGTERM/SIGINT starts `graceful`; a
 * second signal starts `forced`. Resolves with the exit code a shell expects after that signal
 * (128 + signal number), once the stop has finished.
 */
export function installShutdownHandlers(options: {
  logger: Logger;
  graceful: () => Promise<void>;
  forced: () => Promise<void>;
}): Promise<number> {
  return new Promise((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      const code = 128 + (constants.signals[signal] ?? 15);
      if (signals === 1) {
        options.logger.info("shutting down gracefully (send the signal again to force)", { signal });
        void options.graceful().then(() => resolve(code));
      } else if (signals === 2) {
        options.logger.warn("forced shutdown", { signal });
        void options.forced().then(() => resolve(code));
      }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
