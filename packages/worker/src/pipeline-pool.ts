import type { Logger, MemscoreConfig } from "@memscore/shared";
import type { InferenceEngine } from "./inference-engine.js";
import type {
  FileImageTask,
  ImageTask,
  ImageTaskResult,
  PipelineReady,
  PipelineSettings,
  PipelineThreadInit,
  S3ImageTask,
} from "./pipeline-protocol.js";
import type { StageObserver } from "./stage-timings.js";
import { type StartedThread, startThread, ThreadClient, threadEntry } from "./thread-channel.js";

export interface PipelinePoolOptions {
  threads: number;
  engine: InferenceEngine;
  settings: PipelineSettings;
  /** S3 access for S3 tasks; omit for a pool that scores local files only. */
  s3?: PipelineThreadInit["s3"];
  /** Receives every image's stage durations (metrics, benchmarks). */
  observe?: StageObserver;
  logger: Logger;
}

interface PoolThread {
  thread: StartedThread<PipelineReady>;
  client: ThreadClient<ImageTask, ImageTaskResult<ImageTask>>;
}

/** The settings of every pipeline thread, from the process's config. */
export function pipelineSettings(config: MemscoreConfig): PipelineSettings {
  return {
    maxImageBytes: config.maxImageBytes,
    maxImagePixels: config.maxImagePixels,
    heatmapMaxSide: config.heatmapMaxSide,
    heatmapQuality: config.heatmapQuality,
    decodeThreads: config.decodeThreads,
  };
}

/** The S3 settings a pipeline thread needs from a config (credentials come from the environment). */
export function pipelineS3(config: MemscoreConfig): NonNullable<PipelineThreadInit["s3"]> {
  return {
    s3Endpoint: config.s3Endpoint,
    s3ForcePathStyle: config.s3ForcePathStyle,
    awsRegion: config.awsRegion,
    s3RequestTimeoutMs: config.s3RequestTimeoutMs,
    allowedBuckets: config.allowedBuckets,
  };
}

/**
 * A fixed pool of pipeline threads (pipeline-thread.ts), each connected straight to the
 * inference engine. `score` hands an image to the thread with the fewest images outstanding
 * and resolves with its outcome; if a thread dies, its images reject (transient: the chunk is
 * retried) and the pool keeps using the others.
 */
export class PipelinePool {
  private closed?: Promise<void>;

  private constructor(
    private readonly threads: PoolThread[],
    private readonly observe: StageObserver | undefined,
  ) {}

  static async start(options: PipelinePoolOptions): Promise<PipelinePool> {
    // Started side by side: each thread loads the S3 SDK and sharp, which takes a while.
    const started = await Promise.allSettled(
      Array.from({ length: Math.max(1, options.threads) }, async (_, i): Promise<PoolThread> => {
        const inference = options.engine.connect();
        const init: PipelineThreadInit = {
          inference,
          model: options.engine.info,
          settings: options.settings,
          ...(options.s3 && { s3: options.s3 }),
        };
        const thread = await startThread<PipelineReady>(threadEntry("pipeline-thread.js", import.meta.url), {
          name: `memscore-pipeline-${i}`,
          workerData: init,
          transferList: [inference],
          logger: options.logger,
        });
        const client = new ThreadClient<ImageTask, ImageTaskResult<ImageTask>>(thread.worker);
        void thread.ended.then((error) => client.failAll(error));
        return { thread, client };
      }),
    );
    const threads = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) {
      await Promise.all(threads.map(({ thread }) => thread.close()));
      throw failed.reason;
    }
    return new PipelinePool(threads, options.observe);
  }

  /** Threads in the pool. */
  get size(): number {
    return this.threads.length;
  }

  /** The pipeline threads' OS thread ids (Linux only), for CPU accounting by thread. */
  get threadIds(): number[] {
    return this.threads.flatMap(({ thread }) =>
      thread.ready.threadId === undefined ? [] : [thread.ready.threadId],
    );
  }

  /** Carries one image through the pipeline on the least loaded thread. */
  async score<T extends S3ImageTask | FileImageTask>(task: T): Promise<ImageTaskResult<T>> {
    if (this.closed) throw new Error("pipeline pool is closed");
    const least = this.threads.reduce((a, b) => (b.client.outstanding < a.client.outstanding ? b : a));
    const result = (await least.client.request(task)) as ImageTaskResult<T>;
    if (this.observe) {
      for (const [stage, seconds] of Object.entries(result.stages)) {
        this.observe(stage as keyof typeof result.stages, seconds as number);
      }
    }
    return result;
  }

  /** Ends the threads after the images they hold (each terminated if it takes over 5 s). Idempotent. */
  close(): Promise<void> {
    this.closed ??= Promise.all(this.threads.map(({ thread }) => thread.close())).then(() => {});
    return this.closed;
  }
}
