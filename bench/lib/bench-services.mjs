import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LOCAL_S3_ACCESS_KEY_ID, LOCAL_S3_SECRET_ACCESS_KEY, startLocalRedis } from "@memscore/cli";

const S3_CHILD = join(dirname(fileURLToPath(import.meta.url)), "s3-server-child.mjs");

/** Starts s3rver in a child process with `buckets` created; resolves with its endpoint and a stop(). */
async function startS3Process(buckets) {
  const child = spawn(process.execPath, [S3_CHILD, ...buckets], { stdio: ["pipe", "pipe", "inherit"] });
  const endpoint = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n")) resolve(JSON.parse(line).endpoint);
    });
    child.once("exit", (code) => reject(new Error(`s3 server exited with ${code}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.stdin.end();
    await exited;
  };
  return { endpoint, stop, pid: child.pid };
}

/** A private redis-server and S3 API server, plus the environment that points memscore at them. */
export async function startBenchServices(buckets) {
  const s3 = await startS3Process(buckets);
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
    s3Pid: s3.pid,
    stop: async () => {
      await Promise.allSettled([redis.stop(), s3.stop()]);
    },
  };
}
