import { setTimeout as sleep } from "node:timers/promises";
import {
  checkRedis,
  createLogger,
  createRedisConnection,
  describeRedisUrl,
  type QueueOverview,
  RUN_ID_PATTERN,
  type RunSnapshot,
  readQueueOverview,
  runImageCounts,
} from "@memscore/shared";
import { Queue } from "bullmq";
import { parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { describeFailures, formatEta } from "../progress-display.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore status [--run RUN_ID] [--json] [--watch] [--queue NAME]

Shows the queue (chunk jobs by state, age of the oldest waiting job), the workers connected to
it, throughput, and the runs in progress with done/total, ETA and failures by reason.

options:
  --run RUN_ID   show this run (finished or not) instead of every run in progress
  --json         print one JSON object (with --watch: one per line, every 2 s)
  --watch        redraw every 2 s until Ctrl-C
  --queue NAME   queue name (default: MEMSCORE_QUEUE, else memscore)

Exit code: 0, or 1 when Redis cannot be reached or the --run is unknown.`;

/** How long a one-shot status samples progress to measure throughput. */
const SAMPLE_MS = 1_000;
const WATCH_MS = 2_000;

/** One run as `memscore status` reports it. */
export interface RunStatus {
  runId: string;
  input: string;
  outputPrefix: string;
  createdAt: string;
  listingDone: boolean;
  finishedAt: string | null;
  done: number;
  total: number;
  scored: number;
  failed: number;
  skipped: number;
  /** Images per second over the sampling interval. */
  imagesPerSecond: number;
  /** Seconds left at that rate (or the run's average rate); null while unknown. */
  etaSeconds: number | null;
  failuresByReason: Record<string, number>;
}

/** Everything `memscore status --json` prints. */
export interface StatusReport {
  queue: string;
  redis: string;
  readAt: string;
  jobs: QueueOverview["jobs"];
  oldestWaitingAgeSeconds: number;
  /** `count` is null when Redis refuses CLIENT LIST (`unavailable` says what it answered). */
  workers: { count: number | null; connections: { addr: string; age: number }[]; unavailable?: string };
  /** Images per second over all runs, over the sampling interval. */
  imagesPerSecond: number;
  runs: RunStatus[];
}

function runStatus(run: RunSnapshot, previous: RunSnapshot | undefined, seconds: number): RunStatus {
  const { done, total } = runImageCounts(run);
  const before = previous ? runImageCounts(previous).done : done;
  const rate = seconds > 0 ? Math.max(0, done - before) / seconds : 0;
  const age = (Date.now() - Date.parse(run.createdAt)) / 1000;
  // Completions arrive a chunk at a time: when none landed in the interval, the run's average
  // rate is a better guess than "never".
  const etaRate = rate > 0 ? rate : age > 0 ? done / age : 0;
  const finished = run.completedAt !== undefined;
  return {
    runId: run.runId,
    input: run.input,
    outputPrefix: run.outputPrefix,
    createdAt: run.createdAt,
    listingDone: run.listingDone,
    finishedAt: run.completedAt ?? null,
    done,
    total,
    scored: run.imagesScored,
    failed: run.imagesFailed,
    skipped: run.imagesSkipped,
    imagesPerSecond: rate,
    etaSeconds: finished ? 0 : run.listingDone && etaRate > 0 ? (total - done) / etaRate : null,
    failuresByReason: run.failuresByReason,
  };
}

/** The report as text for a terminal. */
export function formatStatus(report: StatusReport, onlyRun: string | undefined): string {
  const j = report.jobs;
  const lines = [
    `queue ${report.queue} at ${report.redis}`,
    `jobs       waiting ${j.waiting}  active ${j.active}  delayed ${j.delayed}  prioritized ${j.prioritized}  failed ${j.failed}  completed ${j.completed}`,
    `backlog    oldest waiting job ${report.oldestWaitingAgeSeconds.toFixed(1)} s`,
    report.workers.count === null
      ? `workers    unknown: Redis refuses CLIENT LIST (${report.workers.unavailable})`
      : `workers    ${report.workers.count}${report.workers.connections.length > 0 ? `  (${report.workers.connections.map((c) => c.addr).join(", ")})` : ""}`,
    `throughput ${report.imagesPerSecond.toFixed(1)} images/s`,
    onlyRun ? `run ${onlyRun}:` : report.runs.length > 0 ? "runs in progress:" : "no runs in progress",
  ];
  for (const run of report.runs) {
    const fraction = run.total > 0 ? Math.min(1, run.done / run.total) : 0;
    const bar = `[${"#".repeat(Math.round(fraction * 20)).padEnd(20, "-")}]`;
    const state = run.finishedAt
      ? `finished ${run.finishedAt}`
      : `${run.imagesPerSecond.toFixed(1)} img/s  ETA ${formatEta(run.etaSeconds)}`;
    const failures = describeFailures(run.failuresByReason);
    lines.push(
      `  ${run.runId}  ${bar} ${(fraction * 100).toFixed(1).padStart(5)}%  ${run.done}/${run.total}${run.listingDone ? "" : "+"} images  ${state}` +
        (run.failed > 0 ? `  failed ${run.failed}${failures ? ` (${failures})` : ""}` : "") +
        (run.skipped > 0 ? `  skipped ${run.skipped}` : ""),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** `memscore status`: the queue, its workers and its runs, once or redrawn until Ctrl-C. */
export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      run: { type: "string" },
      json: { type: "boolean" },
      watch: { type: "boolean" },
      queue: { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, HELP);
  const onlyRun = stringFlag(values, "run");
  if (onlyRun !== undefined && !RUN_ID_PATTERN.test(onlyRun))
    throw new UsageError("--run: use 1 to 64 of letters, digits, '_', '.', '-'");
  const json = values.json === true;
  const watch = values.watch === true;
  const config = resolveCommandConfig(values, { queue: "queueName" });
  const logger = createLogger({ level: "error", format: config.logFormat });
  const redis = createRedisConnection(config.redisUrl, { name: "memscore-status", logger });
  const queue = new Queue(config.queueName, { connection: redis });
  let redisError = "";
  redis.on("error", (error: Error) => {
    redisError = error.message;
  });
  queue.on("error", () => {
    // Reported below as "cannot reach Redis".
  });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const sample = async () => ({
    overview: await readQueueOverview(queue, redis, {
      maxRuns: 20,
      ...(onlyRun && { includeRunIds: [onlyRun] }),
    }),
  });
  const report = (
    now: Awaited<ReturnType<typeof sample>>,
    before: QueueOverview | undefined,
  ): StatusReport => {
    const seconds = before ? (now.overview.readAt - before.readAt) / 1000 : 0;
    const previous = new Map(before?.runs.map((r) => [r.runId, r]));
    const shown = now.overview.runs.filter((r) =>
      onlyRun ? r.runId === onlyRun : r.completedAt === undefined,
    );
    const runs = shown.map((r) => runStatus(r, previous.get(r.runId), seconds));
    const all = now.overview.runs.map((r) => runStatus(r, previous.get(r.runId), seconds));
    return {
      queue: config.queueName,
      redis: describeRedisUrl(config.redisUrl),
      readAt: new Date(now.overview.readAt).toISOString(),
      jobs: now.overview.jobs,
      oldestWaitingAgeSeconds: now.overview.oldestWaitingAgeSeconds,
      workers: now.overview.workers ?? {
        count: null,
        connections: [],
        unavailable: now.overview.workersUnavailable ?? "",
      },
      imagesPerSecond: all.reduce((sum, r) => sum + r.imagesPerSecond, 0),
      runs,
    };
  };

  try {
    const reachable = await checkRedis(redis, 5_000);
    if (reachable !== true) {
      process.stderr.write(
        `memscore status: cannot reach Redis at ${describeRedisUrl(config.redisUrl)}: ${redisError || reachable}\n`,
      );
      return 1;
    }
    let previous = await sample();
    if (onlyRun && !previous.overview.runs.some((r) => r.runId === onlyRun)) {
      process.stderr.write(`memscore status: no run "${onlyRun}" in queue "${config.queueName}"\n`);
      return 1;
    }
    const tty = process.stdout.isTTY === true;
    // The first frame comes after a short sample (throughput needs two readings), then every 2 s.
    for (let frame = 0; ; frame++) {
      await sleep(frame === 0 ? SAMPLE_MS : WATCH_MS, undefined, { signal: abort.signal });
      const now = await sample();
      const out = report(now, previous.overview);
      previous = now;
      if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else process.stdout.write(`${watch && tty ? "\x1b[2J\x1b[H" : ""}${formatStatus(out, onlyRun)}`);
      if (!watch) return 0;
      if (!tty && !json) process.stdout.write("\n");
    }
  } catch (error) {
    // Ctrl-C is how --watch ends.
    if (abort.signal.aborted) return 0;
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await queue.close().catch(() => {});
    redis.disconnect();
  }
}
