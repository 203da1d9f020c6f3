import type { Redis } from "ioredis";
import { describeError } from "./errors.js";

/** One readiness condition: true when met, else a short reason ("loading model", "timeout"). */
export type ReadinessCondition = true | string;

/** Named readiness conditions of a process, e.g. `{ model: true, redis: "PING timed out" }`. */
export type ReadinessReport = Record<string, ReadinessCondition>;

/** A check run on every `/readyz` request. */
export type ReadinessCheck = () => Promise<ReadinessReport>;

/**
 * PINGs Redis with a short deadline. A connection that is down answers within the timeout with
 * the reason rather than hanging (ioredis would otherwise queue the command until reconnected).
 */
export async function checkRedis(redis: Redis, timeoutMs = 1_000): Promise<ReadinessCondition> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no PING reply within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([
      redis.ping().then((reply): ReadinessCondition => (reply === "PONG" ? true : `PING answered ${reply}`)),
      timeout,
    ]);
  } catch (error) {
    return describeError(error);
  } finally {
    clearTimeout(timer);
  }
}
