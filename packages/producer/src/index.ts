export {
  type EnqueueInput,
  type EnqueueProgress,
  type EnqueueRunOptions,
  type ResolvedEnqueueOptions,
  resolveEnqueueOptions,
} from "./enqueue-options.js";
export { type EnqueueSummary, enqueueRun } from "./enqueue-run.js";
export { ManifestError, RunConflictError, RunNotFoundError } from "./errors.js";
export type { ListedImage } from "./listed-image.js";
export {
  listManifestImages,
  type ManifestEntry,
  type ManifestFormat,
  manifestFormat,
  readManifest,
  validateManifest,
} from "./manifest.js";
export { listPrefixImages, type PrefixListingOptions } from "./prefix-listing.js";
export { ProducerMetrics, type ProducerMetricsBaseline } from "./producer-metrics.js";
export { SlidingRate } from "./progress-rate.js";
export { generateRunId } from "./run-id.js";
export {
  isScanRunOf,
  SCAN_JOB_NAME,
  SCHEDULE_NAME_PATTERN,
  type ScanJobData,
  scanQueueName,
  scanRunId,
} from "./scan-job.js";
export { ScanMetrics, type ScanOutcome } from "./scan-metrics.js";
export { type ScanResult, ScanService, type ScanServiceOptions, scheduledTime } from "./scan-service.js";
export {
  applySchedules,
  loadScheduleFile,
  parseScheduleFile,
  type ScheduleFileChanges,
} from "./schedule-file.js";
export { registerScheduleMetrics, type ScheduleMetricsOptions } from "./schedule-metrics.js";
export {
  getSchedule,
  lastScheduledRun,
  listSchedules,
  MIN_EVERY_MS,
  openScanQueue,
  removeSchedule,
  type Schedule,
  type ScheduleCadence,
  type ScheduleInfo,
  upsertSchedule,
} from "./schedules.js";
export { hasCurrentRecord } from "./skip-existing.js";
export { type RunProgress, runProgress, type WaitForRunOptions, waitForRun } from "./wait-for-run.js";
