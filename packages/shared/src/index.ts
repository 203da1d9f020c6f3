export {
  BATCH_PADDING,
  type BatchPadding,
  CONFIG_ENV_NAMES,
  type ConfigOverrides,
  EXECUTION_PROVIDERS,
  type ExecutionProviderChoice,
  type MemscoreConfig,
  resolveConfig,
} from "./config.js";
export { type CpuBudget, type CpuBudgetOptions, readCpuBudget, usableCores } from "./cpu-budget.js";
export { type Settled, settleWithin } from "./deadline.js";
export {
  ConfigError,
  describeError,
  IMAGE_ERROR_REASONS,
  ImageError,
  type ImageErrorReason,
  MemscoreError,
  ModelContractError,
} from "./errors.js";
export {
  HEATMAP_FORMATS,
  type HeatmapFileFormat,
  type HeatmapFormat,
  heatmapContentType,
  heatmapSuffix,
  isHeatmapFormat,
} from "./heatmap-format.js";
export {
  type ChunkImage,
  type ChunkJobData,
  chunkJobId,
  InvalidJobError,
  type JobValidationOptions,
  MAX_CHUNK_IMAGES,
  RUN_ID_PATTERN,
  validateChunkJob,
} from "./job-schema.js";
export {
  createLogger,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  redactSecrets,
  silentLogger,
} from "./logger.js";
export {
  createMetricsRegistry,
  DURATION_BUCKETS_SECONDS,
  type MetricsRegistryOptions,
} from "./metrics.js";
export { type OpsServer, type OpsServerOptions, startOpsServer } from "./ops-server.js";
export { CHUNK_JOB_NAME, CHUNK_JOB_OPTIONS, openChunkQueue } from "./queue.js";
export { type QueueMetricsOptions, registerQueueMetrics } from "./queue-metrics.js";
export {
  QUEUE_JOB_STATES,
  type QueueJobState,
  type QueueOverview,
  type QueueOverviewOptions,
  type QueueWorkers,
  readQueueOverview,
  runImageCounts,
} from "./queue-overview.js";
export { createQueueWorker, type QueueWorkerOptions } from "./queue-worker.js";
export {
  checkRedis,
  type ReadinessCheck,
  type ReadinessCondition,
  type ReadinessReport,
} from "./readiness.js";
export { closeRedisConnection, createRedisConnection, describeRedisUrl } from "./redis.js";
export { checkRedisEvictionPolicy, RedisConfigError } from "./redis-checks.js";
export { runIndexKey, runKeys, scheduleLastRunKey } from "./redis-keys.js";
export {
  type ImageRecord,
  outputLocations,
  parseRunDirectory,
  RECORD_METADATA,
  type ResultRow,
  type ResultsFormat,
  type ResultsTally,
  resultsUri,
  runDirectory,
  toCsvLine,
  writeResultsPart,
  writeRunResults,
} from "./results.js";
export { PARQUET_ROW_GROUP_ROWS, ParquetResultsWriter } from "./results-parquet.js";
export { completeRun } from "./run-completion.js";
export { type ChunkCounts, type ListingCheckpoint, type RunSnapshot, RunState } from "./run-state.js";
export {
  buildRunSummary,
  parseRunSummary,
  type RunModel,
  RunOutputError,
  type RunSummary,
  readRunSummary,
  runSummaryLocation,
  writeRunSummary,
} from "./run-summary.js";
export {
  asPrefix,
  assertBucketAllowed,
  formatS3Uri,
  MAX_KEY_BYTES,
  parseS3Uri,
  type S3Location,
  S3UriError,
  safeRelativeKey,
} from "./s3-uri.js";
export { type ScrapeReadOptions, scrapeRead } from "./scrape-read.js";
export { DEFAULT_DRAIN_TIMEOUT_MS, ServiceStop, type StopOptions, type StopSteps } from "./service-stop.js";
export {
  classifyStorageError,
  createS3Client,
  type ObjectInfo,
  Storage,
  type StorageConfig,
  TransientStorageError,
} from "./storage.js";
