import { randomUUID } from "node:crypto";
import {
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  type LocalRedis,
  type LocalRedisOptions,
  type LocalS3,
  startLocalRedis,
  startLocalS3,
} from "@memscore/cli";

/** A private Redis and S3 API server for one test file, plus the env that points memscore at them. */
export interface TestServices {
  redis: LocalRedis;
  s3: LocalS3;
  /** REDIS_URL, S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY */
  env: NodeJS.ProcessEnv;
  /** Stops both servers; safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * Starts a private redis-server and an in-process s3rver on free ports. `redisOptions` configures
 * the Redis for one test: persistence (`appendonly`), TLS, a password or another eviction policy.
 * Call `stop()` in afterAll.
 */
export async function startTestServices(redisOptions: LocalRedisOptions = {}): Promise<TestServices> {
  const s3 = await startLocalS3();
  let redis: LocalRedis;
  try {
    redis = await startLocalRedis(redisOptions);
  } catch (error) {
    await s3.stop();
    throw error;
  }
  const env: NodeJS.ProcessEnv = {
    REDIS_URL: redis.url,
    S3_ENDPOINT: s3.endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: LOCAL_S3_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_SECRET_ACCESS_KEY,
  };
  const stop = async () => {
    // Stop both even if one fails, then report the first failure.
    const results = await Promise.allSettled([redis.stop(), s3.stop()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  };
  return { redis, s3, env, stop };
}

/**
 * `prefix` plus a random fragment, usable as a bucket or queue name: lowercase letters, digits
 * and hyphens, at most 63 characters.
 */
export function uniqueName(prefix: string): string {
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+/, "");
  const id = randomUUID().replaceAll("-", "").slice(0, 12);
  return `${clean.slice(0, 63 - id.length - 1)}-${id}`.replace(/^-/, "");
}

/**
 * Polls `condition` every `intervalMs` until it is true; rejects after `timeoutMs` with a message
 * saying what was awaited. Tests use this instead of fixed sleeps.
 */
export async function sleepUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error; // e.g. a server that is not up yet: keep polling
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(
        `sleepUntil: condition ${condition.toString().slice(0, 120)} not met within ${timeoutMs} ms${why}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
