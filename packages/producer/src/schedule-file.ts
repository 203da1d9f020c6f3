import { readFile } from "node:fs/promises";
import { ConfigError, describeError, type Logger, parseS3Uri, type Storage } from "@memscore/shared";
import { defaultRepeatStrategy, type Queue } from "bullmq";
import { parse as parseYaml } from "yaml";
import { SCHEDULE_NAME_PATTERN, type ScanJobData, validateScanJob } from "./scan-job.js";
import {
  listSchedules,
  MIN_EVERY_MS,
  removeSchedule,
  type Schedule,
  type ScheduleInfo,
  upsertSchedule,
} from "./schedules.js";

/**
 * Schedules declared in a file kept in git (a ConfigMap in Kubernetes), applied by
 * `memscore producer --schedules FILE` at start. The file is the whole truth for its queue:
 * schedules it does not list are removed, so deleting an entry in git deletes the schedule, and
 * a Redis that lost its data gets every schedule back at the next producer start.
 *
 * ```yaml
 * schedules:
 *   - name: photos-nightly
 *     cron: "30 2 * * *"        # or everyMs: 3600000
 *     tz: Europe/Paris          # cron only; default UTC
 *     input: s3://archive/photos/
 *     outputPrefix: s3://scores/photos/
 *     skipExisting: true        # default true
 *     chunkSize: 64             # optional
 *     maxPending: 1000          # optional
 * ```
 * The keys are those of `memscore schedule list --json`.
 */

const ENTRY_KEYS = new Set([
  "name",
  "cron",
  "tz",
  "everyMs",
  "input",
  "outputPrefix",
  "skipExisting",
  "chunkSize",
  "maxPending",
]);

/** What applying a schedule file changed, by schedule name. */
export interface ScheduleFileChanges {
  added: string[];
  updated: string[];
  unchanged: string[];
  removed: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function parseEntry(raw: unknown, where: string): Schedule {
  if (!isRecord(raw))
    throw new ConfigError(where, "expected a mapping with name, cron or everyMs, input, outputPrefix");
  for (const key of Object.keys(raw)) {
    if (!ENTRY_KEYS.has(key))
      throw new ConfigError(`${where}.${key}`, `unknown key; expected ${[...ENTRY_KEYS].join(", ")}`);
  }
  const { name, cron, tz, everyMs } = raw;
  if (typeof name !== "string" || !SCHEDULE_NAME_PATTERN.test(name))
    throw new ConfigError(
      `${where}.name`,
      "use 1 to 40 of lowercase letters, digits, '_', '.', '-', starting with a letter or digit",
    );
  const at = `${where} (${name})`;
  if ((cron === undefined) === (everyMs === undefined))
    throw new ConfigError(at, "give exactly one of cron and everyMs");
  if (tz !== undefined && (typeof tz !== "string" || cron === undefined))
    throw new ConfigError(`${at}.tz`, "expected a time zone name next to cron");
  let cadence: Schedule["cadence"];
  if (cron !== undefined) {
    if (typeof cron !== "string") throw new ConfigError(`${at}.cron`, "expected a cron pattern in quotes");
    try {
      // BullMQ's own parser, as it will run at every iteration.
      defaultRepeatStrategy(Date.now(), { pattern: cron, ...(tz !== undefined && { tz }) });
    } catch (error) {
      throw new ConfigError(`${at}.cron`, `"${cron}" is not a valid cron pattern: ${describeError(error)}`);
    }
    cadence = { cron, ...(tz !== undefined && { tz }) };
  } else {
    if (typeof everyMs !== "number" || !Number.isInteger(everyMs) || everyMs < MIN_EVERY_MS)
      throw new ConfigError(`${at}.everyMs`, `expected an integer number of ms ≥ ${MIN_EVERY_MS}`);
    cadence = { everyMs };
  }
  let scan: ScanJobData;
  try {
    scan = validateScanJob({
      v: 1,
      schedule: name,
      input: raw.input,
      outputPrefix: raw.outputPrefix,
      skipExisting: raw.skipExisting ?? true,
      ...(raw.chunkSize !== undefined && { chunkSize: raw.chunkSize }),
      ...(raw.maxPending !== undefined && { maxPending: raw.maxPending }),
    });
  } catch (error) {
    throw new ConfigError(at, describeError(error));
  }
  const { v: _v, schedule: _schedule, ...rest } = scan;
  return { name, cadence, scan: rest };
}

/**
 * Parses the text of a schedule file (YAML, or JSON, which is YAML too). Every entry is checked
 * before anything is applied; the error names the file, the entry and the field.
 */
export function parseScheduleFile(text: string, source: string): Schedule[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ConfigError(source, `not valid YAML: ${describeError(error)}`);
  }
  if (!isRecord(doc) || !Array.isArray(doc.schedules) || Object.keys(doc).some((k) => k !== "schedules"))
    throw new ConfigError(
      source,
      'expected a mapping with one key, "schedules", holding a list (may be empty)',
    );
  const schedules = doc.schedules.map((entry, i) => parseEntry(entry, `${source}: schedules[${i}]`));
  const seen = new Set<string>();
  for (const s of schedules) {
    if (seen.has(s.name)) throw new ConfigError(source, `schedule "${s.name}" is listed twice`);
    seen.add(s.name);
  }
  return schedules;
}

/** Reads and parses a schedule file; a missing or unreadable file is a ConfigError too. */
export async function loadScheduleFile(path: string): Promise<Schedule[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, `cannot read the schedule file: ${describeError(error)}`);
  }
  return parseScheduleFile(text, path);
}

const sameSchedule = (stored: ScheduleInfo, wanted: Schedule) =>
  JSON.stringify({ cadence: stored.cadence, scan: stored.scan }) ===
  JSON.stringify({ cadence: wanted.cadence, scan: wanted.scan });

/**
 * Makes the queue's schedules exactly `schedules`: adds new ones, replaces changed ones, leaves
 * identical ones untouched (re-adding would move an `everyMs` schedule's next iteration) and
 * removes the rest. Buckets are checked against the allowed list before anything changes.
 */
export async function applySchedules(
  queue: Queue<ScanJobData>,
  storage: Storage,
  schedules: readonly Schedule[],
  logger?: Logger,
): Promise<ScheduleFileChanges> {
  for (const s of schedules) {
    storage.assertAllowed(parseS3Uri(s.scan.input).bucket);
    storage.assertAllowed(parseS3Uri(s.scan.outputPrefix).bucket);
  }
  const stored = new Map((await listSchedules(queue)).map((s) => [s.name, s]));
  const changes: ScheduleFileChanges = { added: [], updated: [], unchanged: [], removed: [] };
  for (const wanted of schedules) {
    const current = stored.get(wanted.name);
    if (current && sameSchedule(current, wanted)) {
      changes.unchanged.push(wanted.name);
      continue;
    }
    await upsertSchedule(queue, storage, wanted);
    (current ? changes.updated : changes.added).push(wanted.name);
  }
  const wantedNames = new Set(schedules.map((s) => s.name));
  for (const name of stored.keys()) {
    if (wantedNames.has(name)) continue;
    await removeSchedule(queue, name);
    changes.removed.push(name);
    logger?.warn("schedule removed: it is not in the schedule file", { schedule: name });
  }
  return changes;
}
