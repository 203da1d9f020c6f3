import { MemscoreError } from "./errors.js";
import { type ResultsTally, resultsUri, runDirectory } from "./results.js";
import { formatS3Uri, type S3Location } from "./s3-uri.js";
import type { Storage } from "./storage.js";

/** The model a run's workers scored with, as the run's summary and report describe it. */
export interface RunModel {
  name: string;
  version: string;
  /** sha256 of the model file: the model's identity. */
  sha256: string;
  /** False for randomly initialised weights: their scores are not memorability. */
  trained: boolean;
  training_data: string;
  /** The weights' licence, when the model's metadata names one. */
  license?: string;
}

/** `_runs/RUN_ID/run.json`: what a run was and what came of it, written when it completes. */
export interface RunSummary {
  run_id: string;
  /** The input: an s3:// prefix or a manifest's description. */
  input: string;
  output_prefix: string;
  created_at: string;
  completed_at: string;
  /** Rows of the results table by status; `total` is every input image of the run. */
  images: { total: number; scored: number; error: number; skipped: number };
  errors_by_reason: Record<string, number>;
  /**
   * The model the first worker to record a chunk ran; null when no worker took part (every
   * image was skipped). `rows_by_model_sha256` tells whether all workers ran it.
   */
  model: RunModel | null;
  rows_by_model_sha256: Record<string, number>;
  results: { csv: string; jsonl: string; parquet: string };
}

/** A run's summary or results table is missing (the run has not completed) or malformed. */
export class RunOutputError extends MemscoreError {
  constructor(message: string) {
    super("run_output", message);
  }
}

/** Where a run's summary lives. */
export function runSummaryLocation(outputPrefix: string, runId: string): S3Location {
  const dir = runDirectory(outputPrefix, runId);
  return { bucket: dir.bucket, key: `${dir.key}run.json` };
}

/** Builds a completed run's summary from its Redis record and the tally of its results table. */
export function buildRunSummary(
  run: { runId: string; input: string; outputPrefix: string; createdAt: string; model?: RunModel },
  tally: ResultsTally,
  completedAt: string,
): RunSummary {
  return {
    run_id: run.runId,
    input: run.input,
    output_prefix: run.outputPrefix,
    created_at: run.createdAt,
    completed_at: completedAt,
    images: {
      total: tally.rows,
      scored: tally.byStatus.scored,
      error: tally.byStatus.error,
      skipped: tally.byStatus.skipped,
    },
    errors_by_reason: tally.errorsByReason,
    model: run.model ?? null,
    rows_by_model_sha256: tally.rowsByModelSha256,
    results: {
      csv: resultsUri(run.outputPrefix, run.runId, "csv"),
      jsonl: resultsUri(run.outputPrefix, run.runId, "jsonl"),
      parquet: resultsUri(run.outputPrefix, run.runId, "parquet"),
    },
  };
}

export async function writeRunSummary(storage: Storage, summary: RunSummary): Promise<void> {
  await storage.put(
    runSummaryLocation(summary.output_prefix, summary.run_id),
    `${JSON.stringify(summary, null, 2)}\n`,
    { contentType: "application/json" },
  );
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Validates a parsed run.json, naming the first bad field. */
export function parseRunSummary(value: unknown, where: string): RunSummary {
  const fail = (field: string, expected: string): never => {
    throw new RunOutputError(`${where}: "${field}" should be ${expected}`);
  };
  if (!isRecord(value)) return fail("(top level)", "an object");
  for (const key of ["run_id", "input", "output_prefix", "created_at", "completed_at"]) {
    if (typeof value[key] !== "string") fail(key, "a string");
  }
  const images = value.images;
  if (!isRecord(images)) return fail("images", "an object");
  for (const key of ["total", "scored", "error", "skipped"]) {
    if (!Number.isInteger(images[key])) fail(`images.${key}`, "an integer");
  }
  for (const key of ["errors_by_reason", "rows_by_model_sha256", "results"]) {
    if (!isRecord(value[key])) fail(key, "an object");
  }
  const model = value.model;
  if (model !== null) {
    if (!isRecord(model)) return fail("model", "an object or null");
    for (const key of ["name", "version", "sha256", "training_data"]) {
      if (typeof model[key] !== "string") fail(`model.${key}`, "a string");
    }
    if (typeof model.trained !== "boolean") fail("model.trained", "true or false");
    if (model.license !== undefined && typeof model.license !== "string") fail("model.license", "a string");
  }
  return value as unknown as RunSummary;
}

/** Reads a run's summary; a missing one means the run has not completed yet. */
export async function readRunSummary(
  storage: Storage,
  outputPrefix: string,
  runId: string,
): Promise<RunSummary> {
  const location = runSummaryLocation(outputPrefix, runId);
  const where = formatS3Uri(location);
  const text = await storage.getText(location);
  if (text === undefined) {
    throw new RunOutputError(
      `${where} not found: run "${runId}" has not completed under ${outputPrefix} (or never existed)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RunOutputError(`${where} is not JSON: ${(error as Error).message}`);
  }
  return parseRunSummary(parsed, where);
}
