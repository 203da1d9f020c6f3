export {
  type BatcherStats,
  DynamicBatcher,
  type DynamicBatcherOptions,
  paddedBatchShapes,
} from "./batcher.js";
export { BUNDLED_MODEL_PATH } from "./bundled-model.js";
export { type ChunkContext, type ChunkOutcome, ChunkRetryError, processChunk } from "./chunk-processor.js";
export {
  AUTO_PROVIDER_ORDER,
  CUDA_PROVIDER_LIBRARIES,
  cudaProviderProblem,
  type ExecutionProviderName,
  onnxruntimeBinaryDir,
  providerCandidates,
} from "./execution-provider.js";
export {
  encodeHeatmap,
  type GridCoverage,
  type HeatmapOptions,
  normaliseGrid,
  overlayHeatmap,
  renderHeatmap,
  upsampleGrid,
} from "./heatmap.js";
export { InferenceClient } from "./inference-client.js";
export { type EngineStats, InferenceEngine, type InferenceEngineOptions } from "./inference-engine.js";
export { type JpegCodec, jpegCodec, jpegCodecProblem } from "./jpeg-codec.js";
export { type LocalImageFile, listLocalImages } from "./local-files.js";
export {
  findTorchPython,
  IMPORTABLE_MODELS,
  type ImportableModel,
  importModel,
  type ModelImportOptions,
  TORCH_PYTHON_CANDIDATES,
} from "./model-import.js";
export {
  METADATA_KEYS,
  type ModelMetadata,
  OPTIONAL_METADATA_KEYS,
  ORIGINAL_GEOMETRY,
  parseModelMetadata,
  RESIZE_KERNELS,
  type ResizeGeometry,
  type ResizeKernel,
  readModelMetadata,
} from "./model-metadata.js";
export { type ModelInfo, type ModelOutput, ModelRuntime, type ModelRuntimeOptions } from "./model-runtime.js";
export { resolveModelFile } from "./model-source.js";
export { readOnnxMetadataProps } from "./onnx-metadata.js";
export { PipelinePool, type PipelinePoolOptions, pipelineS3, pipelineSettings } from "./pipeline-pool.js";
export type {
  FailedFile,
  FileImageTask,
  LocalScoreResult,
  PipelineSettings,
  S3ImageTask,
  ScoredFile,
} from "./pipeline-protocol.js";
export { encodeRgbPng } from "./png-encoder.js";
export {
  DECODE_MAX_SIDE,
  type DecodeLimits,
  decodeImage,
  decodeWithLibvips,
  type InputGeometry,
  inputCoverage,
  inspectImage,
  type PreparedImage,
  prepareImage,
  type RgbImage,
  resizePixels,
  rgbToTensor,
  toModelInput,
} from "./preprocess.js";
export {
  type CopiedSplits,
  copySplitFiles,
  PREPROCESS_MANIFEST,
  type PreprocessedFile,
  type PreprocessManifest,
  type PreprocessModel,
  type PreprocessOptions,
  type PreprocessResult,
  preprocessedPath,
  preprocessLocalFiles,
} from "./preprocess-local.js";
export { gradcamRows, rowFromRecord } from "./score-image.js";
export { isFailed, type LocalScoreOptions, LocalScorer } from "./score-local.js";
export { Semaphore } from "./semaphore.js";
export { STAGES, type Stage, type StageObserver, StageTotals } from "./stage-timings.js";
export { type ChunkJobOutcome, WorkerMetrics } from "./worker-metrics.js";
export {
  type ChunkJobResult,
  WorkerService,
  type WorkerServiceOptions,
  type WorkerState,
} from "./worker-service.js";
