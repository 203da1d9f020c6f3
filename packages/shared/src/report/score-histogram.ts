/** One bar of a histogram: scores in [from, to). */
export interface HistogramBin {
  from: number;
  to: number;
  count: number;
}

/** Finest bin width, 2^-20 (about 1e-6): scores closer than that share a bin. */
const MIN_EXPONENT = -20;

/**
 * A histogram of scores whose range is not known in advance, built in one pass in constant
 * memory. Bins are 2^k wide and aligned to multiples of 2^k; k starts small and grows by one
 * (merging neighbouring bins pairwise, which is exact) whenever the scores seen so far would
 * need more than `maxBins` bins. So the result has between maxBins/2 and maxBins bins (fewer
 * only when all scores lie within the finest width), and every score is counted exactly once.
 */
export class ScoreHistogram {
  private readonly maxBins: number;
  private exponent = MIN_EXPONENT;
  private readonly counts = new Map<number, number>();
  private low = Number.POSITIVE_INFINITY;
  private high = Number.NEGATIVE_INFINITY;
  /** Scores counted. */
  count = 0;

  constructor(maxBins = 40) {
    if (!Number.isInteger(maxBins) || maxBins < 2) throw new RangeError(`bad maxBins ${maxBins}`);
    this.maxBins = maxBins;
  }

  /** Counts a score; non-finite values are refused (the caller reports them). */
  add(score: number): void {
    if (!Number.isFinite(score)) throw new RangeError(`not a finite score: ${score}`);
    const bin = Math.floor(score / 2 ** this.exponent);
    this.counts.set(bin, (this.counts.get(bin) ?? 0) + 1);
    this.low = Math.min(this.low, bin);
    this.high = Math.max(this.high, bin);
    this.count++;
    while (this.high - this.low + 1 > this.maxBins) this.coarsen();
  }

  private coarsen(): void {
    const merged = new Map<number, number>();
    for (const [bin, n] of this.counts) {
      const parent = Math.floor(bin / 2);
      merged.set(parent, (merged.get(parent) ?? 0) + n);
    }
    this.counts.clear();
    for (const [bin, n] of merged) this.counts.set(bin, n);
    this.low = Math.floor(this.low / 2);
    this.high = Math.floor(this.high / 2);
    this.exponent++;
  }

  /** Width of every bin. */
  get binWidth(): number {
    return 2 ** this.exponent;
  }

  /** Contiguous bins from the lowest score's bin to the highest's, empty ones included. */
  bins(): HistogramBin[] {
    if (this.count === 0) return [];
    const width = this.binWidth;
    const out: HistogramBin[] = [];
    for (let bin = this.low; bin <= this.high; bin++) {
      out.push({ from: bin * width, to: (bin + 1) * width, count: this.counts.get(bin) ?? 0 });
    }
    return out;
  }
}
