import {
  lastScheduledRun,
  listSchedules,
  MIN_EVERY_MS,
  openScanQueue,
  removeSchedule,
  type ScheduleCadence,
  type ScheduleInfo,
  upsertSchedule,
} from "@memscore/producer";
import {
  ConfigError,
  checkRedis,
  closeRedisConnection,
  createRedisConnection,
  describeError,
  describeRedisUrl,
  isHeatmapFormat,
  MAX_CHUNK_IMAGES,
  type MemscoreConfig,
  type RunSnapshot,
  S3UriError,
  Storage,
} from "@memscore/shared";
import type { Redis } from "ioredis";
import { integerFlag, parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore schedule add NAME (--cron EXPR [--tz ZONE] | --every MS) <s3://in/prefix/> --out <s3://out/prefix/> [options]
       memscore schedule list [--json]
       memscore schedule remove NAME

Schedules rescans of an S3 prefix. At each iteration a \`memscore producer\` service lists the
prefix and enqueues a run (id NAME-YYYYMMDDTHHMMSS.mmmZ, the iteration's time) of the images
that are new, changed (another ETag) or scored by another model; the others are skipped. An
iteration is skipped while the schedule's previous run is still being listed or scored.
Adding a schedule under an existing name replaces it.

options of add:
  --cron EXPR           cron pattern, e.g. "30 2 * * *" (02:30 every day); 6 fields add seconds
  --tz ZONE             time zone of the cron pattern, e.g. Europe/Paris (default UTC)
  --every MS            fixed interval in milliseconds instead of --cron (at least ${MIN_EVERY_MS})
  --out URI             output prefix (required)
  --skip-existing       enqueue only new or changed images (the default)
  --no-skip-existing    enqueue every image at every iteration
  --chunk-size N        images per queue job (default 64)
  --heatmap-format F    jpeg | png | webp | none for every run of the schedule (default: the
                        producer's MEMSCORE_HEATMAP_FORMAT, else jpeg)
  --max-pending N       most unfinished chunks of a run in Redis (default 1000)
options:
  --queue NAME          queue name (default: MEMSCORE_QUEUE, else memscore); scans use NAME-scans
  --json                list: one JSON object on stdout`;

function describeCadence(cadence: ScheduleCadence): string {
  if ("cron" in cadence) return `cron "${cadence.cron}"${cadence.tz ? ` (${cadence.tz})` : ""}`;
  return `every ${cadence.everyMs} ms`;
}

function describeRun(run: RunSnapshot | undefined): string {
  if (!run) return "none yet";
  const state = run.completedAt ? "complete" : run.listingDone ? "scoring" : "listing";
  return `${run.runId} (${state}: ${run.imagesEnqueued} enqueued, ${run.imagesSkipped} skipped)`;
}

function scheduleJson(schedule: ScheduleInfo, last: RunSnapshot | undefined) {
  return {
    name: schedule.name,
    ...("cron" in schedule.cadence
      ? { cron: schedule.cadence.cron, ...(schedule.cadence.tz && { tz: schedule.cadence.tz }) }
      : { everyMs: schedule.cadence.everyMs }),
    ...schedule.scan,
    nextAt: schedule.nextAt !== undefined ? new Date(schedule.nextAt).toISOString() : null,
    iterations: schedule.iterations,
    lastRun: last
      ? {
          runId: last.runId,
          createdAt: last.createdAt,
          imagesEnqueued: last.imagesEnqueued,
          imagesSkipped: last.imagesSkipped,
          completedAt: last.completedAt ?? null,
        }
      : null,
  };
}

/** Connects to Redis, failing within 10 s instead of waiting for it forever. */
async function connect(config: MemscoreConfig): Promise<Redis> {
  const redis = createRedisConnection(config.redisUrl, { name: "memscore-schedule" });
  const reachable = await checkRedis(redis, 10_000);
  if (reachable !== true) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${describeRedisUrl(config.redisUrl)}: ${reachable}`);
  }
  return redis;
}

/** The schedule `schedule add` asks for, checked in full before anything connects. */
function scheduleToAdd(values: Record<string, unknown>, rest: string[]) {
  const [name, input, ...extra] = rest;
  if (name === undefined || input === undefined || extra.length > 0)
    throw new UsageError(`schedule add: expected NAME and one input prefix`, HELP);
  const outputPrefix = stringFlag(values, "out");
  if (outputPrefix === undefined) throw new UsageError("schedule add: --out is required");
  const cron = stringFlag(values, "cron");
  const everyMs = integerFlag(values, "every", { min: MIN_EVERY_MS, max: 366 * 24 * 3_600_000 });
  if ((cron === undefined) === (everyMs === undefined))
    throw new UsageError("schedule add: give exactly one of --cron EXPR and --every MS");
  const tz = stringFlag(values, "tz");
  if (tz !== undefined && cron === undefined) throw new UsageError("schedule add: --tz needs --cron");
  if (values["skip-existing"] === true && values["no-skip-existing"] === true)
    throw new UsageError("schedule add: --skip-existing and --no-skip-existing contradict each other");
  const chunkSize = integerFlag(values, "chunk-size", { min: 1, max: MAX_CHUNK_IMAGES });
  const heatmapFormat = stringFlag(values, "heatmap-format");
  if (heatmapFormat !== undefined && !isHeatmapFormat(heatmapFormat))
    throw new UsageError("schedule add: --heatmap-format must be one of jpeg, png, webp, none");
  const maxPending = integerFlag(values, "max-pending", { min: 1, max: 10_000_000 });
  const cadence: ScheduleCadence =
    cron !== undefined ? { cron, ...(tz !== undefined && { tz }) } : { everyMs: everyMs as number };
  return {
    name,
    cadence,
    scan: {
      input,
      outputPrefix,
      skipExisting: values["no-skip-existing"] !== true,
      ...(chunkSize !== undefined && { chunkSize }),
      ...(maxPending !== undefined && { maxPending }),
      ...(heatmapFormat !== undefined && { heatmapFormat }),
    },
  };
}

async function add(config: MemscoreConfig, redis: Redis, schedule: ReturnType<typeof scheduleToAdd>) {
  const { input, outputPrefix } = schedule.scan;
  const storage = Storage.fromConfig(config);
  const queue = openScanQueue(redis, config.queueName);
  try {
    const info = await upsertSchedule(queue, storage, schedule);
    const next = info.nextAt !== undefined ? new Date(info.nextAt).toISOString() : "not scheduled";
    process.stdout.write(
      `schedule ${info.name}: ${describeCadence(info.cadence)}, ${input} -> ${outputPrefix}; next ${next}\n`,
    );
  } finally {
    await queue.close();
    storage.close();
  }
}

async function list(config: MemscoreConfig, redis: Redis, json: boolean) {
  const queue = openScanQueue(redis, config.queueName);
  try {
    const schedules = await listSchedules(queue);
    const lastRuns = await Promise.all(
      schedules.map((s) => lastScheduledRun(redis, config.queueName, s.name)),
    );
    if (json) {
      const out = schedules.map((s, i) => scheduleJson(s, lastRuns[i]));
      process.stdout.write(`${JSON.stringify({ queue: config.queueName, schedules: out })}\n`);
      return;
    }
    if (schedules.length === 0) {
      process.stdout.write(`no schedules in queue ${config.queueName}\n`);
      return;
    }
    for (const [i, s] of schedules.entries()) {
      const next = s.nextAt !== undefined ? new Date(s.nextAt).toISOString() : "-";
      process.stdout.write(
        `${s.name}\n  ${describeCadence(s.cadence)}, next ${next}\n  ${s.scan.input} -> ${s.scan.outputPrefix}` +
          `${s.scan.skipExisting ? " (new and changed images)" : " (every image)"}\n  last run: ${describeRun(lastRuns[i])}\n`,
      );
    }
  } finally {
    await queue.close();
  }
}

async function remove(config: MemscoreConfig, redis: Redis, rest: string[]): Promise<number> {
  const [name, ...extra] = rest;
  if (name === undefined || extra.length > 0) throw new UsageError(`schedule remove: expected NAME`, HELP);
  const queue = openScanQueue(redis, config.queueName);
  try {
    if (!(await removeSchedule(queue, name))) {
      process.stderr.write(`memscore schedule: no schedule "${name}" in queue ${config.queueName}\n`);
      return 1;
    }
    process.stdout.write(`schedule ${name} removed; a scan already running finishes\n`);
    return 0;
  } finally {
    await queue.close();
  }
}

/** `memscore schedule add|list|remove`: manage rescans of S3 prefixes. */
export async function scheduleCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      cron: { type: "string" },
      tz: { type: "string" },
      every: { type: "string" },
      out: { type: "string" },
      "skip-existing": { type: "boolean" },
      "no-skip-existing": { type: "boolean" },
      "chunk-size": { type: "string" },
      "heatmap-format": { type: "string" },
      "max-pending": { type: "string" },
      queue: { type: "string" },
      json: { type: "boolean" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const [action, ...rest] = parsed.positionals;
  if (action !== "add" && action !== "list" && action !== "remove")
    throw new UsageError(`expected add, list or remove`, HELP);
  const config = resolveCommandConfig(parsed.values, { queue: "queueName" });
  const toAdd = action === "add" ? scheduleToAdd(parsed.values, rest) : undefined;
  let redis: Redis | undefined;
  try {
    redis = await connect(config);
    if (toAdd) await add(config, redis, toAdd);
    else if (action === "list") await list(config, redis, parsed.values.json === true);
    else return await remove(config, redis, rest);
    return 0;
  } catch (error) {
    // Bad flags or values exit 2 (main prints them); anything else (Redis down) is a failure: 1.
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof S3UriError)
      throw error;
    process.stderr.write(`memscore schedule: ${describeError(error)}\n`);
    return 1;
  } finally {
    if (redis) await closeRedisConnection(redis);
  }
}
