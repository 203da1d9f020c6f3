import type { Logger } from "./logger.js";
import { finalizeRunResults, resultsUri } from "./results.js";
import type { RunState } from "./run-state.js";
import type { Storage } from "./storage.js";

/**
 * Writes a run's results table after this process claimed its finalisation (see RunState). On
 * failure the claim is released so that a retry, or another process, can finish the job.
 */
export async function completeRun(storage: Storage, run: RunState, logger: Logger): Promise<void> {
  const snapshot = await run.snapshot();
  if (!snapshot) return;
  try {
    const rows = await finalizeRunResults(storage, snapshot.outputPrefix, run.runId);
    await run.markFinalized();
    logger.info("run complete", {
      runId: run.runId,
      rows,
      results: resultsUri(snapshot.outputPrefix, run.runId, "csv"),
    });
  } catch (error) {
    await run.releaseFinalize();
    throw error;
  }
}
