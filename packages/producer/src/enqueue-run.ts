import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CHUNK_JOB_NAME,
  type ChunkImage,
  type ChunkJobData,
  chunkJobId,
  completeRun,
  formatS3Uri,
  type ListingCheckpoint,
  openChunkQueue,
  outputLocations,
  type ResultRow,
  RunState,
  writeResultsPart,
} from "@memscore/shared";
import type { Queue } from "bullmq";
import {
  type EnqueueRunOptions,
  type ResolvedEnqueueOptions,
  resolveEnqueueOptions,
} from "./enqueue-options.js";
import { RunConflictError } from "./errors.js";
import { type InputSource, openInputSource } from "./input-source.js";
import type { ListedImage } from "./listed-image.js";
import { mapOrdered } from "./ordered-map.js";
import { hasCurrentRecord } from "./skip-existing.js";

/** What an enqueue did. Image and chunk counts are run totals (they include earlier, resumed calls). */
export interface EnqueueSummary {
  runId: string;
  /** The run already had a checkpoint: this call continued it. */
  resumed: boolean;
  /** The run's listing was already complete: this call changed nothing. */
  alreadyListed: boolean;
  dryRun: boolean;
  /** Images read from the input by this call. */
  imagesListed: number;
  imagesEnqueued: number;
  imagesSkipped: number;
  /** Chunk slots of the run; all-skipped slots count, and are marked done at once. */
  chunks: number;
  /** This call wrote the run's results table (nothing was left for workers to do). */
  completed: boolean;
  durationMs: number;
}

/**
 * A slot of `chunkSize` consecutive listed images. Slot boundaries depend only on the listing,
 * never on skip decisions or timing, so a resumed enqueue rebuilds exactly the same slots and
 * re-adding one is a no-op on its deterministic job id. Skipped images stay in their slot's
 * results part; a slot whose images were all skipped is recorded done without a job.
 */
interface Slot {
  index: number;
  images: ChunkImage[];
  skipped: ResultRow[];
  /** Cursor of the slot's last image: where a resumed listing continues. */
  cursor: string;
}

function toChunkImage(image: ListedImage): ChunkImage {
  return { uri: image.uri, rel: image.rel, ...(image.size !== undefined && { size: image.size }) };
}

/** A skipped image's row: its current record was written with `o.modelSha256` (--skip-existing). */
function skippedRow(o: ResolvedEnqueueOptions, image: ListedImage): ResultRow {
  const { heatmap } = outputLocations(o.outputPrefix, image.rel, o.heatmapFormat);
  return {
    uri: image.uri,
    status: "skipped",
    ...(heatmap && { heatmap: formatS3Uri(heatmap) }),
    model_sha256: o.modelSha256,
  };
}

/** Pairs each listed image with the skip decision, HEADing records with bounded concurrency when asked. */
function withSkipDecisions(
  images: AsyncIterable<ListedImage>,
  o: ResolvedEnqueueOptions,
): AsyncIterable<{ image: ListedImage; skip: boolean }> {
  if (!o.skipExisting) {
    return (async function* () {
      for await (const image of images) yield { image, skip: false };
    })();
  }
  return mapOrdered(
    images,
    async (image) => ({
      image,
      skip: await hasCurrentRecord(o.storage, o.outputPrefix, image, o.modelSha256, o.heatmapFormat),
    }),
    o.headConcurrency,
  );
}

/**
 * Lists an input and enqueues it as chunk jobs of one run, with backpressure and resume.
 *
 * - The input is validated in full first (forbidden buckets, bad manifest lines): a refused run
 *   enqueues nothing.
 * - Chunks are added in groups with `addBulk`, and the checkpoint is saved after each group, so a
 *   crash re-adds at most one group under the same job ids (a no-op) and never skips work.
 * - No group is added while `maxPending` chunks of the run are unfinished.
 * - Reusing a run id resumes from its checkpoint; a run whose listing finished is left alone.
 * - When nothing is left for workers (all chunks finished, or none were needed), this call
 *   writes the run's results table itself.
 */
export async function enqueueRun(options: EnqueueRunOptions): Promise<EnqueueSummary> {
  const started = performance.now();
  const o = resolveEnqueueOptions(options);
  const source = await openInputSource(o.storage, o.input, o.outputPrefix);
  if (o.dryRun) return dryRun(o, source, started);

  const run = new RunState(o.redis, o.queueName, o.runId);
  const owner = `producer:${hostname()}:${process.pid}`;
  const before = await run.snapshot();
  if (before && (before.input !== source.description || before.outputPrefix !== o.outputPrefix)) {
    throw new RunConflictError(
      `run "${o.runId}" exists with input ${before.input} and output ${before.outputPrefix}; use another --run-id`,
    );
  }
  if (before?.listingDone) {
    // A finished listing is a no-op; claiming again only matters if an earlier completion failed.
    const completed = await run.markListingDone(owner);
    if (completed) await completeRun(o.storage, run, o.logger);
    return {
      runId: o.runId,
      resumed: true,
      alreadyListed: true,
      dryRun: false,
      imagesListed: 0,
      imagesEnqueued: before.imagesEnqueued,
      imagesSkipped: before.imagesSkipped,
      chunks: before.chunksEnqueued,
      completed,
      durationMs: performance.now() - started,
    };
  }
  await run.create({ input: source.description, outputPrefix: o.outputPrefix, modelSha256: o.modelSha256 });
  const checkpoint = await run.getCheckpoint();
  if (checkpoint) o.logger.info("resuming run", { runId: o.runId, ...checkpoint });

  const queue = openChunkQueue(o.redis, o.queueName);
  try {
    const state = await enqueueSlots(o, source, run, queue, owner, checkpoint, before !== undefined);
    const completed = await run.markListingDone(owner);
    if (completed) await completeRun(o.storage, run, o.logger);
    return {
      runId: o.runId,
      resumed: before !== undefined,
      alreadyListed: false,
      dryRun: false,
      imagesListed: state.imagesListed,
      imagesEnqueued: state.imagesEnqueued,
      imagesSkipped: state.imagesSkipped,
      chunks: state.nextChunkIndex,
      completed,
      durationMs: performance.now() - started,
    };
  } finally {
    await queue.close();
  }
}

interface LoopState {
  nextChunkIndex: number;
  imagesEnqueued: number;
  imagesSkipped: number;
  imagesListed: number;
}

/** Time after which a partial group of chunks is added anyway, so workers start early on slow listings. */
const MAX_GROUP_DELAY_MS = 1_000;

async function enqueueSlots(
  o: ResolvedEnqueueOptions,
  source: InputSource,
  run: RunState,
  queue: Queue<ChunkJobData>,
  owner: string,
  checkpoint: ListingCheckpoint | undefined,
  resuming: boolean,
): Promise<LoopState> {
  const state: LoopState = {
    nextChunkIndex: checkpoint?.nextChunkIndex ?? 0,
    imagesEnqueued: checkpoint?.imagesEnqueued ?? 0,
    imagesSkipped: checkpoint?.imagesSkipped ?? 0,
    imagesListed: 0,
  };
  // A crash between addBulk and the checkpoint leaves at most one group past the checkpoint.
  const recheckBelow = resuming ? state.nextChunkIndex + o.chunksPerAdd : 0;
  const report = (waitingForWorkers: boolean) =>
    o.onProgress?.({
      runId: o.runId,
      imagesListed: state.imagesListed,
      imagesEnqueued: state.imagesEnqueued,
      imagesSkipped: state.imagesSkipped,
      chunksEnqueued: state.nextChunkIndex,
      waitingForWorkers,
    });

  /** Free room in the backpressure window (≥ 1), waiting for workers while there is none. */
  const waitForRoom = async (): Promise<number> => {
    for (let waited = false; ; waited = true) {
      const snapshot = await run.snapshot();
      const outstanding = Math.max(0, state.nextChunkIndex - (snapshot?.chunksDone ?? 0));
      if (outstanding < o.maxPending) return o.maxPending - outstanding;
      if (!waited) report(true);
      await sleep(o.pollMs, undefined, { signal: o.signal });
    }
  };

  /** Whether a slot past the checkpoint was already added (or finished) before a crash. */
  const alreadyAdded = async (index: number): Promise<boolean> =>
    index < recheckBelow &&
    ((await run.isChunkDone(index)) || (await queue.getJob(chunkJobId(o.runId, index))) !== undefined);

  const commit = async (group: Slot[]) => {
    const fresh: Slot[] = [];
    for (const slot of group) if (!(await alreadyAdded(slot.index))) fresh.push(slot);
    // Skipped rows first: a slot that exists in Redis must already have its results part.
    await Promise.all(
      fresh
        .filter((s) => s.skipped.length > 0)
        .map((s) =>
          writeResultsPart(
            o.storage,
            o.outputPrefix,
            o.runId,
            { kind: "skipped", index: s.index },
            s.skipped,
          ),
        ),
    );
    const jobs = fresh
      .filter((s) => s.images.length > 0)
      .map((s) => ({
        name: CHUNK_JOB_NAME,
        data: {
          v: 1,
          runId: o.runId,
          chunkIndex: s.index,
          outputPrefix: o.outputPrefix,
          heatmapFormat: o.heatmapFormat,
          images: s.images,
        } as ChunkJobData,
        opts: { jobId: chunkJobId(o.runId, s.index) },
      }));
    if (jobs.length > 0) await queue.addBulk(jobs);
    for (const slot of fresh) {
      if (slot.images.length === 0)
        await run.recordChunk(slot.index, { scored: 0, failed: 0, failuresByReason: {} }, owner);
    }
    for (const slot of group) {
      state.imagesEnqueued += slot.images.length;
      state.imagesSkipped += slot.skipped.length;
    }
    const last = group[group.length - 1] as Slot;
    state.nextChunkIndex = last.index + 1;
    await run.saveCheckpoint({
      nextChunkIndex: state.nextChunkIndex,
      cursor: last.cursor,
      imagesEnqueued: state.imagesEnqueued,
      imagesSkipped: state.imagesSkipped,
    });
    report(false);
  };

  const ready: Slot[] = [];
  let lastAdd = Date.now();
  const addReady = async () => {
    while (ready.length > 0) {
      const room = await waitForRoom();
      await commit(ready.splice(0, Math.min(room, o.chunksPerAdd, ready.length)));
    }
    lastAdd = Date.now();
  };
  const groupSize = Math.min(o.chunksPerAdd, o.maxPending);

  const newSlot = (index: number): Slot => ({ index, images: [], skipped: [], cursor: "" });
  let slot = newSlot(state.nextChunkIndex);
  for await (const { image, skip } of withSkipDecisions(source.list(checkpoint?.cursor), o)) {
    o.signal?.throwIfAborted();
    state.imagesListed++;
    if (skip) slot.skipped.push(skippedRow(o, image));
    else slot.images.push(toChunkImage(image));
    slot.cursor = image.cursor;
    if (slot.images.length + slot.skipped.length === o.chunkSize) {
      ready.push(slot);
      slot = newSlot(slot.index + 1);
      if (ready.length >= groupSize || Date.now() - lastAdd >= MAX_GROUP_DELAY_MS) await addReady();
    }
  }
  if (slot.images.length + slot.skipped.length > 0) ready.push(slot);
  await addReady();
  return state;
}

/** Lists and skip-checks without writing anything; chunk count is what a real run would add. */
async function dryRun(
  o: ResolvedEnqueueOptions,
  source: InputSource,
  started: number,
): Promise<EnqueueSummary> {
  let listed = 0;
  let enqueued = 0;
  let skipped = 0;
  for await (const { skip } of withSkipDecisions(source.list(undefined), o)) {
    o.signal?.throwIfAborted();
    listed++;
    if (skip) skipped++;
    else enqueued++;
    if (listed % 10_000 === 0) {
      o.onProgress?.({
        runId: o.runId,
        imagesListed: listed,
        imagesEnqueued: enqueued,
        imagesSkipped: skipped,
        chunksEnqueued: 0,
        waitingForWorkers: false,
      });
    }
  }
  return {
    runId: o.runId,
    resumed: false,
    alreadyListed: false,
    dryRun: true,
    imagesListed: listed,
    imagesEnqueued: enqueued,
    imagesSkipped: skipped,
    chunks: Math.ceil(listed / o.chunkSize),
    completed: false,
    durationMs: performance.now() - started,
  };
}
