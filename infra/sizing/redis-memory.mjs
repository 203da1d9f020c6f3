#!/usr/bin/env node
// Measures the Redis memory that pending chunk jobs take: starts a private redis-server, adds
// CHUNKS chunk jobs of IMAGES images (realistic S3 URIs, the payload enqueueRun builds, BullMQ's
// own options) and reads INFO memory before and after. Prints bytes per chunk and per image.
//
//   npm run build && node infra/sizing/redis-memory.mjs [CHUNKS=2000] [IMAGES=64]
import { startLocalRedis } from "@memscore/cli";
import {
  CHUNK_JOB_NAME,
  chunkJobId,
  createRedisConnection,
  openChunkQueue,
  RunState,
} from "@memscore/shared";

const chunks = Number(process.argv[2] ?? 2000);
const imagesPerChunk = Number(process.argv[3] ?? 64);
const runId = "run-20240501-023000-ab12";
const outputPrefix = "s3://corp-memscore-results/photo-archive/2024/";

/** A key like those of a real archive: dated folders, camera, timestamped file name. */
function imageKey(i) {
  const day = String(1 + (i % 28)).padStart(2, "0");
  const camera = String(i % 17).padStart(2, "0");
  return `photo-archive/2024/05/${day}/camera-${camera}/IMG_202405${day}_${String(100000 + (i % 899999))}_${i}.jpg`;
}

const usedMemory = async (redis) => {
  const info = await redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)[1]);
};

const server = await startLocalRedis();
const redis = createRedisConnection(server.url, { name: "sizing" });
try {
  const queue = openChunkQueue(redis, "sizing");
  await queue.waitUntilReady();
  await new RunState(redis, "sizing", runId).create({
    input: "s3://corp-photo-archive/photo-archive/2024/",
    outputPrefix,
    modelSha256: "0".repeat(64),
  });
  const before = await usedMemory(redis);
  let image = 0;
  for (let start = 0; start < chunks; start += 50) {
    const jobs = [];
    for (let c = start; c < Math.min(chunks, start + 50); c++) {
      const images = [];
      for (let k = 0; k < imagesPerChunk; k++, image++) {
        const key = imageKey(image);
        images.push({
          uri: `s3://corp-photo-archive/${key}`,
          rel: key.slice("photo-archive/2024/".length),
          size: 2_000_000 + (image % 3_000_000),
        });
      }
      jobs.push({
        name: CHUNK_JOB_NAME,
        data: { v: 1, runId, chunkIndex: c, outputPrefix, images },
        opts: { jobId: chunkJobId(runId, c) },
      });
    }
    await queue.addBulk(jobs);
  }
  const after = await usedMemory(redis);
  const perChunk = (after - before) / chunks;
  const payload = JSON.stringify({ v: 1, runId, chunkIndex: 0, outputPrefix, images: [] }).length;
  console.log(
    JSON.stringify({
      chunks,
      imagesPerChunk,
      usedMemoryBefore: before,
      usedMemoryAfter: after,
      bytesPerChunk: Math.round(perChunk),
      bytesPerImage: Math.round(perChunk / imagesPerChunk),
      emptyPayloadBytes: payload,
    }),
  );
  await queue.close();
} finally {
  redis.disconnect();
  await server.stop();
}
