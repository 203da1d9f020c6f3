import { randomUUID } from "node:crypto";
import { createServer, type Socket } from "node:net";
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
    // Stop both even if one fails, then report the first failure; one that hangs is named.
    const results = await Promise.allSettled([
      within("stopping the test Redis", STOP_TIMEOUT_MS, redis.stop()),
      within("stopping the test S3 API server", STOP_TIMEOUT_MS, s3.stop()),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  };
  return { redis, s3, env, stop };
}

/** How long stopping a test server may take before the stop fails, naming the server. */
const STOP_TIMEOUT_MS = 30_000;

/** `step`, or a failure naming `what` if it has not settled within `timeoutMs`. */
export async function within<T>(what: string, timeoutMs: number, step: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([step, overdue]);
  } finally {
    clearTimeout(timer);
  }
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

/** What {@link sleepUntil} waits for, and what it says when the wait expires. */
export interface WaitOptions {
  /** What is awaited, as the failure message should say it: "3 chunks completed". */
  what: string;
  timeoutMs: number;
  /** @defaultValue 50 */
  intervalMs?: number;
  /**
   * The state the condition looks at (queue counts, a process's output), printed when the wait
   * expires so the failure says what was seen instead of only that time ran out.
   */
  state?: () => unknown;
  /**
   * Says why waiting longer is pointless (a process it waits on has exited), or undefined to go
   * on: the wait then fails at once with that reason instead of at its deadline.
   */
  stopIf?: () => string | undefined;
}

/**
 * Polls `condition` every `intervalMs` until it is true; rejects after `timeoutMs` with a message
 * that says what was awaited, the state last observed, and the condition's last error (e.g. a
 * server not up yet: errors do not stop the polling). Tests use this instead of fixed sleeps.
 */
export async function sleepUntil(
  condition: () => boolean | Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const stop = options.stopIf?.();
    if (stop !== undefined || Date.now() >= deadline) {
      const lines = [
        stop !== undefined
          ? `sleepUntil: stopped waiting for ${options.what}: ${stop}`
          : `sleepUntil: gave up after ${options.timeoutMs} ms waiting for ${options.what}`,
      ];
      if (lastError !== undefined) lines.push(`last error: ${errorText(lastError)}`);
      if (options.state) {
        let state: unknown;
        try {
          state = await options.state();
        } catch (error) {
          state = `(could not read the state: ${errorText(error)})`;
        }
        lines.push(`last state: ${typeof state === "string" ? state : JSON.stringify(state, null, 2)}`);
      }
      throw new Error(lines.join("\n"));
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A TCP server on a port the OS gave it (port 0) that closes every connection at once: an
 * address where nothing answers, held for the test so no other process can start listening there.
 */
export async function startClosedPort(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("the closed-port server has no port");
  return {
    port: address.port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
