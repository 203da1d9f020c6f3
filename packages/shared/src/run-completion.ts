import type { Logger } from "./logger.js";
import { resultsUri, writeRunResults } from "./results.js";
import type { RunState } from "./run-state.js";
import { buildRunSummary, runSummaryLocation, writeRunSummary } from "./run-summary.js";
import { formatS3Uri } from "./s3-uri.js";
import type { Storage } from "./storage.js";

/**
 * Writes a run's results tables and then its summary (`run.json`, which says the tables are
 * complete) after this process claimed its completion (see RunState). On failure the claim is
 * released so that a retry, or another process, can finish the job.
 */
export async function completeRun(storage: Storage, run: RunState, logger: Logger): Promise<void> {
  const snapshot = await run.snapshot();
  if (!snapshot) return;
  try {
    const tally = await writeRunResults(storage, snapshot.outputPrefix, run.runId);
    const completedAt = new Date().toISOString();
    await writeRunSummary(storage, buildRunSummary(snapshot, tally, completedAt));
    await run.markCompleted(completedAt);
    logger.info("run complete", {
      runId: run.runId,
      rows: tally.rows,
      results: resultsUri(snapshot.outputPrefix, run.runId, "csv"),
      summary: formatS3Uri(runSummaryLocation(snapshot.outputPrefix, run.runId)),
    });
  } catch (error) {
    await run.releaseCompletion();
    throw error;
  }
}
