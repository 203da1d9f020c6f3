import { PassThrough } from "node:stream";
import type { ImageErrorReason } from "./errors.js";
import {
  asPrefix,
  formatS3Uri,
  MAX_KEY_BYTES,
  parseS3Uri,
  type S3Location,
  S3UriError,
  safeRelativeKey,
} from "./s3-uri.js";
import type { Storage } from "./storage.js";

/** The per-image output record, written to `<output prefix>/<rel>.json`. */
export interface ImageRecord {
  uri: string;
  status: "scored" | "error";
  score?: number;
  /** Grad-CAM grid normalised to [0, 1] (divided by its maximum), rows first. */
  gradcam?: number[][];
  /** The raw grid's maximum, so the unnormalised grid can be recovered. */
  gradcam_max?: number;
  heatmap?: string;
  error?: { reason: ImageErrorReason | string; message: string };
  model: { name: string; version: string; sha256: string; trained: boolean };
  input: { etag?: string; size?: number; width?: number; height?: number; format?: string };
  run_id: string;
  started_at: string;
  finished_at: string;
}

/** S3 user metadata on every record, so `--skip-existing` can decide with a HEAD, not a GET. */
export const RECORD_METADATA = {
  inputEtag: "input-etag",
  modelSha256: "model-sha256",
  status: "status",
} as const;

/** One row of a run's results table. */
export interface ResultRow {
  uri: string;
  status: "scored" | "error" | "skipped";
  score?: number;
  heatmap?: string;
  error_reason?: string;
  error_message?: string;
}

/**
 * Where one image's outputs go. Throws {@link S3UriError} (reason `invalid_uri`) when they would
 * need a key longer than S3 allows: S3 answers such a PUT with a 400 that would otherwise look
 * like a transient fault and be retried to no end.
 */
export function outputLocations(
  outputPrefix: string,
  rel: string,
): { record: S3Location; heatmap: S3Location } {
  const out = parseS3Uri(outputPrefix);
  const base = asPrefix(out.key) + safeRelativeKey(rel);
  const heatmap = `${base}.heatmap.png`; // the longer of the two keys
  if (Buffer.byteLength(heatmap, "utf8") > MAX_KEY_BYTES) {
    throw new S3UriError(
      `the outputs of "${rel}" under ${outputPrefix} would need keys longer than ${MAX_KEY_BYTES} bytes`,
    );
  }
  return {
    record: { bucket: out.bucket, key: `${base}.json` },
    heatmap: { bucket: out.bucket, key: heatmap },
  };
}

function runPrefix(outputPrefix: string, runId: string): S3Location {
  const out = parseS3Uri(outputPrefix);
  return { bucket: out.bucket, key: `${asPrefix(out.key)}_runs/${runId}/` };
}

/** Writes one part of a run's results table (a chunk's rows, or the rows the producer skipped). */
export async function writeResultsPart(
  storage: Storage,
  outputPrefix: string,
  runId: string,
  part: { kind: "chunk" | "skipped"; index: number },
  rows: readonly ResultRow[],
): Promise<void> {
  const dir = runPrefix(outputPrefix, runId);
  const key = `${dir.key}parts/${part.kind}-${String(part.index).padStart(8, "0")}.jsonl`;
  const body = rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");
  await storage.put({ bucket: dir.bucket, key }, body, { contentType: "application/x-ndjson" });
}

const CSV_COLUMNS = ["uri", "status", "score", "heatmap", "error_reason", "error_message"] as const;

function csvField(value: unknown): string {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV line for a row (RFC 4180 quoting). */
export function toCsvLine(row: ResultRow): string {
  return `${CSV_COLUMNS.map((c) => csvField(row[c])).join(",")}\n`;
}

/**
 * Merges a run's parts, in part order, into `_runs/RUN_ID/results.jsonl` and `results.csv`.
 * Parts are read one at a time and both tables are streamed up, so memory stays bounded for
 * runs of millions of images. Returns the number of rows.
 */
export async function finalizeRunResults(
  storage: Storage,
  outputPrefix: string,
  runId: string,
): Promise<number> {
  const dir = runPrefix(outputPrefix, runId);
  const jsonl = new PassThrough();
  const csv = new PassThrough();
  const uploads = Promise.all([
    storage.putStream({ bucket: dir.bucket, key: `${dir.key}results.jsonl` }, jsonl, "application/x-ndjson"),
    storage.putStream({ bucket: dir.bucket, key: `${dir.key}results.csv` }, csv, "text/csv"),
  ]);
  const write = async (stream: PassThrough, text: string) => {
    if (!stream.write(text)) await new Promise((resolve) => stream.once("drain", resolve));
  };
  let rows = 0;
  try {
    await write(csv, `${CSV_COLUMNS.join(",")}\n`);
    for await (const part of storage.list({ bucket: dir.bucket, key: `${dir.key}parts/` })) {
      const text = await storage.getText({ bucket: dir.bucket, key: part.key }, 1024 * 1024 * 1024);
      for (const line of (text ?? "").split("\n")) {
        if (line.trim() === "") continue;
        rows++;
        await write(jsonl, `${line}\n`);
        await write(csv, toCsvLine(JSON.parse(line) as ResultRow));
      }
    }
  } catch (error) {
    jsonl.destroy(error as Error);
    csv.destroy(error as Error);
    await uploads.catch(() => {});
    throw error;
  }
  jsonl.end();
  csv.end();
  await uploads;
  return rows;
}

/** The URI of a run's results table (`csv` or `jsonl`). */
export function resultsUri(outputPrefix: string, runId: string, format: "csv" | "jsonl"): string {
  const dir = runPrefix(outputPrefix, runId);
  return formatS3Uri({ bucket: dir.bucket, key: `${dir.key}results.${format}` });
}
