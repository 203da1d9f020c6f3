import { describe, expect, it } from "vitest";
import {
  BoundedHeap,
  digestResults,
  parseResultLine,
  type ResultLine,
  renderRunReport,
  ScoreHistogram,
} from "../src/report/index.js";
import type { RunSummary } from "../src/run-summary.js";

/** A seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("BoundedHeap", () => {
  it("keeps exactly the N first items of any stream, in order", () => {
    const next = random(1);
    const values = Array.from({ length: 10_000 }, (_, i) => ({ v: Math.floor(next() * 500), id: i }));
    const before = (a: { v: number; id: number }, b: { v: number; id: number }) =>
      a.v > b.v || (a.v === b.v && a.id < b.id);
    for (const capacity of [1, 24, 500]) {
      const heap = new BoundedHeap(capacity, before);
      for (const value of values) heap.offer(value);
      const expected = [...values].sort((a, b) => b.v - a.v || a.id - b.id).slice(0, capacity);
      expect(heap.sorted()).toEqual(expected);
    }
  });
});

describe("ScoreHistogram", () => {
  it.each([
    { name: "scores in [0, 1]", make: (r: () => number) => r() },
    { name: "an untrained model's narrow spread", make: (r: () => number) => -0.05 + r() * 1e-4 },
    { name: "a wide range", make: (r: () => number) => (r() - 0.5) * 2000 },
    { name: "one value", make: () => 0.3 },
  ])("counts every score once, in the bin that holds it: $name", ({ make }) => {
    const next = random(7);
    const scores = Array.from({ length: 20_000 }, () => make(next));
    const histogram = new ScoreHistogram(40);
    for (const s of scores) histogram.add(s);
    const bins = histogram.bins();
    expect(bins.reduce((n, b) => n + b.count, 0)).toBe(scores.length);
    expect(bins.length).toBeLessThanOrEqual(40);
    const spread = Math.max(...scores) - Math.min(...scores);
    if (spread > 40 * 2 ** -20) expect(bins.length).toBeGreaterThanOrEqual(20);
    // Each bin's count is exactly the scores in [from, to).
    for (const bin of bins) {
      expect(bin.count).toBe(scores.filter((s) => s >= bin.from && s < bin.to).length);
    }
  });
});

const SUMMARY: RunSummary = {
  run_id: "r1",
  input: "s3://in/photos/",
  output_prefix: "s3://out/p/",
  created_at: "2026-01-01T00:00:00.000Z",
  completed_at: "2026-01-01T00:01:40.000Z",
  images: { total: 4, scored: 2, error: 1, skipped: 0 },
  errors_by_reason: { "<b>odd</b>": 1 },
  model: { name: "m", version: "1", sha256: "a".repeat(64), trained: true, training_data: "LaMem" },
  rows_by_model_sha256: { ["a".repeat(64)]: 3 },
  results: { csv: "s3://out/p/_runs/r1/results.csv", jsonl: "j", parquet: "p" },
};

async function* fromText(texts: string[]): AsyncGenerator<ResultLine> {
  for (const [i, text] of texts.entries()) yield parseResultLine(text, i + 1);
}

describe("the report of a results table with bad lines and hostile text", () => {
  it("leaves bad lines out, says so, and shows every string as text", async () => {
    const digest = await digestResults(
      fromText([
        JSON.stringify({ uri: "s3://in/photos/a.jpg", status: "scored", score: 0.7 }),
        "not json {",
        JSON.stringify({ uri: "s3://in/photos/b.jpg", status: "scored" }),
        JSON.stringify({ uri: "s3://in/photos/c.jpg", status: "weird" }),
        JSON.stringify({ uri: "s3://in/photos/<script>x</script>.jpg", status: "scored", score: 0.2 }),
        JSON.stringify({ uri: "s3://in/photos/d.jpg", status: "error", error_reason: "<b>odd</b>" }),
      ]),
      { top: 5 },
    );
    expect(digest.rows).toBe(3);
    expect(digest.badLines.count).toBe(3);
    expect(digest.badLines.first.map((b) => b.line)).toEqual([2, 3, 4]);
    expect(digest.top.map((i) => i.score)).toEqual([0.7, 0.2]);
    const html = renderRunReport({
      summary: SUMMARY,
      digest,
      thumbnails: new Map(),
      source: "s3://out/p/_runs/r1/results.jsonl",
      generatedAt: "now",
    });
    expect(html).toContain('id="bad-lines"');
    expect(html).toContain("3 lines of the results table could not be read");
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<b>odd</b>");
    expect(html).toContain("&#60;b&#62;odd&#60;/b&#62;");
    expect(html).not.toContain('id="untrained"');
    // 2 scored images in 100 s: the throughput counts scored and failed images.
    expect(html).toContain('<span id="throughput">0.03 images/s</span>');
  });
});
