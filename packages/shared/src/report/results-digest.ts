import type { ResultRow } from "../results.js";
import { BoundedHeap } from "./bounded-heap.js";
import type { BadResultLine, ResultLine } from "./results-stream.js";
import { ScoreHistogram } from "./score-histogram.js";

/** A scored image as the report lists it. */
export interface ScoredImage {
  uri: string;
  score: number;
  heatmap?: string;
}

/** Failures of one reason: how many, and the first few URIs as examples. */
export interface ErrorReasonDigest {
  count: number;
  examples: string[];
}

/** Everything the report shows of a results table, gathered in one pass in bounded memory. */
export interface ResultsDigest {
  rows: number;
  byStatus: Record<ResultRow["status"], number>;
  errorsByReason: Map<string, ErrorReasonDigest>;
  histogram: ScoreHistogram;
  /** The highest scores, highest first. */
  top: ScoredImage[];
  /** The lowest scores, lowest first. */
  bottom: ScoredImage[];
  badLines: { count: number; first: BadResultLine[] };
}

export interface DigestOptions {
  /** Images in each of the top and bottom lists. */
  top: number;
  /** Example URIs kept per error reason. @defaultValue 3 */
  examplesPerReason?: number;
}

/** Distinct error reasons tracked one by one; any beyond are counted together. */
const MAX_REASONS = 64;
export const OTHER_REASONS = "(other reasons)";
const BAD_LINES_KEPT = 5;

// Ties broken by URI, so the lists do not depend on the table's order.
const higher = (a: ScoredImage, b: ScoredImage) =>
  a.score > b.score || (a.score === b.score && a.uri < b.uri);
const lower = (a: ScoredImage, b: ScoredImage) => a.score < b.score || (a.score === b.score && a.uri < b.uri);

/**
 * Reads a stream of result lines once: counts by status and by error reason (with example URIs),
 * a histogram of scores (counts only), and the top and bottom N in bounded heaps. Memory depends
 * on N, never on the number of rows.
 */
export async function digestResults(
  lines: AsyncIterable<ResultLine>,
  options: DigestOptions,
): Promise<ResultsDigest> {
  const examplesPerReason = options.examplesPerReason ?? 3;
  const top = new BoundedHeap<ScoredImage>(options.top, higher);
  const bottom = new BoundedHeap<ScoredImage>(options.top, lower);
  const digest: ResultsDigest = {
    rows: 0,
    byStatus: { scored: 0, error: 0, skipped: 0 },
    errorsByReason: new Map(),
    histogram: new ScoreHistogram(),
    top: [],
    bottom: [],
    badLines: { count: 0, first: [] },
  };
  for await (const line of lines) {
    if (line.row === undefined) {
      digest.badLines.count++;
      if (digest.badLines.first.length < BAD_LINES_KEPT) digest.badLines.first.push(line);
      continue;
    }
    const row = line.row;
    digest.rows++;
    digest.byStatus[row.status]++;
    if (row.status === "scored") {
      const image: ScoredImage = {
        uri: row.uri,
        score: row.score as number,
        ...(row.heatmap && { heatmap: row.heatmap }),
      };
      digest.histogram.add(image.score);
      top.offer(image);
      bottom.offer(image);
    } else if (row.status === "error") {
      const named = row.error_reason || "unknown";
      const reason =
        digest.errorsByReason.has(named) || digest.errorsByReason.size < MAX_REASONS ? named : OTHER_REASONS;
      const entry = digest.errorsByReason.get(reason) ?? { count: 0, examples: [] };
      entry.count++;
      if (entry.examples.length < examplesPerReason) entry.examples.push(row.uri);
      digest.errorsByReason.set(reason, entry);
    }
  }
  digest.top = top.sorted();
  digest.bottom = bottom.sorted();
  return digest;
}
