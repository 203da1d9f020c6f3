import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** A fault the proxy can inject into one request. */
export type InjectedFault = "500" | "503" | "slow" | "drop-before" | "drop-after";

export interface FaultProxyOptions {
  /** The real S3 endpoint, e.g. `http://127.0.0.1:PORT`. */
  target: string;
  /** Share of requests (0–1) that get a fault. @defaultValue 0 (a pure pass-through that logs) */
  faultRate?: number;
  /** Seed of the fault choice, so a failing run can be replayed. @defaultValue 1 */
  seed?: number;
  /** Faults to pick from. @defaultValue all of them */
  faults?: readonly InjectedFault[];
  /** Delay of a `slow` response. @defaultValue 400 */
  slowMs?: number;
  /** Requests answered with this status without reaching S3 (e.g. 403 for "forbidden" keys); never faulted. */
  deny?: { match: (key: string) => boolean; status: 403 | 404 };
  /** Requests that are passed through untouched (no injected fault). */
  exempt?: (key: string) => boolean;
  /**
   * Requests answered with `status` (without reaching S3) the first `count` times they match a
   * rule, then passed through: faults that outlast the client's own retries (`count` Infinity:
   * for good). These requests never get a random fault.
   */
  failFirst?: readonly FailFirstRule[];
}

/** See {@link FaultProxyOptions.failFirst}. */
export interface FailFirstRule {
  match: (method: string, key: string) => boolean;
  count: number;
  status: 500 | 503;
}

/** One request as the proxy saw it. */
export interface ProxiedRequest {
  method: string;
  bucket: string;
  /** Object key, percent-decoded ("" for bucket-level requests). */
  key: string;
  /** Status sent to the client; undefined when the connection was dropped before any status. */
  status: number | undefined;
  fault: InjectedFault | "denied" | "fail-first" | undefined;
  /** Response body bytes passed on to the client. */
  bodyBytes: number;
  /** The client closed the connection before the response was complete (e.g. its request timed out). */
  abandoned: boolean;
}

/** A fault-injecting HTTP proxy in front of an S3 API server. */
export interface FaultProxy {
  /** Use as S3_ENDPOINT. */
  endpoint: string;
  /** Every request so far, in arrival order. */
  readonly log: ProxiedRequest[];
  /** Changes the fault rate from now on (0 turns faults off). */
  setFaultRate(rate: number): void;
  stop(): Promise<void>;
}

/** mulberry32: a small seeded PRNG, so the same seed injects the same faults in the same order. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parsePath(url: string): { bucket: string; key: string } {
  const path = url.split("?")[0] ?? "";
  const [bucket = "", ...rest] = path.replace(/^\//, "").split("/");
  return { bucket: decodeURIComponent(bucket), key: rest.map((s) => decodeURIComponent(s)).join("/") };
}

function s3ErrorBody(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

const ERROR_CODES: Record<number, string> = {
  403: "AccessDenied",
  404: "NoSuchKey",
  500: "InternalError",
  503: "SlowDown",
};

/**
 * Starts an HTTP proxy on 127.0.0.1 that forwards every request, headers (Host included, so SigV4
 * signatures stay valid) and body, to `target`, and injects 500s, 503s, slow responses and
 * dropped connections (before forwarding, or after the status line mid-body) into a seeded
 * share of them. Every request is logged, so tests can count what a client really sent.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = seededRandom(options.seed ?? 1);
  const faults = options.faults ?? (["500", "503", "slow", "drop-before", "drop-after"] as const);
  let faultRate = options.faultRate ?? 0;
  const log: ProxiedRequest[] = [];
  /** Requests failed so far, by failFirst rule. */
  const failedFirst = new Map<FailFirstRule, number>();
  const sockets = new Set<Socket>();

  const respondError = (req: IncomingMessage, res: ServerResponse, status: number) => {
    const body = s3ErrorBody(ERROR_CODES[status] ?? "InternalError", "injected by the test proxy");
    // Read the request body first, so the client is not cut off mid-upload (that is `drop-before`).
    req.resume();
    req.on("end", () => {
      res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
    });
  };

  const forward = (req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, dropAfter: boolean) => {
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamRes) => {
        entry.status = upstreamRes.statusCode;
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        if (dropAfter) {
          // Status and headers are out; the body stops short: the client sees a reset mid-body.
          upstreamRes.once("data", (chunk: Buffer) => {
            const half = chunk.subarray(0, chunk.length >> 1);
            entry.bodyBytes += half.length;
            res.write(half, () => res.socket?.destroy());
            upstreamRes.destroy();
          });
          upstreamRes.once("end", () => res.socket?.destroy());
          return;
        }
        upstreamRes.on("data", (chunk: Buffer) => {
          entry.bodyBytes += chunk.length;
        });
        upstreamRes.pipe(res);
      },
    );
    upstream.on("error", () => res.socket?.destroy());
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    const { bucket, key } = parsePath(req.url ?? "/");
    const entry: ProxiedRequest = {
      method: req.method ?? "",
      bucket,
      key,
      status: undefined,
      fault: undefined,
      bodyBytes: 0,
      abandoned: false,
    };
    log.push(entry);
    res.once("close", () => {
      if (!res.writableFinished) entry.abandoned = true;
    });
    if (options.deny?.match(key)) {
      entry.fault = "denied";
      entry.status = options.deny.status;
      respondError(req, res, options.deny.status);
      return;
    }
    const rule = options.failFirst?.find((r) => r.match(entry.method, key));
    if (rule) {
      const { count, status } = rule;
      const failed = failedFirst.get(rule) ?? 0;
      if (failed < count) {
        failedFirst.set(rule, failed + 1);
        entry.fault = "fail-first";
        entry.status = status;
        respondError(req, res, status);
      } else forward(req, res, entry, false);
      return;
    }
    const exempt = options.exempt?.(key) ?? false;
    const fault =
      !exempt && faultRate > 0 && random() < faultRate
        ? faults[Math.floor(random() * faults.length)]
        : undefined;
    entry.fault = fault;
    switch (fault) {
      case "500":
      case "503":
        entry.status = Number(fault);
        respondError(req, res, Number(fault));
        return;
      case "drop-before":
        req.socket.destroy();
        return;
      case "slow":
        setTimeout(() => forward(req, res, entry, false), options.slowMs ?? 400);
        return;
      default:
        forward(req, res, entry, fault === "drop-after");
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    setFaultRate: (rate) => {
      faultRate = rate;
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return stopping;
    },
  };
}
