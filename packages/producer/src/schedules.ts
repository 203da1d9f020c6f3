import {
  ConfigError,
  describeError,
  parseS3Uri,
  type RunSnapshot,
  RunState,
  type Storage,
  scheduleLastRunKey,
} from "@memscore/shared";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import {
  SCAN_JOB_NAME,
  SCAN_JOB_OPTIONS,
  SCHEDULE_NAME_PATTERN,
  type ScanJobData,
  scanQueueName,
  validateScanJob,
} from "./scan-job.js";

/** When a schedule fires: a cron pattern (optionally in a time zone) or a fixed interval. */
export type ScheduleCadence = { cron: string; tz?: string } | { everyMs: number };

/** A reprocessing schedule: rescan `scan.input` on a cadence, enqueueing what changed. */
export interface Schedule {
  name: string;
  cadence: ScheduleCadence;
  scan: Omit<ScanJobData, "v" | "schedule">;
}

/** A schedule as stored in Redis, with when it fires next. */
export interface ScheduleInfo extends Schedule {
  /** Next iteration (ms since the epoch); undefined when the scheduler has no next job. */
  nextAt: number | undefined;
  /** Iterations produced so far. */
  iterations: number;
}

/** Shortest interval accepted: a shorter one would only pile up skipped scans. */
export const MIN_EVERY_MS = 500;

/** Opens the scans queue (not the chunk queue) on an existing connection. */
export function openScanQueue(connection: Redis, queueName: string): Queue<ScanJobData> {
  return new Queue<ScanJobData>(scanQueueName(queueName), { connection });
}

/**
 * Creates or replaces a schedule (BullMQ job scheduler on the scans queue). Replacing keeps the
 * name, so its runs keep their ids' prefix. Input and output buckets must be allowed; a bad
 * cron pattern is refused with the parser's message.
 */
export async function upsertSchedule(
  queue: Queue<ScanJobData>,
  storage: Storage,
  schedule: Schedule,
): Promise<ScheduleInfo> {
  if (!SCHEDULE_NAME_PATTERN.test(schedule.name))
    throw new ConfigError(
      "name",
      `"${schedule.name}": use 1 to 40 of lowercase letters, digits, '_', '.', '-', starting with a letter or digit`,
    );
  const data = validateScanJob({ v: 1, schedule: schedule.name, ...schedule.scan });
  // Checked here too, so a schedule that could never run is refused when it is added.
  storage.assertAllowed(parseS3Uri(data.input).bucket);
  storage.assertAllowed(parseS3Uri(data.outputPrefix).bucket);
  const cadence = schedule.cadence;
  if ("everyMs" in cadence && (!Number.isInteger(cadence.everyMs) || cadence.everyMs < MIN_EVERY_MS))
    throw new ConfigError("every", `expected an integer number of ms ≥ ${MIN_EVERY_MS}`);
  const repeat =
    "cron" in cadence
      ? { pattern: cadence.cron, ...(cadence.tz !== undefined && { tz: cadence.tz }) }
      : { every: cadence.everyMs };
  try {
    await queue.upsertJobScheduler(schedule.name, repeat, {
      name: SCAN_JOB_NAME,
      data,
      opts: SCAN_JOB_OPTIONS,
    });
  } catch (error) {
    // BullMQ parses the pattern while computing the next iteration; its message names the field.
    if ("cron" in cadence)
      throw new ConfigError("cron", `"${cadence.cron}" is not a valid cron pattern: ${describeError(error)}`);
    throw error;
  }
  const info = await getSchedule(queue, schedule.name);
  if (!info) throw new Error(`schedule "${schedule.name}" was not stored`);
  return info;
}

function toScheduleInfo(json: Awaited<ReturnType<Queue<ScanJobData>["getJobSchedulers"]>>[number]) {
  const data = json.template?.data;
  if (!data) return undefined;
  let scan: ScanJobData;
  try {
    scan = validateScanJob(data);
  } catch {
    return undefined; // not one of ours
  }
  const cadence: ScheduleCadence =
    json.pattern !== undefined && json.pattern !== null
      ? { cron: json.pattern, ...(json.tz ? { tz: json.tz } : {}) }
      : { everyMs: Number(json.every) };
  const { v: _v, schedule: _name, ...rest } = scan;
  return {
    name: json.key,
    cadence,
    scan: rest,
    nextAt: json.next,
    iterations: json.iterationCount ?? 0,
  } satisfies ScheduleInfo;
}

/** Every schedule of the queue, by name. */
export async function listSchedules(queue: Queue<ScanJobData>): Promise<ScheduleInfo[]> {
  const all = await queue.getJobSchedulers(0, -1, true);
  return all
    .map(toScheduleInfo)
    .filter((s): s is ScheduleInfo => s !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One schedule, or undefined when there is none by that name. */
export async function getSchedule(
  queue: Queue<ScanJobData>,
  name: string,
): Promise<ScheduleInfo | undefined> {
  const json = await queue.getJobScheduler(name);
  return json ? toScheduleInfo({ ...json, key: json.key ?? name }) : undefined;
}

/**
 * Removes a schedule and its next pending iteration. A scan already running finishes (its run
 * completes as usual). Returns false when there was no such schedule.
 */
export async function removeSchedule(queue: Queue<ScanJobData>, name: string): Promise<boolean> {
  return queue.removeJobScheduler(name);
}

/**
 * The run of a schedule's latest scan, or undefined when it has not enqueued one yet.
 * `queueName` is the chunk queue's name.
 */
export async function lastScheduledRun(
  redis: Redis,
  queueName: string,
  name: string,
): Promise<RunSnapshot | undefined> {
  const runId = await redis.get(scheduleLastRunKey(queueName, name));
  return runId === null ? undefined : new RunState(redis, queueName, runId).snapshot();
}
