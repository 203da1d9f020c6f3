import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LOCAL_S3_ACCESS_KEY_ID, LOCAL_S3_SECRET_ACCESS_KEY, startLocalRedis } from "@memscore/cli";
import { processCpuMs } from "./thread-cpu.mjs";

const S3_CHILD = join(dirname(fileURLToPath(import.meta.url)), "s3-server-child.mjs");

/**
 * s3rver processes for a machine of this many cores: one on small machines (as every 2-core
 * figure in the README was measured), and a third of the cores on large ones, where one
 * single-threaded s3rver (about 4 CPU-ms per image) would cap a run near 250–300 images/s.
 */
export function defaultS3Processes(cores = availableParallelism()) {
  return Math.max(1, Math.floor(cores / 3));
}

/** Starts the S3 server child with `buckets` created; resolves with its endpoint, pids and a stop(). */
async function startS3Process(buckets, processes) {
  const child = spawn(process.execPath, [S3_CHILD, String(processes), ...buckets], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ready = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d.toString();
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]));
    });
    child.once("exit", (code) => reject(new Error(`s3 server exited with ${code}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.stdin.end();
    await exited;
  };
  return { ...ready, stop };
}

/**
 * A private redis-server and S3 API server (`s3Processes` s3rver processes on one port), plus
 * the environment that points memscore at them.
 */
export async function startBenchServices(buckets, { s3Processes = defaultS3Processes() } = {}) {
  const s3 = await startS3Process(buckets, s3Processes);
  const redis = await startLocalRedis();
  const env = {
    REDIS_URL: redis.url,
    S3_ENDPOINT: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: LOCAL_S3_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_SECRET_ACCESS_KEY,
  };
  return {
    env,
    s3Processes,
    /** CPU ms the S3 server's processes have used so far; null off Linux. */
    s3CpuMs: () => {
      const each = s3.pids.map(processCpuMs);
      return each.includes(null) ? null : each.reduce((a, b) => a + b, 0);
    },
    stop: async () => {
      await Promise.allSettled([redis.stop(), s3.stop()]);
    },
  };
}
