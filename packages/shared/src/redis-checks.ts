import type { Redis } from "ioredis";
import type { MemscoreConfig } from "./config.js";
import { describeError, MemscoreError } from "./errors.js";
import type { Logger } from "./logger.js";

/** Redis is configured so that it may silently drop queue data; raised when the check is `refuse`. */
export class RedisConfigError extends MemscoreError {
  constructor(message: string) {
    super("redis_config", message);
  }
}

/** How long the check waits for CONFIG GET before saying it could not run (Redis may still be starting). */
const CHECK_TIMEOUT_MS = 10_000;

/**
 * Checks that Redis will not evict keys under memory pressure (`maxmemory-policy noeviction`):
 * an evicting Redis drops queued chunks and run state without any error, so images would be
 * lost silently. `warn` logs a warning, `refuse` throws {@link RedisConfigError}, `off` skips
 * the check. Managed Redis often disables CONFIG: then the check logs that it could not run and
 * lets the process start.
 */
export async function checkRedisEvictionPolicy(
  redis: Redis,
  mode: MemscoreConfig["redisEvictionCheck"],
  logger: Logger,
): Promise<void> {
  if (mode === "off") return;
  let policy: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const reply = await Promise.race([
      redis.config("GET", "maxmemory-policy") as Promise<unknown>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no reply within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    // CONFIG GET answers [name, value]; an unknown parameter answers [].
    if (Array.isArray(reply) && typeof reply[1] === "string") policy = reply[1];
  } catch (error) {
    logger.warn("could not check the Redis maxmemory-policy (CONFIG GET refused or unavailable)", {
      error: describeError(error),
    });
    return;
  } finally {
    clearTimeout(timer);
  }
  if (policy === undefined) {
    logger.warn("could not check the Redis maxmemory-policy (CONFIG GET returned nothing)");
    return;
  }
  if (policy === "noeviction") return;
  const message =
    `Redis maxmemory-policy is "${policy}", not "noeviction": under memory pressure Redis would ` +
    "silently evict queued chunks and run state, and images would be lost. Set maxmemory-policy noeviction" +
    " (or MEMSCORE_REDIS_EVICTION_CHECK=off to accept the risk)";
  if (mode === "refuse") throw new RedisConfigError(message);
  logger.warn(message, { policy });
}
