import { Counter } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMetricsRegistry,
  type OpsServer,
  type ReadinessCondition,
  startOpsServer,
} from "../src/index.js";

describe("ops server (/metrics, /healthz, /readyz)", () => {
  const servers: OpsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it("serves metrics in the Prometheus text format, liveness, and readiness that follows its check", async () => {
    const registry = createMetricsRegistry();
    const counter = new Counter({ name: "memscore_test_events_total", help: "test", registers: [registry] });
    counter.inc(3);
    let model: ReadinessCondition = "loading model";
    const server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      registry,
      readiness: async () => ({ model, redis: true }),
    });
    servers.push(server);
    expect(server.port).toBeGreaterThan(0);

    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    const text = await metrics.text();
    expect(text).toContain("memscore_test_events_total 3");
    expect(text).toContain("process_cpu_seconds_total");

    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    const loading = await fetch(`${server.url}/readyz`);
    expect(loading.status).toBe(503);
    expect(await loading.json()).toEqual({
      ready: false,
      notReady: ["model"],
      checks: { model: "loading model", redis: true },
    });

    model = true;
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true });

    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("answers 503 when the readiness check throws or hangs, and stays alive", async () => {
    let mode: "throw" | "hang" = "throw";
    const server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      registry: createMetricsRegistry({ processMetrics: false }),
      readinessTimeoutMs: 200,
      readiness: () => (mode === "throw" ? Promise.reject(new Error("boom")) : new Promise(() => {})),
    });
    servers.push(server);
    const thrown = await fetch(`${server.url}/readyz`);
    expect(thrown.status).toBe(503);
    expect(await thrown.json()).toMatchObject({ notReady: ["readiness"], checks: { readiness: "boom" } });
    mode = "hang";
    const hung = await fetch(`${server.url}/readyz`);
    expect(hung.status).toBe(503);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("refuses a port that is already bound, naming the problem", async () => {
    const first = await startOpsServer({ host: "127.0.0.1", port: 0, registry: createMetricsRegistry() });
    servers.push(first);
    await expect(
      startOpsServer({ host: "127.0.0.1", port: first.port, registry: createMetricsRegistry() }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
