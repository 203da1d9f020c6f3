import {
  applySchedules,
  loadScheduleFile,
  openScanQueue,
  ProducerMetrics,
  registerScheduleMetrics,
  ScanMetrics,
  ScanService,
  type Schedule,
} from "@memscore/producer";
import {
  type ConfigOverrides,
  checkRedisEvictionPolicy,
  createLogger,
  createRedisConnection,
  DEFAULT_DRAIN_TIMEOUT_MS,
  type StopOptions,
  Storage,
} from "@memscore/shared";
import { integerFlag, parseCommandArgs, resolveCommandConfig, stringFlag } from "../args.js";
import { modelSha256Resolver } from "../model-sha256.js";
import { startProcessOps } from "../process-ops.js";
import { installShutdownHandlers } from "../shutdown.js";

const HELP = `usage: memscore producer [options]

The producer service: runs the scans that schedules (\`memscore schedule add\`) produce, each as
an enqueued run of the new and changed images. Run one or more; each scheduled iteration is
scanned by exactly one of them. Runs until SIGTERM/SIGINT: the first signal lets running scans
finish (up to --shutdown-timeout), a second one (or the deadline) stops them at their last
checkpoint and hands them back to the queue, where another producer resumes them.

With --schedules FILE the queue's schedules become exactly those of FILE at start (new ones
added, changed ones replaced, the others removed), so schedules can live in git. FILE is YAML:
  schedules:
    - name: photos-nightly
      cron: "30 2 * * *"          # or everyMs: 3600000
      tz: Europe/Paris            # optional, cron only
      input: s3://archive/photos/
      outputPrefix: s3://scores/photos/
      skipExisting: true          # optional (default true); also chunkSize, maxPending
A bad file stops the producer before it changes anything.

options:
  --concurrency N            scans at once (default 1)
  --schedules FILE           apply the schedules of FILE at start (see above)
  --model PATH|s3://URI      the model the workers run, whose sha256 decides which records are
                             current (MEMSCORE_MODEL, default: the bundled model)
  --model-sha256 HEX         that model's sha256, instead of hashing the file (MEMSCORE_MODEL_SHA256)
  --queue NAME               chunk queue (MEMSCORE_QUEUE, default memscore); scans come from NAME-scans
  --shutdown-timeout MS      graceful stop deadline (default 30000)
  --lock-duration MS         how soon a crashed producer's scan goes to another (default 30000)
  --metrics-port N           port of /metrics, /healthz, /readyz (MEMSCORE_METRICS_PORT, default 9464;
                             0 picks a free one, logged); bind address: MEMSCORE_METRICS_HOST (127.0.0.1)`;

const FLAG_TO_CONFIG: Record<string, keyof ConfigOverrides> = {
  model: "model",
  "model-sha256": "modelSha256",
  queue: "queueName",
  "metrics-port": "metricsPort",
};

/** `memscore producer`: the long-running service that turns scheduled scans into runs. */
export async function producerCommand(args: string[]): Promise<number> {
  const options = Object.fromEntries(
    [...Object.keys(FLAG_TO_CONFIG), "concurrency", "shutdown-timeout", "lock-duration", "schedules"].map(
      (f) => [f, { type: "string" as const }],
    ),
  );
  const parsed = parseCommandArgs(args, options, HELP);
  if (!parsed) return 0;
  const concurrency = integerFlag(parsed.values, "concurrency", { min: 1, max: 64 }) ?? 1;
  const shutdownTimeout =
    integerFlag(parsed.values, "shutdown-timeout", { min: 1, max: 24 * 3_600_000 }) ??
    DEFAULT_DRAIN_TIMEOUT_MS;
  const lockDurationMs =
    integerFlag(parsed.values, "lock-duration", { min: 1_000, max: 3_600_000 }) ?? 30_000;
  const config = resolveCommandConfig(parsed.values, FLAG_TO_CONFIG);
  const schedulesFile = stringFlag(parsed.values, "schedules");
  // Read and checked before anything starts: a bad file changes nothing and exits 2.
  const declared: Schedule[] | undefined = schedulesFile ? await loadScheduleFile(schedulesFile) : undefined;
  const logger = createLogger({
    level: config.logLevel,
    format: config.logFormat,
    base: { pid: process.pid, role: "producer" },
  });

  // Metrics/health first: /readyz answers (not ready) while the service connects.
  let service: ScanService | undefined;
  const ops = await startProcessOps(config, {
    connectionName: "memscore-producer-ops",
    logger,
    readiness: () => ({
      scans: service === undefined ? "starting" : service.isRunning || `producer ${service.state}`,
    }),
  });
  const producerMetrics = new ProducerMetrics(ops.registry);
  const storage = Storage.fromConfig(config);
  const redis = createRedisConnection(config.redisUrl, { name: "memscore-producer", logger });
  const scanQueue = openScanQueue(redis, config.queueName);
  registerScheduleMetrics(ops.registry, { scanQueue, redis, queueName: config.queueName, logger });
  try {
    await checkRedisEvictionPolicy(redis, config.redisEvictionCheck, logger);
    if (declared) {
      const changes = await applySchedules(scanQueue, storage, declared, logger);
      logger.info("schedules applied from file", { file: schedulesFile, ...changes });
    }
    service = await ScanService.start({
      redis,
      storage,
      queueName: config.queueName,
      modelSha256: modelSha256Resolver(config, storage),
      heatmapFormat: config.heatmapFormat,
      logger,
      concurrency,
      lockDurationMs,
      metrics: new ScanMetrics(ops.registry),
      onProgress: producerMetrics.observe,
    });
  } catch (error) {
    await scanQueue.close().catch(() => {});
    redis.disconnect();
    storage.close();
    await ops.close();
    throw error;
  }
  const running = service;
  const stop = async (options: StopOptions) => {
    await running.stop(options);
    await scanQueue.close().catch(() => {});
    storage.close();
    await ops.close();
  };
  return installShutdownHandlers({
    logger,
    stop,
    drainTimeoutMs: shutdownTimeout,
  });
}
