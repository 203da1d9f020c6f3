import {
  type EnqueueInput,
  type EnqueueRunOptions,
  type EnqueueSummary,
  enqueueRun,
  generateRunId,
  ManifestError,
  RunConflictError,
  waitForRun,
} from "@memscore/producer";
import {
  ConfigError,
  checkRedisEvictionPolicy,
  closeRedisConnection,
  createLogger,
  createRedisConnection,
  describeError,
  describeRedisUrl,
  MAX_CHUNK_IMAGES,
  parseS3Uri,
  RUN_ID_PATTERN,
  type RunSnapshot,
  resultsUri,
  S3UriError,
  Storage,
} from "@memscore/shared";
import { integerFlag, parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { resolveModelSha256 } from "../model-sha256.js";
import { type ProducerOps, startProducerOps } from "../producer-ops.js";
import { failuresSuffix, formatRunProgress, statusWriter } from "../progress-display.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore enqueue <s3://bucket/prefix/> --out <s3://bucket/prefix/> [options]
       memscore enqueue --manifest FILE --out <s3://bucket/prefix/> [options]

Lists the input and enqueues it as chunk jobs for memscore workers. Re-running with the same
--run-id resumes an interrupted enqueue; a run whose listing finished is left as it is.

options:
  --out URI             output prefix for records, heatmaps and the run's results table (required)
  --manifest FILE       input URIs from FILE instead of a prefix: one s3:// URI per line, or .csv
                        with a "uri" column, or .jsonl/.ndjson objects with a "uri" field
  --run-id ID           run id (default: run-YYYYMMDD-HHMMSS-xxxx); reuse it to resume
  --chunk-size N        images per queue job (default 64)
  --max-pending N       most unfinished chunks of this run in Redis (default 1000)
  --skip-existing       leave out images whose output record is current (same input ETag, model and
                        heatmap format)
  --heatmap-format F    jpeg | png | webp | none: how the run stores heatmaps (MEMSCORE_HEATMAP_FORMAT,
                        default jpeg; none writes scores only)
  --dry-run             list (and skip-check) only; write nothing
  --wait                wait until the run completes, showing progress on stderr
  --json                print one JSON summary object on stdout
  --model PATH|URI      model the workers run, for --skip-existing (default: MEMSCORE_MODEL, else bundled)
  --model-sha256 HEX    that model's sha256, instead of hashing the file
  --queue NAME          queue name (default: MEMSCORE_QUEUE, else memscore)
  --metrics-port N      serve Prometheus /metrics, /healthz and /readyz on port N while running
                        (0 picks a free port; bind address: MEMSCORE_METRICS_HOST)

Exit code: 0 when enqueued (with --wait: when the run completed, even if some images failed),
2 on bad usage or configuration, 1 on other failures, 130 when interrupted.`;

/** Errors that mean "fix the command line or configuration": main() prints them and exits 2. */
const isUsageProblem = (error: unknown): boolean =>
  error instanceof UsageError ||
  error instanceof ConfigError ||
  error instanceof S3UriError ||
  error instanceof ManifestError ||
  error instanceof RunConflictError;

/** Fails fast instead of hanging: BullMQ connections otherwise wait for Redis forever. */
async function assertRedisReachable(
  redis: ReturnType<typeof createRedisConnection>,
  url: string,
  timeoutMs = 10_000,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`cannot reach Redis at ${describeRedisUrl(url)} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([redis.ping(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function humanSummary(summary: EnqueueSummary, outputPrefix: string, final: RunSnapshot | undefined): string {
  const lines: string[] = [];
  const seconds = (summary.durationMs / 1000).toFixed(1);
  if (summary.dryRun) {
    lines.push(
      `dry run: ${summary.imagesListed} images listed; would enqueue ${summary.imagesEnqueued} in ${summary.chunks} chunks, skip ${summary.imagesSkipped} (${seconds} s)`,
    );
    return `${lines.join("\n")}\n`;
  }
  if (summary.alreadyListed) {
    lines.push(
      `run ${summary.runId}: already fully enqueued (${summary.imagesEnqueued} images in ${summary.chunks} chunks); nothing to do`,
    );
  } else {
    lines.push(
      `run ${summary.runId}: ${summary.imagesEnqueued} images enqueued in ${summary.chunks} chunks, ${summary.imagesSkipped} skipped` +
        `${summary.resumed ? " (resumed)" : ""}; listed ${summary.imagesListed} in ${seconds} s`,
    );
  }
  if (final) {
    lines.push(
      `run ${summary.runId} complete: ${final.imagesScored} scored, ${final.imagesFailed} failed${failuresSuffix(final.failuresByReason)}, ${final.imagesSkipped} skipped`,
    );
  }
  if (final || summary.completed) {
    lines.push(`results: ${resultsUri(outputPrefix, summary.runId, "csv")}`);
    lines.push(`         ${resultsUri(outputPrefix, summary.runId, "jsonl")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `memscore enqueue`: list an input and enqueue it as chunk jobs; optionally wait for the run. */
export async function enqueueCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      out: { type: "string" },
      manifest: { type: "string" },
      "run-id": { type: "string" },
      "chunk-size": { type: "string" },
      "max-pending": { type: "string" },
      "skip-existing": { type: "boolean" },
      "dry-run": { type: "boolean" },
      wait: { type: "boolean" },
      json: { type: "boolean" },
      model: { type: "string" },
      "model-sha256": { type: "string" },
      "heatmap-format": { type: "string" },
      queue: { type: "string" },
      "metrics-port": { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const manifest = stringFlag(values, "manifest");
  if (positionals.length > 1)
    throw new UsageError(`expected one input prefix, got ${positionals.length}`, HELP);
  if ((positionals.length === 1) === (manifest !== undefined)) {
    throw new UsageError(`give exactly one input: an s3:// prefix or --manifest FILE`, HELP);
  }
  const outputPrefix = stringFlag(values, "out");
  if (outputPrefix === undefined) throw new UsageError(`--out is required`, HELP);
  const runId = stringFlag(values, "run-id") ?? generateRunId();
  if (!RUN_ID_PATTERN.test(runId))
    throw new UsageError(`--run-id: use 1 to 64 of letters, digits, '_', '.', '-'`);
  const chunkSize = integerFlag(values, "chunk-size", { min: 1, max: MAX_CHUNK_IMAGES });
  const maxPending = integerFlag(values, "max-pending", { min: 1, max: 10_000_000 });
  const skipExisting = values["skip-existing"] === true;
  const dryRun = values["dry-run"] === true;
  const json = values.json === true;
  const wait = values.wait === true && !dryRun;
  const metricsPort = integerFlag(values, "metrics-port", { min: 0, max: 65_535 });
  const config = resolveCommandConfig(values, {
    queue: "queueName",
    model: "model",
    "model-sha256": "modelSha256",
    "heatmap-format": "heatmapFormat",
  });
  const input: EnqueueInput = manifest !== undefined ? { manifest } : { prefix: positionals[0] as string };
  if ("prefix" in input) parseS3Uri(input.prefix);
  parseS3Uri(outputPrefix);

  const logger = createLogger({
    level: config.logLevel === "info" ? "warn" : config.logLevel,
    format: config.logFormat,
  });
  const storage = Storage.fromConfig(config);
  const redis = createRedisConnection(config.redisUrl, { name: "memscore-producer", logger });
  // First Ctrl-C stops between chunks, keeping the checkpoint; the run can then be resumed.
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const status = statusWriter();
  let phase: "enqueue" | "wait" = "enqueue";
  let ops: ProducerOps | undefined;
  try {
    const modelSha256 = await resolveModelSha256(config, storage, skipExisting);
    if (!dryRun) await assertRedisReachable(redis, config.redisUrl);
    if (!dryRun) await checkRedisEvictionPolicy(redis, config.redisEvictionCheck, logger);
    if (!json && !dryRun && stringFlag(values, "run-id") === undefined) {
      process.stderr.write(`run ${runId} (resume with --run-id ${runId})\n`);
    }
    const options: EnqueueRunOptions = {
      storage,
      redis,
      queueName: config.queueName,
      runId,
      input,
      outputPrefix,
      skipExisting,
      modelSha256,
      heatmapFormat: config.heatmapFormat,
      dryRun,
      logger,
      signal: abort.signal,
      ...(chunkSize !== undefined && { chunkSize }),
      ...(maxPending !== undefined && { maxPending }),
      ...(!json && {
        onProgress: (p) =>
          status.update(
            `listed ${p.imagesListed}  enqueued ${p.imagesEnqueued} in ${p.chunksEnqueued} chunks  skipped ${p.imagesSkipped}${p.waitingForWorkers ? "  (waiting for workers)" : ""}`,
          ),
      }),
    };
    if (metricsPort !== undefined && !dryRun) {
      ops = await startProducerOps(config, { port: metricsPort, runId, redis, logger });
      process.stderr.write(`serving metrics on ${ops.url}/metrics\n`);
      const show = options.onProgress;
      const observe = ops.observe;
      options.onProgress = (p) => {
        observe(p);
        show?.(p);
      };
    }
    const summary = await enqueueRun(options);
    status.end();
    let final: RunSnapshot | undefined;
    if (wait) {
      phase = "wait";
      final = await waitForRun(redis, config.queueName, runId, {
        signal: abort.signal,
        ...(!json && {
          onProgress: (p) => status.update(formatRunProgress(p), p.snapshot.completedAt !== undefined),
        }),
      });
      status.end();
    }
    if (json) {
      const out = {
        ...summary,
        queue: config.queueName,
        input: "prefix" in input ? input.prefix : input.manifest,
        outputPrefix,
        ...(final || summary.completed
          ? {
              results: {
                csv: resultsUri(outputPrefix, runId, "csv"),
                jsonl: resultsUri(outputPrefix, runId, "jsonl"),
              },
            }
          : {}),
        ...(final && {
          final: {
            imagesScored: final.imagesScored,
            imagesFailed: final.imagesFailed,
            imagesSkipped: final.imagesSkipped,
            failuresByReason: final.failuresByReason,
            completedAt: final.completedAt,
          },
        }),
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      process.stdout.write(humanSummary(summary, outputPrefix, final));
    }
    return 0;
  } catch (error) {
    status.end();
    if (abort.signal.aborted) {
      process.stderr.write(
        phase === "enqueue"
          ? `memscore enqueue: interrupted; progress is checkpointed — resume with --run-id ${runId}\n`
          : `memscore enqueue: stopped waiting; run ${runId} goes on in the workers\n`,
      );
      return 130;
    }
    if (isUsageProblem(error)) throw error;
    process.stderr.write(`memscore enqueue: ${describeError(error)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await ops?.close();
    await closeRedisConnection(redis);
    try {
      storage.close();
    } catch {
      // nothing left to release
    }
  }
}
