/**
 * The one plumbing every worker thread of memscore uses (the inference thread and the pipeline
 * threads): requests with ids and their replies over a port, errors rebuilt as the classes the
 * pipeline sorts on, log lines forwarded to the main thread's logger, and a bounded close.
 */
import { readlinkSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import {
  type MessagePort,
  parentPort,
  type Transferable,
  Worker,
  type WorkerOptions,
} from "node:worker_threads";
import {
  ImageError,
  type ImageErrorReason,
  type LogFields,
  type Logger,
  MemscoreError,
  ModelContractError,
} from "@memscore/shared";

/** An error as it crosses a thread boundary (classes do not survive structured cloning). */
export interface ThreadError {
  name: string;
  code?: string | undefined;
  reason?: string | undefined;
  message: string;
}

export function toThreadError(error: unknown): ThreadError {
  return {
    name: error instanceof Error ? error.name : "Error",
    code: (error as { code?: unknown } | undefined)?.code as string | undefined,
    reason: (error as { reason?: unknown } | undefined)?.reason as string | undefined,
    message: error instanceof Error ? error.message : String(error),
  };
}

/** Rebuilds the error class the pipeline decides on: ImageError = permanent, the rest by code. */
export function fromThreadError(error: ThreadError): Error {
  if (error.name === "ImageError" && error.reason)
    return new ImageError(error.reason as ImageErrorReason, error.message);
  if (error.code === "model_contract") return new ModelContractError(error.message);
  if (error.code) return new MemscoreError(error.code, error.message);
  const plain = new Error(error.message);
  plain.name = error.name;
  return plain;
}

/** Messages on a port: requests and their replies, events, and the request to close. */
export type ChannelMessage<Req, Res, Event> =
  | { kind: "request"; id: number; body: Req }
  | { kind: "reply"; id: number; body: Res }
  | { kind: "reply-failed"; id: number; error: ThreadError }
  | { kind: "event"; event: Event }
  | { kind: "log"; level: "debug" | "info" | "warn" | "error"; message: string; fields: LogFields }
  | { kind: "close" };

/** A MessagePort or a Worker: both post and receive the same way. */
type Endpoint = MessagePort | Worker;

/** Listens on either kind of endpoint (their `on` overloads differ only in other events). */
function listen<T>(endpoint: Endpoint, event: "message" | "close", listener: (message: T) => void): void {
  (endpoint as MessagePort).on(event as "message", listener);
}

/**
 * Sends requests over a port and resolves each with its own reply. `failAll` rejects what is
 * outstanding (the thread behind the port died), so no caller waits forever.
 */
export class ThreadClient<Req, Res> {
  private readonly waiters = new Map<number, { resolve: (r: Res) => void; reject: (e: unknown) => void }>();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(private readonly endpoint: Endpoint) {
    listen<ChannelMessage<unknown, Res, unknown>>(endpoint, "message", (message) => {
      if (message.kind !== "reply" && message.kind !== "reply-failed") return;
      const waiter = this.waiters.get(message.id);
      if (!waiter) return;
      this.waiters.delete(message.id);
      if (message.kind === "reply") waiter.resolve(message.body);
      else waiter.reject(fromThreadError(message.error));
    });
    // A port whose other end has gone (its thread ended) will never reply.
    listen(endpoint, "close", () => this.failAll(new Error("the thread behind this port has ended")));
  }

  /** Requests that have no reply yet: how loaded the thread behind the port is. */
  get outstanding(): number {
    return this.waiters.size;
  }

  /** Posts `body` (transferring `transfer`) and resolves with the reply. */
  request(body: Req, transfer: readonly Transferable[] = []): Promise<Res> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<Res>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      const message: ChannelMessage<Req, Res, never> = { kind: "request", id, body };
      this.endpoint.postMessage(message, transfer as Transferable[]);
    });
  }

  /** Rejects every outstanding request, and every later one, with `error`. */
  failAll(error: Error): void {
    this.failed ??= error;
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }
}

/** The serving side of a port: {@link idle} tells when every request so far has been answered. */
export interface RequestServer {
  /** Requests being handled now. */
  readonly active: number;
  /** Resolves once every request received so far has had its reply posted. */
  idle(): Promise<void>;
}

/**
 * Answers requests arriving on `endpoint` with `handle`, concurrently: a failure becomes that
 * request's rejection on the other side, never the thread's end.
 */
export function serveRequests<Req, Res>(
  endpoint: Endpoint,
  handle: (body: Req) => Promise<{ body: Res; transfer?: Transferable[] }>,
): RequestServer {
  let active = 0;
  const idleWaiters: (() => void)[] = [];
  const done = () => {
    active--;
    if (active === 0) for (const resolve of idleWaiters.splice(0)) resolve();
  };
  listen<ChannelMessage<Req, Res, unknown>>(endpoint, "message", (message) => {
    if (message.kind !== "request") return;
    active++;
    handle(message.body)
      .then(
        ({ body, transfer }) => {
          const reply: ChannelMessage<Req, Res, never> = { kind: "reply", id: message.id, body };
          endpoint.postMessage(reply, transfer ?? []);
        },
        (error: unknown) => {
          const reply: ChannelMessage<Req, Res, never> = {
            kind: "reply-failed",
            id: message.id,
            error: toThreadError(error),
          };
          endpoint.postMessage(reply);
        },
      )
      .finally(done);
  });
  return {
    get active() {
      return active;
    },
    idle: () =>
      active === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)),
  };
}

/**
 * Where a thread's code is. Run from sources (vitest), a thread still runs the built file: a
 * worker thread cannot load TypeScript; `npm test` builds first.
 */
export function threadEntry(file: string, callerUrl: string): URL {
  return callerUrl.endsWith(".ts") ? new URL(`../dist/${file}`, callerUrl) : new URL(`./${file}`, callerUrl);
}

/** How long a closing thread may take to end by itself before it is terminated. */
const CLOSE_TIMEOUT_MS = 5_000;

/** A started worker thread with its ready message, events and log lines routed. */
export interface StartedThread<Ready> {
  worker: Worker;
  ready: Ready;
  /** Resolves when the thread has ended; its error (or exit code) is what ended it. */
  ended: Promise<Error>;
  /** Asks the thread to close after its current work, terminates it after 5 s. Idempotent. */
  close(): Promise<void>;
}

/**
 * Old-generation size (MiB) below which a thread's heap is not marked and compacted. A pipeline
 * thread keeps about 16 MiB live (the S3 SDK, sharp, its modules) and turns over about a
 * megabyte of short-lived objects per image; with V8's default limits it ran a full mark-compact
 * every half second or so (seen with --trace-gc: 21–28 in a 192-image run), each marking the
 * whole live heap again. With this floor it ran 5–8, and the worker's CPU outside inference fell
 * from 13.6–14.1 to 12.1–12.7 ms per image (five interleaved runs each, bench/end-to-end.mjs). The
 * cost is memory: each thread's heap may hold up to this much before it is collected.
 */
export const THREAD_OLD_SPACE_MIB = 128;

/**
 * Starts a thread and waits for its first event (`ready`), or its failure to start. Log lines
 * go to `logger`; later events go to `onEvent`.
 */
export async function startThread<Ready, Event = never>(
  entry: URL,
  options: WorkerOptions & { logger: Logger; onEvent?: (event: Event) => void },
): Promise<StartedThread<Ready>> {
  const { logger, onEvent, ...workerOptions } = options;
  // A V8 flag is process-wide; it applies to the heaps of the threads created after it is set.
  setFlagsFromString(`--initial-old-space-size=${THREAD_OLD_SPACE_MIB}`);
  const worker = new Worker(entry, workerOptions);
  let ended!: (error: Error) => void;
  const endedPromise = new Promise<Error>((resolve) => {
    ended = resolve;
  });
  worker.on("error", (error) => ended(error));
  worker.on("exit", (code) =>
    ended(new Error(`${entry.pathname.split("/").at(-1)} exited with code ${code}`)),
  );
  const ready = await new Promise<Ready>((resolve, reject) => {
    let started = false;
    worker.on("message", (message: ChannelMessage<never, never, ThreadStartEvent<Ready> | Event>) => {
      if (message.kind === "log") logger[message.level](message.message, message.fields);
      if (message.kind !== "event") return;
      const event = message.event as ThreadStartEvent<Ready>;
      if (!started && (event as { type?: string }).type === "ready") {
        started = true;
        resolve((event as { ready: Ready }).ready);
      } else if (!started && (event as { type?: string }).type === "failed") {
        reject(fromThreadError((event as { error: ThreadError }).error));
      } else onEvent?.(message.event as Event);
    });
    // A thread that fails to start posts why, then ends; its end can be seen before that last
    // message is read: give the message a moment to win, so the caller gets the real reason.
    void endedPromise.then((error) => setTimeout(() => reject(error), 200));
  }).catch(async (error: unknown) => {
    await worker.terminate();
    throw error;
  });
  let closing: Promise<void> | undefined;
  return {
    worker,
    ready,
    ended: endedPromise,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        void endedPromise.then(() => resolve());
        worker.postMessage({ kind: "close" } satisfies ChannelMessage<never, never, never>);
        // A thread that does not end by itself (a stuck native call) is ended for it.
        setTimeout(() => void worker.terminate(), CLOSE_TIMEOUT_MS).unref();
      });
      return closing;
    },
  };
}

/** The first event of a thread: started (with what the starter needs), or failed to. */
export type ThreadStartEvent<Ready> =
  | { type: "ready"; ready: Ready }
  | { type: "failed"; error: ThreadError };

/**
 * The calling thread's operating-system thread id (Linux), so CPU use can be read per thread
 * from /proc; undefined elsewhere.
 */
export function osThreadId(): number | undefined {
  try {
    return Number(readlinkSync("/proc/thread-self").split("/").at(-1));
  } catch {
    return undefined;
  }
}

/** Inside a thread: the port to the thread that started it. */
export function threadParentPort(name: string): MessagePort {
  if (!parentPort) throw new Error(`${name} must run as a worker thread`);
  return parentPort;
}

/** Inside a thread: tells the starter the thread is ready, or failed to start. */
export function postStart<Ready>(port: MessagePort, event: ThreadStartEvent<Ready>): void {
  port.postMessage({ kind: "event", event } satisfies ChannelMessage<never, never, ThreadStartEvent<Ready>>);
}

/** Inside a thread: posts an event to the starter. */
export function postEvent<Event>(port: MessagePort, event: Event): void {
  port.postMessage({ kind: "event", event } satisfies ChannelMessage<never, never, Event>);
}

/** Inside a thread: calls `close` when the starter asks the thread to close. */
export function onCloseRequest(port: MessagePort, close: () => void | Promise<void>): void {
  port.on("message", (message: ChannelMessage<unknown, unknown, unknown>) => {
    if (message.kind === "close") void close();
  });
}

/** Inside a thread: a logger whose lines go to the starter's logger. */
export function forwardingLogger(port: MessagePort, base: LogFields = {}): Logger {
  const log =
    (level: "debug" | "info" | "warn" | "error") =>
    (message: string, fields: LogFields = {}) =>
      port.postMessage({
        kind: "log",
        level,
        message,
        fields: { ...base, ...fields },
      } satisfies ChannelMessage<never, never, never>);
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (fields) => forwardingLogger(port, { ...base, ...fields }),
  };
}
