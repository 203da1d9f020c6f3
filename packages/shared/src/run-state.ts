import type { Redis } from "ioredis";
import type { ImageErrorReason } from "./errors.js";
import { runIndexKey, runKeys } from "./redis-keys.js";
import type { RunModel } from "./run-summary.js";

/** What a run is and how far it got, as stored in Redis. */
export interface RunSnapshot {
  runId: string;
  input: string;
  outputPrefix: string;
  modelSha256: string;
  createdAt: string;
  /** True once the producer has enqueued the last chunk. */
  listingDone: boolean;
  chunksEnqueued: number;
  chunksDone: number;
  imagesEnqueued: number;
  imagesSkipped: number;
  imagesScored: number;
  imagesFailed: number;
  failuresByReason: Record<string, number>;
  /** The model the first worker to record a chunk ran (absent until a worker has). */
  model?: RunModel;
  completedAt?: string;
}

/** Resumable position of a producer's listing: the next chunk index and the cursor after which to list. */
export interface ListingCheckpoint {
  nextChunkIndex: number;
  /** Last listed key (prefix runs) or line number (manifest runs), as text. */
  cursor: string;
  imagesEnqueued: number;
  imagesSkipped: number;
}

/** Per-chunk outcome counts reported by a worker. */
export interface ChunkCounts {
  scored: number;
  failed: number;
  failuresByReason: Partial<Record<ImageErrorReason, number>>;
}

/**
 * Names of the run hash's completion fields as stored. They predate the word "completion" in
 * the code and stay as they are, so runs in flight through an upgrade still complete.
 */
const STORED = { completing: "finalizing", completedAt: "finalizedAt" } as const;

// Marks a chunk done exactly once (a retried or re-run chunk must not count twice); the run's
// completion is then claimed for this caller only if that was its last outstanding chunk.
const RECORD_CHUNK = `
local added = redis.call('SADD', KEYS[2], ARGV[1])
if added == 1 then
  redis.call('HINCRBY', KEYS[1], 'imagesScored', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'imagesFailed', ARGV[3])
  for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
end
return added`;

const CLAIM_COMPLETION = `
if redis.call('HGET', KEYS[1], 'listingDone') ~= '1' then return 0 end
local total = tonumber(redis.call('HGET', KEYS[1], 'chunksEnqueued') or '0')
if redis.call('SCARD', KEYS[2]) < total then return 0 end
return redis.call('HSETNX', KEYS[1], '${STORED.completing}', ARGV[1])`;

/**
 * A run's bookkeeping in Redis: metadata and counters (a hash), the set of finished chunk
 * indices, failures by reason, and the producer's listing checkpoint. Shared by producer and
 * workers, so whichever process finishes the last piece of work completes the run.
 */
export class RunState {
  private readonly redis: Redis;
  readonly runId: string;
  private readonly keys: { meta: string; done: string; failures: string; checkpoint: string; runs: string };

  constructor(redis: Redis, queueName: string, runId: string) {
    this.redis = redis;
    this.runId = runId;
    this.keys = { ...runKeys(queueName, runId), runs: runIndexKey(queueName) };
  }

  /** Lists the run ids known for a queue, newest first. */
  static async listRunIds(redis: Redis, queueName: string, limit = 100): Promise<string[]> {
    return redis.zrevrange(runIndexKey(queueName), 0, limit - 1);
  }

  /** Creates the run's record; an existing run (a resumed enqueue) keeps its original fields. */
  async create(fields: { input: string; outputPrefix: string; modelSha256: string }): Promise<void> {
    const now = new Date().toISOString();
    await this.redis
      .multi()
      .hsetnx(this.keys.meta, "runId", this.runId)
      .hsetnx(this.keys.meta, "input", fields.input)
      .hsetnx(this.keys.meta, "outputPrefix", fields.outputPrefix)
      .hsetnx(this.keys.meta, "modelSha256", fields.modelSha256)
      .hsetnx(this.keys.meta, "createdAt", now)
      .zadd(this.keys.runs, "NX", Date.now(), this.runId)
      .exec();
  }

  async exists(): Promise<boolean> {
    return (await this.redis.exists(this.keys.meta)) === 1;
  }

  async getCheckpoint(): Promise<ListingCheckpoint | undefined> {
    const raw = await this.redis.hgetall(this.keys.checkpoint);
    if (raw.nextChunkIndex === undefined) return undefined;
    return {
      nextChunkIndex: Number(raw.nextChunkIndex),
      cursor: raw.cursor ?? "",
      imagesEnqueued: Number(raw.imagesEnqueued ?? 0),
      imagesSkipped: Number(raw.imagesSkipped ?? 0),
    };
  }

  /** Records that chunks below `nextChunkIndex` are enqueued, atomically with the counters. */
  async saveCheckpoint(checkpoint: ListingCheckpoint): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.checkpoint, {
        nextChunkIndex: checkpoint.nextChunkIndex,
        cursor: checkpoint.cursor,
        imagesEnqueued: checkpoint.imagesEnqueued,
        imagesSkipped: checkpoint.imagesSkipped,
      })
      .hset(this.keys.meta, {
        chunksEnqueued: checkpoint.nextChunkIndex,
        imagesEnqueued: checkpoint.imagesEnqueued,
        imagesSkipped: checkpoint.imagesSkipped,
      })
      .exec();
  }

  /**
   * Marks the listing complete. Returns true when this call claimed completion (every chunk
   * was already done), so the caller must write the results table.
   */
  async markListingDone(owner: string): Promise<boolean> {
    await this.redis.hset(this.keys.meta, "listingDone", "1");
    return this.claimCompletion(owner);
  }

  /**
   * Records one finished chunk. Counts only the first completion of a chunk index. Returns
   * whether this call claimed the run's completion (it was the last outstanding chunk).
   * A worker passes its `model`: the first one recorded describes the run's model in its summary
   * (the producer, which may complete a run, has no model loaded).
   */
  async recordChunk(
    chunkIndex: number,
    counts: ChunkCounts,
    owner: string,
    model?: RunModel,
  ): Promise<{ completes: boolean }> {
    // Before the chunk counts as done, so whoever completes the run finds a model described.
    if (model) await this.redis.hsetnx(this.keys.meta, "model", JSON.stringify(model));
    const reasons = Object.entries(counts.failuresByReason).flatMap(([reason, n]) => [reason, String(n)]);
    await this.redis.eval(
      RECORD_CHUNK,
      3,
      this.keys.meta,
      this.keys.done,
      this.keys.failures,
      String(chunkIndex),
      String(counts.scored),
      String(counts.failed),
      ...reasons,
    );
    return { completes: await this.claimCompletion(owner) };
  }

  async isChunkDone(chunkIndex: number): Promise<boolean> {
    return (await this.redis.sismember(this.keys.done, String(chunkIndex))) === 1;
  }

  private async claimCompletion(owner: string): Promise<boolean> {
    return (
      ((await this.redis.eval(CLAIM_COMPLETION, 2, this.keys.meta, this.keys.done, owner)) as number) === 1
    );
  }

  /** Releases a claimed completion that failed, so another process (or a retry) can take it. */
  async releaseCompletion(): Promise<void> {
    await this.redis.hdel(this.keys.meta, STORED.completing);
  }

  /** Marks the run complete, at `at` (the time its summary states). */
  async markCompleted(at = new Date().toISOString()): Promise<void> {
    await this.redis.hset(this.keys.meta, STORED.completedAt, at);
  }

  /** The run's current state, or undefined if no such run exists. */
  async snapshot(): Promise<RunSnapshot | undefined> {
    const [meta, done, failures] = await Promise.all([
      this.redis.hgetall(this.keys.meta),
      this.redis.scard(this.keys.done),
      this.redis.hgetall(this.keys.failures),
    ]);
    if (meta.runId === undefined) return undefined;
    return {
      runId: this.runId,
      input: meta.input ?? "",
      outputPrefix: meta.outputPrefix ?? "",
      modelSha256: meta.modelSha256 ?? "",
      createdAt: meta.createdAt ?? "",
      listingDone: meta.listingDone === "1",
      chunksEnqueued: Number(meta.chunksEnqueued ?? 0),
      chunksDone: done,
      imagesEnqueued: Number(meta.imagesEnqueued ?? 0),
      imagesSkipped: Number(meta.imagesSkipped ?? 0),
      imagesScored: Number(meta.imagesScored ?? 0),
      imagesFailed: Number(meta.imagesFailed ?? 0),
      failuresByReason: Object.fromEntries(Object.entries(failures).map(([k, v]) => [k, Number(v)])),
      ...(meta.model ? { model: JSON.parse(meta.model) as RunModel } : {}),
      ...(meta[STORED.completedAt] ? { completedAt: meta[STORED.completedAt] } : {}),
    };
  }
}
