import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { describeError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { ReadinessCheck, ReadinessCondition, ReadinessReport } from "./readiness.js";

export interface OpsServerOptions {
  /** Bind address; `0.0.0.0` in containers. */
  host: string;
  /** TCP port; 0 picks a free one (read it from {@link OpsServer.port}). */
  port: number;
  registry: Registry;
  /** Conditions `/readyz` reports; the process is ready when every one is `true`. @defaultValue always ready */
  readiness?: ReadinessCheck;
  /**
   * Whether the process is alive and working: `true`, or why not (a wedged inference engine, a
   * model load that never ends). `/healthz` answers 503 with the reason, so an orchestrator
   * restarts the process. @defaultValue always alive
   */
  liveness?: () => ReadinessCondition;
  /** A readiness check slower than this answers 503. @defaultValue 2000 */
  readinessTimeoutMs?: number;
  logger?: Logger;
}

/** A running metrics/health server. */
export interface OpsServer {
  host: string;
  port: number;
  /** `http://host:port` */
  url: string;
  /** Stops accepting connections and closes idle ones; idempotent. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(head ? undefined : body);
}

const sendJson = (res: ServerResponse, status: number, body: unknown, head: boolean) =>
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(body)}\n`, head);

async function readiness(check: ReadinessCheck | undefined, timeoutMs: number): Promise<ReadinessReport> {
  if (!check) return {};
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ReadinessReport>((resolve) => {
    timer = setTimeout(() => resolve({ readiness: `check took longer than ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([check(), timeout]);
  } catch (error) {
    return { readiness: describeError(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts the HTTP server every long-running memscore process exposes:
 * `/metrics` (Prometheus text format), `/healthz` (200 while the process is alive and working,
 * else 503 with the reason) and
 * `/readyz` (200 when every readiness condition holds, else 503 with a JSON body naming the
 * conditions that do not). Rejects if the address cannot be bound (e.g. the port is in use).
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const timeoutMs = options.readinessTimeoutMs ?? 2_000;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, { error: `method ${req.method} not allowed` }, false);
      return;
    }
    switch (path) {
      case "/metrics": {
        const body = await options.registry.metrics();
        send(res, 200, options.registry.contentType, body, head);
        return;
      }
      case "/healthz": {
        const alive = options.liveness?.() ?? true;
        if (alive === true) sendJson(res, 200, { status: "alive" }, head);
        else sendJson(res, 503, { status: "unhealthy", reason: alive }, head);
        return;
      }
      case "/readyz": {
        const checks = await readiness(options.readiness, timeoutMs);
        const notReady = Object.entries(checks)
          .filter(([, condition]) => condition !== true)
          .map(([name]) => name);
        if (notReady.length === 0) sendJson(res, 200, { ready: true, checks }, head);
        else sendJson(res, 503, { ready: false, notReady, checks }, head);
        return;
      }
      default:
        sendJson(res, 404, { error: "not found; try /metrics, /healthz or /readyz" }, head);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.logger?.warn("ops server request failed", { path: req.url, error: describeError(error) });
      if (!res.headersSent) sendJson(res, 500, { error: describeError(error) }, false);
      else res.destroy();
    });
  });
  // Scrapers keep connections alive between scrapes; a stopping process must not wait for them.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url: `http://${hostForUrl}:${address.port}`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scrape cut short is retried by the scraper; a stopping process must not wait on it.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
