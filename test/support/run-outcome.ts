import type { S3Client } from "@aws-sdk/client-s3";
import sharp from "sharp";
import { jsonLines, runCli } from "./cli.js";
import { getBytes, listKeys } from "./s3.js";
import { RUN_TIMEOUT_MS } from "./timeouts.js";

/** One row of a run's results table (results.jsonl). */
export interface ResultRow {
  uri: string;
  status: string;
  score?: number;
  heatmap?: string;
  error_reason?: string;
  error_message?: string;
}

/** The final summary `memscore enqueue --wait --json` prints. */
export interface EnqueueSummary {
  runId: string;
  imagesEnqueued: number;
  final?: { imagesScored: number; imagesFailed: number; failuresByReason: Record<string, number> };
}

/**
 * `memscore enqueue <input> --out <out> --run-id ID --wait --json ...`, as a real process, killed
 * (and its stderr saying so) if the run has not completed within `timeoutMs`.
 */
export async function enqueueAndWait(
  env: NodeJS.ProcessEnv,
  input: string[],
  outputPrefix: string,
  runId: string,
  extra: string[] = [],
  timeoutMs = RUN_TIMEOUT_MS,
): Promise<{ code: number | null; summary: EnqueueSummary | undefined; stderr: string }> {
  const result = await runCli(
    ["enqueue", ...input, "--out", outputPrefix, "--run-id", runId, "--wait", "--json", ...extra],
    // A metrics port of its own (0: any free one), so producers of parallel tests never collide.
    { MEMSCORE_METRICS_PORT: "0", ...env },
    timeoutMs,
  );
  const line = result.stdout.trim().split("\n").at(-1);
  let summary: EnqueueSummary | undefined;
  try {
    summary = line ? (JSON.parse(line) as EnqueueSummary) : undefined;
  } catch {
    summary = undefined;
  }
  return { code: result.code, summary, stderr: result.stderr };
}

/** Reads `_runs/RUN_ID/results.jsonl` under an output prefix (`prefix` ends with "/"). */
export async function readResults(
  s3: S3Client,
  bucket: string,
  prefix: string,
  runId: string,
): Promise<ResultRow[]> {
  return jsonLines<ResultRow>(
    (await getBytes(s3, bucket, `${prefix}_runs/${runId}/results.jsonl`)).toString(),
  );
}

/**
 * Checks every output under a prefix the way a user would open them: every record is JSON, every
 * heatmap (JPEG, PNG or WebP) decodes in full. Returns the problems found (empty when all is well).
 */
export async function findCorruptOutputs(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const problems: string[] = [];
  const keys = await listKeys(s3, bucket, prefix);
  const check = async (key: string) => {
    const bytes = await getBytes(s3, bucket, key);
    try {
      if (key.endsWith(".json")) JSON.parse(bytes.toString("utf8"));
      else if (/\.heatmap\.(jpg|png|webp)$/.test(key)) {
        const { info } = await sharp(bytes, { failOn: "truncated" })
          .raw()
          .toBuffer({ resolveWithObject: true });
        if (info.width < 1 || info.height < 1) throw new Error("empty image");
      }
    } catch (error) {
      problems.push(`${key}: ${(error as Error).message}`);
    }
  };
  for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).map(check));
  return problems;
}

/** Rows by URI, failing loudly on a duplicate (an image scored twice). */
export function rowsByUri(rows: readonly ResultRow[]): Map<string, ResultRow> {
  const byUri = new Map<string, ResultRow>();
  for (const row of rows) {
    if (byUri.has(row.uri)) throw new Error(`duplicate row for ${row.uri}`);
    byUri.set(row.uri, row);
  }
  return byUri;
}
