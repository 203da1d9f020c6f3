import { createInterface } from "node:readline";
import { ImageError } from "../errors.js";
import type { ResultRow } from "../results.js";
import { RunOutputError } from "../run-summary.js";
import { formatS3Uri, type S3Location } from "../s3-uri.js";
import type { Storage } from "../storage.js";

/** A line of results.jsonl that is not a valid row: reported, and the rest is still read. */
export interface BadResultLine {
  line: number;
  problem: string;
}

/** One line of results.jsonl: a valid row, or why it is not one. */
export type ResultLine = { line: number; row: ResultRow } | ({ row?: undefined } & BadResultLine);

const STATUSES = new Set(["scored", "error", "skipped"]);

/** Checks one parsed line; returns the problem, or undefined for a valid row. */
function rowProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const row = value as Record<string, unknown>;
  if (typeof row.uri !== "string" || row.uri === "") return '"uri" is not a string';
  if (typeof row.status !== "string" || !STATUSES.has(row.status))
    return `"status" is not scored, error or skipped`;
  if (row.status === "scored" && (typeof row.score !== "number" || !Number.isFinite(row.score)))
    return 'a scored row without a numeric "score"';
  for (const key of ["heatmap", "error_reason", "error_message", "model_sha256"]) {
    if (row[key] !== undefined && typeof row[key] !== "string") return `"${key}" is not a string`;
  }
  return undefined;
}

/**
 * Streams a run's results.jsonl line by line: one line is held at a time, so memory stays flat
 * however many rows the run has. A missing table is a {@link RunOutputError}.
 */
export async function* readResultLines(storage: Storage, location: S3Location): AsyncGenerator<ResultLine> {
  let body: NodeJS.ReadableStream;
  try {
    body = await storage.getStream(location);
  } catch (error) {
    if (error instanceof ImageError && error.reason === "not_found")
      throw new RunOutputError(`${formatS3Uri(location)} not found: the run has no results table`);
    throw error;
  }
  let line = 0;
  for await (const text of createInterface({ input: body, crlfDelay: Number.POSITIVE_INFINITY })) {
    line++;
    if (text.trim() !== "") yield parseResultLine(text, line);
  }
}

/** Parses and checks one line of results.jsonl (numbered from 1). */
export function parseResultLine(text: string, line: number): ResultLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { line, problem: "not JSON" };
  }
  const problem = rowProblem(value);
  return problem === undefined ? { line, row: value as ResultRow } : { line, problem };
}
