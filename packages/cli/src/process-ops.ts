import {
  checkRedis,
  createMetricsRegistry,
  createRedisConnection,
  describeError,
  type Logger,
  type MemscoreConfig,
  MemscoreError,
  type OpsServer,
  type ReadinessCondition,
  type ReadinessReport,
  registerQueueMetrics,
  startOpsServer,
} from "@memscore/shared";
import { Queue } from "bullmq";
import type { Registry } from "prom-client";

/** The metrics/health side of a long-running command: registry, HTTP server, own Redis connection. */
export interface ProcessOps {
  registry: Registry;
  server: OpsServer;
  /** Stops the server and closes the connection; idempotent. */
  close(): Promise<void>;
}

export interface ProcessOpsOptions {
  /** Redis connection name, e.g. "memscore-worker-ops". */
  connectionName: string;
  logger: Logger;
  /** The process's own readiness conditions; Redis reachability is always added. @defaultValue none */
  readiness?: () => ReadinessReport;
  /** Whether the process is alive and working (`/healthz`). @defaultValue always alive */
  liveness?: () => ReadinessCondition;
  /** Overrides config.metricsPort (e.g. a command-line flag). */
  port?: number;
}

/**
 * Starts the metrics/health server of a command, with the queue-level gauges registered. It uses
 * a connection of its own that fails fast when Redis is down (no offline queue), so scrapes and
 * readiness probes answer promptly instead of waiting for a reconnect.
 */
export async function startProcessOps(
  config: MemscoreConfig,
  options: ProcessOpsOptions,
): Promise<ProcessOps> {
  const registry = createMetricsRegistry();
  const redis = createRedisConnection(config.redisUrl, {
    name: options.connectionName,
    logger: options.logger,
    extra: { enableOfflineQueue: false, maxRetriesPerRequest: 1 },
  });
  const queue = new Queue(config.queueName, { connection: redis });
  queue.on("error", () => {
    // Reported through memscore_redis_up and /readyz; the connection logs its own errors.
  });
  registerQueueMetrics(registry, { queue, redis, logger: options.logger });
  const closeConnections = async () => {
    for (const step of [() => queue.close(), async () => redis.disconnect()]) {
      try {
        await step();
      } catch (error) {
        options.logger.warn("closing the metrics connection failed", { error: describeError(error) });
      }
    }
  };
  let server: OpsServer;
  try {
    server = await startOpsServer({
      host: config.metricsHost,
      port: options.port ?? config.metricsPort,
      registry,
      logger: options.logger,
      readiness: async () => ({ ...options.readiness?.(), redis: await checkRedis(redis, 1_000) }),
      ...(options.liveness && { liveness: options.liveness }),
    });
  } catch (error) {
    await closeConnections();
    throw new MemscoreError(
      "metrics_listen_failed",
      `cannot serve metrics on ${config.metricsHost}:${options.port ?? config.metricsPort}: ${describeError(error)}` +
        " (set MEMSCORE_METRICS_PORT, 0 picks a free port, or MEMSCORE_METRICS_HOST)",
    );
  }
  options.logger.info("metrics and health server listening", {
    url: server.url,
    metrics: `${server.url}/metrics`,
    port: server.port,
  });
  let closing: Promise<void> | undefined;
  return {
    registry,
    server,
    close: () => {
      closing ??= (async () => {
        try {
          await server.close();
        } catch (error) {
          options.logger.warn("closing the metrics server failed", { error: describeError(error) });
        }
        await closeConnections();
      })();
      return closing;
    },
  };
}
