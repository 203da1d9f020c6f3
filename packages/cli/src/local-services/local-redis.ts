import { type ChildProcess, spawn } from "node:child_process";
import { constants, rmSync } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { type Logger, MemscoreError, silentLogger } from "@memscore/shared";
import { freePort } from "./free-port.js";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 10_000;
const KILL_AFTER_MS = 5_000;
const OUTPUT_TAIL_CHARS = 2_000;
/** Free ports tried before giving up when each was taken before the server could bind it. */
const PORT_ATTEMPTS = 5;

export interface LocalRedisOptions {
  /** TCP port on 127.0.0.1. @defaultValue a free port */
  port?: number;
  /** Adds `--requirepass`; the URL then carries it. @defaultValue no password */
  password?: string;
  /** Working directory of the server. @defaultValue a fresh temp dir, removed on stop */
  dir?: string;
  /** @defaultValue silentLogger */
  logger?: Logger;
  /**
   * Persist with an append-only file fsynced on every write, as production Redis does, so that
   * `restart()` keeps the queue. @defaultValue false (no persistence: test data is throwaway)
   */
  appendonly?: boolean;
  /** `maxmemory-policy` of the server. @defaultValue "noeviction" (what BullMQ requires) */
  maxmemoryPolicy?: string;
  /**
   * Serve TLS only (no plain port); the URL becomes `rediss://`. Clients are not asked for
   * certificates. @defaultValue no TLS
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** A private `redis-server` child process. */
export interface LocalRedis {
  /** `redis://[:password@]127.0.0.1:PORT` (`rediss://` with the `tls` option) */
  url: string;
  port: number;
  host: string;
  /** Ends the server (SIGTERM, SIGKILL after 5 s) and removes its temp dir; idempotent. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port with the same settings (data is lost unless `appendonly`). */
  restart(): Promise<void>;
  /** The server's process id, or undefined while it is not running. */
  pid(): number | undefined;
}

interface RunningServer {
  child: ChildProcess;
  exited: Promise<void>;
  /** Resolves once the server accepts connections; rejects (after killing it) if it never does. */
  ready: Promise<void>;
}

/** Finds `redis-server` on PATH, or throws a MemscoreError that says how to get one. */
export async function findRedisServer(): Promise<string> {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, "redis-server");
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this PATH entry; keep looking.
    }
  }
  throw new MemscoreError(
    "redis_server_missing",
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get install redis-server`; " +
      "macOS: `brew install redis`) or set REDIS_URL to an existing Redis.",
  );
}

/** Starts `redis-server` on 127.0.0.1 without persistence and waits until it accepts connections. */
export async function startLocalRedis(options: LocalRedisOptions = {}): Promise<LocalRedis> {
  const binary = await findRedisServer();
  const logger = options.logger ?? silentLogger;
  let port = options.port ?? (await freePort(HOST));
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "memscore-redis-")));
  // No persistence by default: test data is throwaway, and RDB/AOF writes would only slow tests down.
  const persistence = options.appendonly
    ? ["--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  const serverArgs = () => {
    const listen = options.tls
      ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", options.tls.certFile]
      : ["--port", String(port)];
    if (options.tls) {
      listen.push("--tls-key-file", options.tls.keyFile, "--tls-ca-cert-file", options.tls.caFile);
      listen.push("--tls-auth-clients", "no");
    }
    const args = [...listen, "--bind", HOST, "--save", "", ...persistence, "--dir", dir];
    args.push("--maxmemory-policy", options.maxmemoryPolicy ?? "noeviction", "--daemonize", "no");
    if (options.password !== undefined) args.push("--requirepass", options.password);
    return args;
  };

  let current: RunningServer | undefined;
  let stopping: Promise<void> | undefined;
  // A child left behind would keep the port and the test runner busy; kill it when we exit
  // (only synchronous work is possible in an 'exit' listener).
  const killOnExit = () => {
    current?.child.kill("SIGKILL");
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", killOnExit);

  const stopProcess = async () => {
    const running = current;
    current = undefined;
    if (running) await terminate(running);
  };

  // `current` is set before waiting so the exit hook also covers a server that is still starting.
  const startProcess = async () => {
    current = launch(binary, serverArgs(), port);
    try {
      await current.ready;
    } catch (error) {
      current = undefined;
      throw error;
    }
  };

  try {
    // redis-server cannot bind port 0 and report it: a port found free can be taken by another
    // process before the server binds it. Then try another one (a port given by the caller is kept).
    for (let attempt = 1; ; attempt++) {
      try {
        await startProcess();
        break;
      } catch (error) {
        const taken = error instanceof MemscoreError && error.message.includes("Address already in use");
        if (!taken || options.port !== undefined || attempt >= PORT_ATTEMPTS) throw error;
        port = await freePort(HOST);
      }
    }
  } catch (error) {
    process.off("exit", killOnExit);
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw error;
  }
  logger.debug("local redis started", { port, pid: current?.child.pid });

  const auth = options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`;
  return {
    url: `${options.tls ? "rediss" : "redis"}://${auth}${HOST}:${port}`,
    port,
    host: HOST,
    pid: () => current?.child.pid,
    restart: async () => {
      if (stopping) throw new MemscoreError("redis_stopped", "cannot restart a local Redis after stop()");
      await stopProcess();
      await startProcess();
      logger.debug("local redis restarted", { port, pid: current?.child.pid });
    },
    stop: () => {
      stopping ??= (async () => {
        try {
          await stopProcess();
        } finally {
          process.off("exit", killOnExit);
          if (ownDir) await rm(dir, { recursive: true, force: true });
        }
        logger.debug("local redis stopped", { port });
      })();
      return stopping;
    },
  };
}

/** Spawns the server; `ready` resolves once its log says so, or rejects with its output tail. */
function launch(binary: string, args: string[], port: number): RunningServer {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const ready = new Promise<void>((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      const tail = output.slice(-OUTPUT_TAIL_CHARS).trim();
      reject(
        new MemscoreError("redis_start_failed", `redis-server on port ${port} ${why}:\n${tail}`, { cause }),
      );
    };
    const timer = setTimeout(() => fail(`was not ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS * 2);
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        child.off("exit", onEarlyExit);
        resolve();
      }
    };
    const onEarlyExit = (code: number | null, signal: string | null) =>
      fail(`exited before it was ready (code ${code}, signal ${signal})`);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onEarlyExit);
    child.once("error", (error) => fail("could not be spawned", error));
  });
  return { child, exited, ready };
}

/** SIGTERM, then SIGKILL if the server has not exited after KILL_AFTER_MS. */
async function terminate({ child, exited }: RunningServer): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const timer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
  child.kill("SIGTERM");
  await exited;
  clearTimeout(timer);
}
