import {
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  type LocalRedis,
  type LocalRedisOptions,
  startLocalRedis,
  startLocalS3,
} from "@memscore/cli";
import type { TestServices } from "./services.js";

/**
 * Like startTestServices(), with a Redis configured for one test: persistence (`appendonly`),
 * TLS, a password or another eviction policy. Call `stop()` in afterAll.
 */
export async function startTestServicesWith(redisOptions: LocalRedisOptions): Promise<TestServices> {
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
    const results = await Promise.allSettled([redis.stop(), s3.stop()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  };
  return { redis, s3, env, stop };
}
