import { type EnqueueProgress, ProducerMetrics } from "@memscore/producer";
import { type Logger, type MemscoreConfig, RunState } from "@memscore/shared";
import type { Redis } from "ioredis";
import { startProcessOps } from "./process-ops.js";

/** The metrics/health server of `memscore enqueue --metrics-port`. */
export interface ProducerOps {
  /** `http://host:port` of the server. */
  url: string;
  /** Feed with the enqueue's progress reports. */
  observe: (progress: EnqueueProgress) => void;
  close(): Promise<void>;
}

/**
 * Starts the producer's metrics server for one run: producer counters (listed, enqueued,
 * skipped, chunks, backpressure waits) plus the queue-level gauges every process exports.
 */
export async function startProducerOps(
  config: MemscoreConfig,
  options: { port: number; runId: string; redis: Redis; logger: Logger },
): Promise<ProducerOps> {
  // A resumed run's earlier totals are not this process's work.
  const checkpoint = await new RunState(options.redis, config.queueName, options.runId).getCheckpoint();
  const ops = await startProcessOps(config, {
    connectionName: "memscore-producer-ops",
    logger: options.logger,
    port: options.port,
  });
  const metrics = new ProducerMetrics(ops.registry, {
    imagesEnqueued: checkpoint?.imagesEnqueued ?? 0,
    imagesSkipped: checkpoint?.imagesSkipped ?? 0,
    chunksEnqueued: checkpoint?.nextChunkIndex ?? 0,
  });
  return { url: ops.server.url, observe: metrics.observe, close: ops.close };
}
