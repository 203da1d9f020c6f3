import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import type { ImageErrorReason } from "./errors.js";
import { type HeatmapFormat, heatmapSuffix } from "./heatmap-format.js";
import { ParquetResultsWriter } from "./results-parquet.js";
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
  /** URI of the overlay; its extension is the run's heatmap format. Absent with format `none`. */
  heatmap?: string;
  error?: { reason: ImageErrorReason | string; message: string };
  /** The model that scored it: `sha256` of the model file; `trained` false means random weights. */
  model: {
    name: string;
    version: string;
    sha256: string;
    trained: boolean;
    training_data: string;
    /** The licence of the model's weights, as its metadata states it. */
    license: string;
  };
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
  /** Absent on records written before heatmap formats existed: those wrote PNG. */
  heatmapFormat: "heatmap-format",
} as const;

/** One row of a run's results table. */
export interface ResultRow {
  uri: string;
  status: "scored" | "error" | "skipped";
  score?: number;
  heatmap?: string;
  error_reason?: string;
  error_message?: string;
  /** sha256 of the model that scored (or failed, or would have scored) the image. */
  model_sha256?: string;
}

/**
 * Where one image's outputs go: `<rel>.json`, and `<rel>.heatmap.<ext>` unless the format is
 * `none`. Throws {@link S3UriError} (reason `invalid_uri`) when they would need a key longer than
 * S3 allows: S3 answers such a PUT with a 400 that would otherwise look like a transient fault
 * and be retried to no end.
 */
export function outputLocations(
  outputPrefix: string,
  rel: string,
  heatmapFormat: HeatmapFormat,
): { record: S3Location; heatmap: S3Location | undefined } {
  const out = parseS3Uri(outputPrefix);
  const base = asPrefix(out.key) + safeRelativeKey(rel);
  const record = `${base}.json`;
  const heatmap = heatmapFormat === "none" ? undefined : base + heatmapSuffix(heatmapFormat);
  if (Buffer.byteLength(heatmap ?? record, "utf8") > MAX_KEY_BYTES) {
    throw new S3UriError(
      `the outputs of "${rel}" under ${outputPrefix} would need keys longer than ${MAX_KEY_BYTES} bytes`,
    );
  }
  return {
    record: { bucket: out.bucket, key: record },
    heatmap: heatmap === undefined ? undefined : { bucket: out.bucket, key: heatmap },
  };
}

/** Where a run's tables, summary and report go: `<output prefix>/_runs/RUN_ID/`. */
export function runDirectory(outputPrefix: string, runId: string): S3Location {
  const out = parseS3Uri(outputPrefix);
  return { bucket: out.bucket, key: `${asPrefix(out.key)}_runs/${runId}/` };
}

/**
 * Splits a run directory URI (`s3://OUT/P/_runs/RUN_ID/`, trailing slash optional) into the
 * output prefix and run id; undefined when the URI does not end in `_runs/RUN_ID`.
 */
export function parseRunDirectory(uri: string): { outputPrefix: string; runId: string } | undefined {
  const location = parseS3Uri(uri);
  const match = /^(.*?)_runs\/([^/]+)\/?$/.exec(location.key);
  if (!match || (match[1] !== "" && !match[1]?.endsWith("/"))) return undefined;
  return {
    outputPrefix: formatS3Uri({ bucket: location.bucket, key: match[1] ?? "" }),
    runId: match[2] ?? "",
  };
}

/** Writes one part of a run's results table (a chunk's rows, or the rows the producer skipped). */
export async function writeResultsPart(
  storage: Storage,
  outputPrefix: string,
  runId: string,
  part: { kind: "chunk" | "skipped"; index: number },
  rows: readonly ResultRow[],
): Promise<void> {
  const dir = runDirectory(outputPrefix, runId);
  const key = `${dir.key}parts/${part.kind}-${String(part.index).padStart(8, "0")}.jsonl`;
  const body = rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");
  await storage.put({ bucket: dir.bucket, key }, body, { contentType: "application/x-ndjson" });
}

const CSV_COLUMNS = [
  "uri",
  "status",
  "score",
  "heatmap",
  "error_reason",
  "error_message",
  "model_sha256",
] as const;

function csvField(value: unknown): string {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV line for a row (RFC 4180 quoting). */
export function toCsvLine(row: ResultRow): string {
  return `${CSV_COLUMNS.map((c) => csvField(row[c])).join(",")}\n`;
}

/** What a run's table holds, counted while it is merged. */
export interface ResultsTally {
  rows: number;
  byStatus: Record<ResultRow["status"], number>;
  errorsByReason: Record<string, number>;
  /** Rows per model sha256 (more than one key: the run's workers ran different models). */
  rowsByModelSha256: Record<string, number>;
}

function countRow(tally: ResultsTally, row: ResultRow): void {
  tally.rows++;
  tally.byStatus[row.status] = (tally.byStatus[row.status] ?? 0) + 1;
  if (row.status === "error") {
    const reason = row.error_reason ?? "unknown";
    tally.errorsByReason[reason] = (tally.errorsByReason[reason] ?? 0) + 1;
  }
  if (row.model_sha256) {
    tally.rowsByModelSha256[row.model_sha256] = (tally.rowsByModelSha256[row.model_sha256] ?? 0) + 1;
  }
}

/**
 * Merges a run's parts, in part order, into `_runs/RUN_ID/results.jsonl`, `results.csv` and
 * `results.parquet`. Parts are read one line at a time and the three tables are streamed up
 * (Parquet a row group at a time), so memory stays bounded for runs of millions of images.
 */
export async function writeRunResults(
  storage: Storage,
  outputPrefix: string,
  runId: string,
): Promise<ResultsTally> {
  const dir = runDirectory(outputPrefix, runId);
  const jsonl = new PassThrough();
  const csv = new PassThrough();
  const parquetStream = new PassThrough();
  const put = (format: ResultsFormat, body: PassThrough) =>
    storage.putStream(
      { bucket: dir.bucket, key: `${dir.key}results.${format}` },
      body,
      RESULTS_CONTENT_TYPES[format],
    );
  const uploads = Promise.all([put("jsonl", jsonl), put("csv", csv), put("parquet", parquetStream)]);
  const write = async (stream: PassThrough, text: string) => {
    if (!stream.write(text)) await new Promise((resolve) => stream.once("drain", resolve));
  };
  const parquet = new ParquetResultsWriter(parquetStream, { metadata: { "memscore.run_id": runId } });
  const tally: ResultsTally = {
    rows: 0,
    byStatus: { scored: 0, error: 0, skipped: 0 },
    errorsByReason: {},
    rowsByModelSha256: {},
  };
  try {
    await write(csv, `${CSV_COLUMNS.join(",")}\n`);
    for await (const part of storage.list({ bucket: dir.bucket, key: `${dir.key}parts/` })) {
      const body = await storage.getStream({ bucket: dir.bucket, key: part.key });
      for await (const line of createInterface({ input: body, crlfDelay: Number.POSITIVE_INFINITY })) {
        if (line.trim() === "") continue;
        const row = JSON.parse(line) as ResultRow;
        countRow(tally, row);
        await write(jsonl, `${line}\n`);
        await write(csv, toCsvLine(row));
        await parquet.append(row);
      }
    }
    await parquet.close();
  } catch (error) {
    for (const stream of [jsonl, csv, parquetStream]) stream.destroy(error as Error);
    await uploads.catch(() => {});
    throw error;
  }
  jsonl.end();
  csv.end();
  parquetStream.end();
  await uploads;
  return tally;
}

/** The formats of a run's results table. */
export type ResultsFormat = "csv" | "jsonl" | "parquet";

const RESULTS_CONTENT_TYPES: Record<ResultsFormat, string> = {
  csv: "text/csv",
  jsonl: "application/x-ndjson",
  parquet: "application/vnd.apache.parquet",
};

/** The URI of a run's results table. */
export function resultsUri(outputPrefix: string, runId: string, format: ResultsFormat): string {
  const dir = runDirectory(outputPrefix, runId);
  return formatS3Uri({ bucket: dir.bucket, key: `${dir.key}results.${format}` });
}
