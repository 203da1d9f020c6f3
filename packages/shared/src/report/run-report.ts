import { resultsUri, runDirectory } from "../results.js";
import { type RunSummary, readRunSummary } from "../run-summary.js";
import { parseS3Uri, type S3Location } from "../s3-uri.js";
import type { Storage } from "../storage.js";
import { renderRunReport } from "./report-html.js";
import { digestResults, type ResultsDigest } from "./results-digest.js";
import { readResultLines } from "./results-stream.js";
import { makeThumbnails, type ThumbnailOptions } from "./thumbnails.js";

export interface RunReportOptions {
  /** Images in each of the top and bottom lists. @defaultValue 24 */
  top?: number;
  thumbnails?: ThumbnailOptions;
}

/** A rendered report and what it was made from. */
export interface RunReport {
  html: string;
  summary: RunSummary;
  digest: ResultsDigest;
}

/** Where `--upload` puts a run's report: next to its results tables. */
export function runReportLocation(outputPrefix: string, runId: string): S3Location {
  const dir = runDirectory(outputPrefix, runId);
  return { bucket: dir.bucket, key: `${dir.key}report.html` };
}

/**
 * Builds the HTML report of a completed run: reads its summary (`run.json`), streams its
 * results.jsonl once (flat memory), then fetches and shrinks the heatmaps of the top and bottom
 * images only.
 */
export async function buildRunReport(
  storage: Storage,
  run: { outputPrefix: string; runId: string },
  options: RunReportOptions = {},
): Promise<RunReport> {
  const summary = await readRunSummary(storage, run.outputPrefix, run.runId);
  const source = resultsUri(run.outputPrefix, run.runId, "jsonl");
  const digest = await digestResults(readResultLines(storage, parseS3Uri(source)), {
    top: options.top ?? 24,
  });
  const heatmaps = [...digest.top, ...digest.bottom].flatMap((image) =>
    image.heatmap ? [image.heatmap] : [],
  );
  const thumbnails = await makeThumbnails(storage, heatmaps, options.thumbnails);
  const html = renderRunReport({
    summary,
    digest,
    thumbnails,
    source,
    generatedAt: new Date().toISOString(),
  });
  return { html, summary, digest };
}

/** Writes a report next to the run's results tables; returns where. */
export async function uploadRunReport(
  storage: Storage,
  run: { outputPrefix: string; runId: string },
  html: string,
): Promise<S3Location> {
  const location = runReportLocation(run.outputPrefix, run.runId);
  await storage.put(location, html, { contentType: "text/html; charset=utf-8" });
  return location;
}
