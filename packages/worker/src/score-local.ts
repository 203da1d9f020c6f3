import { describeError, type HeatmapFormat, type Logger, type MemscoreConfig } from "@memscore/shared";
import { engineOptions, InferenceEngine } from "./inference-engine.js";
import type { LocalImageFile } from "./local-files.js";
import type { ModelInfo } from "./model-runtime.js";
import { PipelinePool, pipelineSettings } from "./pipeline-pool.js";
import type { FailedFile, LocalScoreResult } from "./pipeline-protocol.js";

export function isFailed(result: LocalScoreResult): result is FailedFile {
  return "error" in result;
}

export interface LocalScoreOptions {
  /** When set, a Grad-CAM overlay per image is written under this directory. */
  heatmapDir?: string;
  /** @defaultValue the config's heatmap format */
  heatmapFormat?: HeatmapFormat;
}

/**
 * Scores local image files with the worker's own pipeline (pipeline threads, the inference
 * thread and its dynamic batcher), without any queue or S3: `memscore score`. One scoring path
 * for S3 archives and local files, so both give the same scores, grids and heatmaps.
 */
export class LocalScorer {
  private constructor(
    readonly model: ModelInfo,
    private readonly engine: InferenceEngine,
    private readonly pipeline: PipelinePool,
    private readonly config: MemscoreConfig,
  ) {}

  static async start(config: MemscoreConfig, modelPath: string, logger: Logger): Promise<LocalScorer> {
    const engine = await InferenceEngine.start(modelPath, engineOptions(config, { logger }));
    try {
      const pipeline = await PipelinePool.start({
        threads: config.pipelineThreads,
        engine,
        settings: pipelineSettings(config),
        logger,
      });
      return new LocalScorer(engine.info, engine, pipeline, config);
    } catch (error) {
      await engine.close();
      throw error;
    }
  }

  /**
   * Yields one result per file, in input order, while up to `maxImagesInFlight` files are in
   * the pipeline at once. A file that cannot be scored yields an error result; it never stops
   * the others.
   */
  async *score(
    files: readonly LocalImageFile[],
    options: LocalScoreOptions = {},
  ): AsyncGenerator<LocalScoreResult> {
    const window = Math.max(1, this.config.maxImagesInFlight);
    const inFlight: Promise<LocalScoreResult>[] = [];
    let next = 0;
    const launch = () => {
      const file = files[next++] as LocalImageFile;
      inFlight.push(
        this.pipeline
          .score({
            kind: "file",
            path: file.path,
            name: file.name,
            heatmapFormat: options.heatmapFormat ?? this.config.heatmapFormat,
            heatmapDir: options.heatmapDir,
          })
          .then(
            (r) => r.result,
            // Only a pipeline thread that died fails a file task: that file gets the error.
            (error: unknown): FailedFile => ({
              file: file.name,
              error: { reason: "decode_failed", message: describeError(error) },
            }),
          ),
      );
    };
    while (next < files.length && inFlight.length < window) launch();
    while (inFlight.length > 0) {
      const result = await (inFlight.shift() as Promise<LocalScoreResult>);
      if (next < files.length) launch();
      yield result;
    }
  }

  /** Ends the pipeline threads, then the inference thread. */
  async close(): Promise<void> {
    await this.pipeline.close();
    await this.engine.close();
  }
}
