import { Redis, type RedisOptions } from "ioredis";
import { settleWithin } from "./deadline.js";
import type { Logger } from "./logger.js";
import { redactSecrets } from "./logger.js";

/**
 * Opens an ioredis connection suitable for BullMQ: `maxRetriesPerRequest: null` (BullMQ's
 * blocking commands must wait through reconnects rather than fail), reconnection forever with a
 * capped back-off (a Redis restart must not end a worker), TLS for `rediss://` URLs.
 */
export function createRedisConnection(
  url: string,
  options: { name: string; logger?: Logger; extra?: RedisOptions },
): Redis {
  const tls = url.startsWith("rediss://");
  const redis = new Redis(url, {
    connectionName: options.name,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)),
    ...(tls ? { tls: {} } : {}),
    ...options.extra,
  });
  let lastError = "";
  let lost = false;
  redis.on("error", (error: Error) => {
    // ioredis repeats the same error on every reconnect attempt: log each distinct one once.
    if (error.message !== lastError) {
      lastError = error.message;
      options.logger?.warn("redis connection error", { connection: options.name, error: error.message });
    }
  });
  // A Redis that restarts quickly may be back before any reconnect attempt fails (no "error"
  // event at all): the lost connection itself is what an operator needs to see.
  redis.on("reconnecting", () => {
    if (lost) return;
    lost = true;
    options.logger?.warn("redis connection lost; reconnecting", { connection: options.name });
  });
  redis.on("ready", () => {
    if (lost || lastError) options.logger?.info("redis connection restored", { connection: options.name });
    lost = false;
    lastError = "";
  });
  return redis;
}

/** The Redis URL with its password masked, for logs and status output. */
export function describeRedisUrl(url: string): string {
  return redactSecrets(url) as string;
}

/**
 * Closes a connection without ever hanging: QUIT (so pending replies arrive) when Redis answers
 * within `timeoutMs`, else drop the socket. With `maxRetriesPerRequest: null` a QUIT sent while
 * Redis is unreachable waits in the offline queue for a reconnect that may never come; a stopped
 * worker was seen to live on for minutes that way, reconnecting every 2 s.
 */
export async function closeRedisConnection(redis: Redis, timeoutMs = 2_000): Promise<void> {
  if (redis.status === "ready") {
    try {
      if ((await settleWithin(redis.quit(), timeoutMs)).settled) return;
    } catch {
      // Fall through: drop the socket.
    }
  }
  redis.disconnect();
}
