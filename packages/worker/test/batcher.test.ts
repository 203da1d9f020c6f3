import { describe, expect, it } from "vitest";
import { DynamicBatcher, paddedBatchShapes } from "../src/index.js";

/** A runBatch whose batches finish only when the test says so, so no test depends on timing. */
function controlledRunner<I, O>(compute: (item: I) => O) {
  const batches: { items: I[]; finish: () => void; fail: (error: Error) => void }[] = [];
  const runBatch = (items: I[]) =>
    new Promise<O[]>((resolve, reject) => {
      batches.push({ items, finish: () => resolve(items.map(compute)), fail: reject });
    });
  return { batches, runBatch };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("DynamicBatcher", () => {
  it("runs a batch as soon as it is full, without waiting for the delay", async () => {
    const runner = controlledRunner((x: number) => x * 10);
    // A delay no test would survive: only a full batch can start a run here.
    const batcher = new DynamicBatcher({ maxBatchSize: 4, maxDelayMs: 3_600_000, runBatch: runner.runBatch });
    const results = [1, 2, 3, 4, 5].map((x) => batcher.submit(x));
    expect(runner.batches.map((b) => b.items)).toEqual([[1, 2, 3, 4]]);
    expect(batcher.pending).toBe(1);
    runner.batches[0]?.finish();
    expect(await Promise.all(results.slice(0, 4))).toEqual([10, 20, 30, 40]);
    // The fifth item has not waited its delay and the engine is idle: it keeps waiting.
    expect(batcher.pending).toBe(1);
    expect(runner.batches).toHaveLength(1);
  });

  it("flush runs a partial batch at once (a closing engine does not wait out the delay)", async () => {
    const runner = controlledRunner((x: number) => x + 1);
    const batcher = new DynamicBatcher({ maxBatchSize: 8, maxDelayMs: 3_600_000, runBatch: runner.runBatch });
    const results = [1, 2, 3].map((x) => batcher.submit(x));
    expect(runner.batches).toHaveLength(0);
    const flushed = batcher.flush();
    expect(runner.batches.map((b) => b.items)).toEqual([[1, 2, 3]]);
    runner.batches[0]?.finish();
    await flushed;
    expect(await Promise.all(results)).toEqual([2, 3, 4]);
  });

  it("runs a partial batch once its oldest item has waited the delay", async () => {
    const batcher = new DynamicBatcher({
      maxBatchSize: 8,
      maxDelayMs: 20,
      runBatch: async (items: string[]) => items.map((s) => s.toUpperCase()),
    });
    const outputs = await Promise.all(["a", "b", "c"].map((s) => batcher.submit(s)));
    expect(outputs).toEqual(["A", "B", "C"]);
    expect(batcher.stats).toMatchObject({ batches: 1, items: 3 });
  });

  it("gives every caller its own output when batches finish out of order", async () => {
    const runner = controlledRunner((x: number) => `out-${x}`);
    const batcher = new DynamicBatcher({
      maxBatchSize: 3,
      maxDelayMs: 3_600_000,
      maxConcurrentBatches: 2,
      runBatch: runner.runBatch,
    });
    const results = [0, 1, 2, 3, 4, 5].map((x) => batcher.submit(x));
    expect(runner.batches.map((b) => b.items)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    runner.batches[1]?.finish(); // the later batch completes first
    runner.batches[0]?.finish();
    expect(await Promise.all(results)).toEqual(["out-0", "out-1", "out-2", "out-3", "out-4", "out-5"]);
  });

  it("fills batches from items that arrive while the engine is busy", async () => {
    const runner = controlledRunner((x: number) => x);
    const batcher = new DynamicBatcher({ maxBatchSize: 4, maxDelayMs: 0, runBatch: runner.runBatch });
    const first = batcher.submit(0); // engine idle, no delay: runs alone
    const queued = Array.from({ length: 8 }, (_, i) => batcher.submit(i + 1));
    expect(runner.batches.map((b) => b.items.length)).toEqual([1]);
    runner.batches[0]?.finish();
    await first;
    expect(runner.batches.map((b) => b.items.length)).toEqual([1, 4]);
    runner.batches[1]?.finish();
    await settle();
    expect(runner.batches.map((b) => b.items.length)).toEqual([1, 4, 4]);
    runner.batches[2]?.finish();
    expect(await Promise.all(queued)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(batcher.stats).toMatchObject({ batches: 3, items: 9 });
  });

  it("fails only the batch whose run failed; the next batch still runs", async () => {
    const runner = controlledRunner((x: number) => x + 100);
    const batcher = new DynamicBatcher({ maxBatchSize: 2, maxDelayMs: 3_600_000, runBatch: runner.runBatch });
    const doomed = [batcher.submit(1), batcher.submit(2)];
    const fine = [batcher.submit(3), batcher.submit(4)];
    runner.batches[0]?.fail(new Error("inference failed"));
    for (const p of doomed) await expect(p).rejects.toThrow("inference failed");
    await settle();
    runner.batches[1]?.finish();
    expect(await Promise.all(fine)).toEqual([103, 104]);
  });

  it("rejects a batch whose runner returns the wrong number of outputs", async () => {
    const batcher = new DynamicBatcher({
      maxBatchSize: 2,
      maxDelayMs: 3_600_000,
      runBatch: async (items: number[]) => items.slice(1),
    });
    const results = [batcher.submit(1), batcher.submit(2)];
    for (const p of results) await expect(p).rejects.toThrow(/1 outputs for 2 inputs/);
  });

  it("drain waits for queued and running items", async () => {
    const runner = controlledRunner((x: number) => x);
    const batcher = new DynamicBatcher({ maxBatchSize: 2, maxDelayMs: 3_600_000, runBatch: runner.runBatch });
    const results = [batcher.submit(1), batcher.submit(2)];
    let drained = false;
    const draining = batcher.drain().then(() => {
      drained = true;
    });
    await settle();
    expect(drained).toBe(false);
    runner.batches[0]?.finish();
    await draining;
    expect(await Promise.all(results)).toEqual([1, 2]);
  });
});

describe("paddedBatchShapes", () => {
  it("is the powers of two below the batch size, then the batch size", () => {
    expect(paddedBatchShapes(1)).toEqual([1]);
    expect(paddedBatchShapes(16)).toEqual([1, 2, 4, 8, 16]);
    expect(paddedBatchShapes(48)).toEqual([1, 2, 4, 8, 16, 32, 48]);
    expect(paddedBatchShapes(64)).toEqual([1, 2, 4, 8, 16, 32, 64]);
  });
});
