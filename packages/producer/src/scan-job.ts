import {
  ConfigError,
  type HeatmapFormat,
  isHeatmapFormat,
  MAX_CHUNK_IMAGES,
  parseS3Uri,
} from "@memscore/shared";
import type { JobsOptions } from "bullmq";

/** BullMQ job name of a scheduled scan. */
export const SCAN_JOB_NAME = "scan-prefix";

/**
 * Schedule names: they become BullMQ scheduler ids and the first part of every run id the
 * schedule produces (`NAME-20240501T023000.000Z`), which must fit RUN_ID_PATTERN's 64 characters.
 */
export const SCHEDULE_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,39}$/;

/**
 * What one scheduled scan does: list `input` and enqueue a run of what changed since the last
 * one. It is the template of every job a schedule produces.
 */
export interface ScanJobData {
  v: 1;
  /** The schedule's name. */
  schedule: string;
  /** `s3://bucket/prefix/` to list. */
  input: string;
  /** `s3://bucket/prefix/` for the outputs. */
  outputPrefix: string;
  /** Enqueue only images without a current record (new, changed, or scored by another model). */
  skipExisting: boolean;
  /** Images per chunk job. @defaultValue enqueueRun's default (64) */
  chunkSize?: number;
  /** How each run stores heatmaps. @defaultValue the producer's MEMSCORE_HEATMAP_FORMAT */
  heatmapFormat?: HeatmapFormat;
  /** Most unfinished chunks of a run. @defaultValue enqueueRun's default (1000) */
  maxPending?: number;
}

/**
 * The scans queue: separate from the chunk queue, so chunk workers never receive scan jobs and
 * the backlog metrics count chunks only.
 */
export function scanQueueName(queueName: string): string {
  return `${queueName}-scans`;
}

/**
 * Defaults of scan jobs. A scan that failed (S3 unreachable for longer than the SDK retries) is
 * tried again; a producer that died mid-scan hands it over through BullMQ's stalled check, and
 * the next producer resumes the same run from its checkpoint. Old scan jobs are trimmed.
 */
export const SCAN_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 10_000 },
  removeOnComplete: { age: 7 * 24 * 3_600, count: 1_000 },
  removeOnFail: { age: 30 * 24 * 3_600, count: 1_000 },
};

/**
 * The run id of one scheduled iteration: the schedule name and the iteration's scheduled time
 * (UTC, to the millisecond). Two deliveries of the same iteration get the same id, so the
 * second resumes the first's run instead of starting another.
 */
export function scanRunId(schedule: string, scheduledAt: number): string {
  const iso = new Date(scheduledAt).toISOString(); // 2024-05-01T02:30:00.000Z
  return `${schedule}-${iso.replaceAll("-", "").replaceAll(":", "")}`;
}

/** Whether a run id was produced by `schedule` (and not by a schedule whose name extends it). */
export function isScanRunOf(schedule: string, runId: string): boolean {
  return runId.startsWith(`${schedule}-`) && /^\d{8}T\d{6}\.\d{3}Z$/.test(runId.slice(schedule.length + 1));
}

function optionalInteger(data: Record<string, unknown>, key: string, max: number): number | undefined {
  const value = data[key];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max)
    throw new ConfigError(key, `expected an integer from 1 to ${max}, got ${String(value)}`);
  return value;
}

/** Checks a scan job's payload (it comes from Redis: anyone with access may have written it). */
export function validateScanJob(raw: unknown): ScanJobData {
  if (typeof raw !== "object" || raw === null) throw new ConfigError("scan", "payload is not an object");
  const data = raw as Record<string, unknown>;
  if (data.v !== 1) throw new ConfigError("v", `unsupported scan job version ${String(data.v)}`);
  if (typeof data.schedule !== "string" || !SCHEDULE_NAME_PATTERN.test(data.schedule))
    throw new ConfigError("schedule", "expected a schedule name");
  for (const key of ["input", "outputPrefix"] as const) {
    if (typeof data[key] !== "string") throw new ConfigError(key, "expected an s3:// URI");
    parseS3Uri(data[key] as string);
  }
  if (typeof data.skipExisting !== "boolean") throw new ConfigError("skipExisting", "expected a boolean");
  const chunkSize = optionalInteger(data, "chunkSize", MAX_CHUNK_IMAGES);
  const maxPending = optionalInteger(data, "maxPending", 10_000_000);
  if (data.heatmapFormat !== undefined && !isHeatmapFormat(data.heatmapFormat))
    throw new ConfigError("heatmapFormat", "expected one of jpeg, png, webp, none");
  return {
    v: 1,
    schedule: data.schedule,
    input: data.input as string,
    outputPrefix: data.outputPrefix as string,
    skipExisting: data.skipExisting,
    ...(chunkSize !== undefined && { chunkSize }),
    ...(maxPending !== undefined && { maxPending }),
    ...(data.heatmapFormat !== undefined && { heatmapFormat: data.heatmapFormat as HeatmapFormat }),
  };
}
