/** The stages one image passes through in a worker, in order. */
export const STAGES = ["fetch", "decode", "infer", "render", "put"] as const;
export type Stage = (typeof STAGES)[number];

/** Receives one stage duration; metrics (Prometheus histograms) and benchmarks plug in here. */
export type StageObserver = (stage: Stage, seconds: number) => void;

/** Sums of stage durations, for the benchmark's per-stage breakdown. */
export class StageTotals {
  readonly seconds: Record<Stage, number> = { fetch: 0, decode: 0, infer: 0, render: 0, put: 0 };
  readonly counts: Record<Stage, number> = { fetch: 0, decode: 0, infer: 0, render: 0, put: 0 };

  readonly observe: StageObserver = (stage, seconds) => {
    this.seconds[stage] += seconds;
    this.counts[stage] += 1;
  };
}

/** Times `task` and reports it as `stage`. */
export async function timed<T>(
  stage: Stage,
  observe: StageObserver | undefined,
  task: () => Promise<T>,
): Promise<T> {
  const start = performance.now();
  try {
    return await task();
  } finally {
    observe?.(stage, (performance.now() - start) / 1000);
  }
}
