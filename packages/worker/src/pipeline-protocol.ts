import type { MessagePort } from "node:worker_threads";
import type {
  ChunkImage,
  HeatmapFormat,
  ImageErrorReason,
  MemscoreConfig,
  ResultRow,
} from "@memscore/shared";
import type { ModelInfo } from "./model-runtime.js";
import type { Stage } from "./stage-timings.js";

/** Limits and output settings every image task of a pipeline thread shares. */
export interface PipelineSettings {
  maxImageBytes: number;
  maxImagePixels: number;
  heatmapMaxSide: number;
  heatmapQuality: number;
  /** libvips threads per image operation (sharp.concurrency). */
  decodeThreads: number;
}

/** What a pipeline thread is started with. */
export interface PipelineThreadInit {
  /** The thread's own port into the inference engine (transferred). */
  inference: MessagePort;
  model: ModelInfo;
  settings: PipelineSettings;
  /** S3 access for S3 tasks; absent when the thread scores local files only. */
  s3?: Pick<
    MemscoreConfig,
    "s3Endpoint" | "s3ForcePathStyle" | "awsRegion" | "s3RequestTimeoutMs" | "allowedBuckets"
  >;
}

/** What a pipeline thread answers once it is ready. */
export interface PipelineReady {
  /** The thread's OS thread id (Linux), for CPU accounting by thread. */
  threadId: number | undefined;
}

/** One image of a chunk job: read from S3, outputs (heatmap, then record) written to S3. */
export interface S3ImageTask {
  kind: "s3";
  runId: string;
  outputPrefix: string;
  heatmapFormat: HeatmapFormat;
  image: ChunkImage;
  /** A retried or re-run chunk: reuse the outcome of an image whose record this run already wrote. */
  rerun: boolean;
}

/** One local file: read from disk, its heatmap (if asked for) written under `heatmapDir`. */
export interface FileImageTask {
  kind: "file";
  path: string;
  /** Name shown in results and used for the heatmap's path. */
  name: string;
  heatmapFormat: HeatmapFormat;
  heatmapDir?: string | undefined;
}

export type ImageTask = S3ImageTask | FileImageTask;

/** Seconds one image spent in each stage it went through. */
export type StageSeconds = Partial<Record<Stage, number>>;

/** The outcome of an S3 task: its results-table row. Transient faults reject instead. */
export interface S3ImageResult {
  row: ResultRow;
  /** The row comes from a record an earlier attempt of this run wrote: not scored again. */
  reused: boolean;
  stages: StageSeconds;
}

/** A local file that was scored. */
export interface ScoredFile {
  file: string;
  score: number;
  /** Grad-CAM normalised to [0, 1], rows of the grid, rounded as in S3 records. */
  gradcam: number[][];
  width: number;
  height: number;
  heatmap?: string;
}

/** A local file that could not be scored. */
export interface FailedFile {
  file: string;
  error: { reason: ImageErrorReason; message: string };
}

export type LocalScoreResult = ScoredFile | FailedFile;

export interface FileImageResult {
  result: LocalScoreResult;
  stages: StageSeconds;
}

export type ImageTaskResult<T extends ImageTask> = T extends S3ImageTask ? S3ImageResult : FileImageResult;
