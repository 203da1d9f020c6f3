import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * Histogram buckets for durations, in seconds: from a millisecond (a small decode) through the
 * 10 ms–60 s range of inference batches and S3 requests on a slow day.
 */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** prom-client's "active resources" gauges end in `_total`, which Prometheus reserves for counters. */
const NON_CONFORMING_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export interface MetricsRegistryOptions {
  /** Labels added to every series (e.g. `{ role: "worker" }`). @defaultValue none */
  defaultLabels?: Record<string, string>;
  /** Export Node's process metrics (CPU, memory, event loop, GC). @defaultValue true */
  processMetrics?: boolean;
}

/**
 * Creates the Prometheus registry of one memscore process, with Node's default process metrics.
 * Role-specific metrics (worker, producer) and the queue collector register on it afterwards.
 */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Their label-free twins (nodejs_active_handles, ...) carry the same numbers.
    for (const name of NON_CONFORMING_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  return registry;
}
