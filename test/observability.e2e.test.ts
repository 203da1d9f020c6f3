import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { startLocalRedis } from "@memscore/cli";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { makeArchive } from "./support/archive.js";
import {
  type CliProcess,
  exitOf,
  metricsPortOf,
  runCli,
  startCli,
  startWorkerProcess,
  stopProcesses,
} from "./support/cli.js";
import {
  promtool,
  promtoolCheckMetrics,
  startPrometheus,
  type TestPrometheus,
} from "./support/prometheus.js";
import { putObjects, testS3Client } from "./support/s3.js";
import { sleepUntil, startTestServices, type TestServices, uniqueName } from "./support/services.js";
import { budget, COMMAND_TIMEOUT_MS, RUN_TIMEOUT_MS, START_TIMEOUT_MS } from "./support/timeouts.js";

const DASHBOARD = fileURLToPath(new URL("../infra/grafana/memscore-dashboard.json", import.meta.url));
const ALERTS = fileURLToPath(new URL("../infra/prometheus/alerts.yml", import.meta.url));
const IMAGES = 40;
const BROKEN = 4; // makeArchive puts four unreadable objects first

interface PanelQuery {
  panel: string;
  expr: string;
}

async function dashboardQueries(queue: string): Promise<PanelQuery[]> {
  const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  // Grafana fills these in; a window covering the whole (short) run keeps every rate non-empty.
  return dashboard.panels.flatMap((p) =>
    p.targets.map((t) => ({
      panel: p.title,
      expr: t.expr.replaceAll("$__rate_interval", "1m").replaceAll("$queue", queue),
    })),
  );
}

async function alertExpressions(): Promise<{ alert: string; expr: string }[]> {
  const rules = parseYaml(await readFile(ALERTS, "utf8")) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ alert: r.alert, expr: r.expr })));
}

/** How long after the run the last counters and rate() windows may take to reach Prometheus. */
const SCRAPE_WAIT_MS = 60_000;

describe("observability (real Prometheus scraping a worker and a producer during a run)", () => {
  let services: TestServices;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let prometheus: TestPrometheus;
  const workers: CliProcess[] = [];
  const queue = uniqueName("q");
  const input = uniqueName("in");
  const output = uniqueName("out");

  beforeAll(async () => {
    services = await startTestServices();
    env = { ...services.env, MEMSCORE_QUEUE: queue, MEMSCORE_INTRA_OP_THREADS: "1" };
    s3 = testS3Client(env);
    await s3.send(new CreateBucketCommand({ Bucket: input }));
    await s3.send(new CreateBucketCommand({ Bucket: output }));
    const archive = await makeArchive("photos/", IMAGES);
    await putObjects(s3, input, new Map(archive.map((e) => [e.key, e.body])));
    // Targets are added once the processes have bound their ports (port 0) and said which,
    // with the labels the PodMonitor and scrape-config.example.yml give (job="memscore",
    // component, namespace), which the dashboard and alerts match on.
    prometheus = await startPrometheus({
      jobs: ["memscore"],
      ruleFiles: [ALERTS],
    });
  });

  afterAll(async () => {
    await stopProcesses(workers);
    await prometheus?.stop();
    s3?.destroy();
    await services?.stop();
  });

  it(
    "answers every dashboard query with data and every alert expression without error",
    async () => {
      const panels = await dashboardQueries(queue);
      const alerts = await alertExpressions();
      expect(panels.length).toBeGreaterThan(10);
      expect(alerts.length).toBeGreaterThan(4);

      // Enqueue first with no worker running: the backlog and the run's progress are then
      // visible to Prometheus before any image is scored.
      const enqueue = startCli(
        [
          "enqueue",
          `s3://${input}/photos/`,
          "--out",
          `s3://${output}/scores/`,
          "--run-id",
          "obs-run",
          "--chunk-size",
          "4",
          "--wait",
          "--json",
          "--metrics-port",
          "0",
        ],
        env,
      );
      workers.push(enqueue); // stopped with the workers if the test fails half-way
      const producerPort = await metricsPortOf(enqueue);
      const producerTarget = {
        targets: [`127.0.0.1:${producerPort}`],
        labels: { component: "enqueue", namespace: "memscore" },
      };
      await prometheus.setTargets("memscore", [producerTarget]);
      const withData = new Set<string>();
      const poll = async () => {
        await Promise.all(
          panels.map(async ({ expr }) => {
            const answer = await prometheus.query(expr);
            if (answer.status === "success" && answer.data.result.length > 0) withData.add(expr);
          }),
        );
      };
      await sleepUntil(
        async () => {
          const answer = await prometheus.query(`max(memscore_run_images_enqueued{run_id="obs-run"})`);
          return answer.status === "success" && answer.data.result.length > 0;
        },
        {
          what: "Prometheus to scrape the producer's run progress",
          timeoutMs: START_TIMEOUT_MS,
          state: async () => ({ targets: await prometheus.targetHealth(), producer: enqueue.tail() }),
        },
      );
      await poll();

      const producerMetrics = await (await fetch(`http://127.0.0.1:${producerPort}/metrics`)).text();
      expect(producerMetrics).toContain(
        `memscore_run_images_enqueued{queue="${queue}",run_id="obs-run"} ${IMAGES}`,
      );
      const producerLint = await promtoolCheckMetrics(producerMetrics);
      expect(producerLint, producerLint.output).toEqual({ code: 0, output: "" });

      const worker = startWorkerProcess(env, ["--concurrency", "2", "--batch-size", "4"]);
      workers.push(worker);
      const workerPort = await metricsPortOf(worker);
      await prometheus.setTargets("memscore", [
        producerTarget,
        { targets: [`127.0.0.1:${workerPort}`], labels: { component: "worker", namespace: "memscore" } },
      ]);
      // Sample the dashboard every second while the run goes on (per-run series vanish when it ends).
      await sleepUntil(
        async () => {
          await poll();
          return !enqueue.running();
        },
        {
          what: "the run to complete (enqueue --wait to exit)",
          timeoutMs: RUN_TIMEOUT_MS,
          intervalMs: 1_000,
          state: () => `${enqueue.tail()}\n${worker.tail()}`,
        },
      );
      const exit = await exitOf(enqueue);
      expect(exit.code, `${enqueue.stderr()}\n${worker.tail()}`).toBe(0);
      const summary = JSON.parse(enqueue.stdout()) as {
        final: { imagesScored: number; imagesFailed: number };
      };
      expect(summary.final).toMatchObject({ imagesScored: IMAGES - BROKEN, imagesFailed: BROKEN });

      // What an operator reads off Prometheus once the worker's last counters are scraped.
      const value = async (expr: string, labels: Record<string, string> = {}) => {
        const answer = await prometheus.query(expr);
        const row = (
          answer.data.result as { metric: Record<string, string>; value: [number, string] }[]
        ).find((r) => Object.entries(labels).every(([k, v]) => r.metric[k] === v));
        return row ? Number(row.value[1]) : undefined;
      };
      // The final counts, each as an operator would query it. They reach Prometheus with the
      // scrapes after the run (a chunk is counted completed a moment after its last image), so
      // wait until a scrape holds them all, then check each for a precise failure message.
      const finalCounts: [expr: string, labels: Record<string, string>, expected: number][] = [
        ["sum(memscore_images_processed_total)", {}, IMAGES],
        ["sum by (outcome) (memscore_images_processed_total)", { outcome: "scored" }, IMAGES - BROKEN],
        ["sum by (outcome) (memscore_images_processed_total)", { outcome: "error" }, BROKEN],
        ["sum(memscore_image_errors_total)", {}, BROKEN],
        [`sum(memscore_chunk_jobs_total{outcome="completed"})`, {}, IMAGES / 4],
        [`sum(memscore_stage_duration_seconds_count{stage="infer"})`, {}, IMAGES - BROKEN],
        ["sum(memscore_inference_batch_size_sum)", {}, IMAGES - BROKEN],
      ];
      const reached = async () => {
        for (const [expr, labels, expected] of finalCounts) {
          if ((await value(expr, labels)) !== expected) return false;
        }
        return true;
      };
      // The expectations below say which count is off.
      await sleepUntil(reached, {
        what: "the final counts",
        timeoutMs: SCRAPE_WAIT_MS,
        intervalMs: 250,
      }).catch(() => {});
      for (const [expr, labels, expected] of finalCounts) {
        expect(await value(expr, labels), `${expr} ${JSON.stringify(labels)}`).toBe(expected);
      }
      expect(await value("sum(memscore_engine_busy_seconds_total)")).toBeGreaterThan(0);
      expect(await value("sum(memscore_worker_ready)")).toBe(1);
      // The producer has exited by now: its last samples are in the range, not at the instant.
      expect(await value("sum(max_over_time(memscore_producer_images_enqueued_total[10m]))")).toBe(IMAGES);
      expect(await value("max by (name) (memscore_model_info)", { name: "resmemnet-tiny" })).toBe(1);

      // A rate() needs two samples of a series in its window: a counter that last moved near the
      // end of the run (errors come from a few images) may need a few more scrapes, more so on a
      // loaded machine where a scrape can time out. Keep sampling for a while before judging.
      await sleepUntil(
        async () => {
          await poll();
          return panels.every((p) => withData.has(p.expr));
        },
        { what: "data in every panel", timeoutMs: SCRAPE_WAIT_MS, intervalMs: 1_000 },
      ).catch(() => {}); // the assertion below says which panels stayed empty
      const empty = panels.filter((p) => !withData.has(p.expr));
      expect(empty, `panel queries that never returned data:\n${JSON.stringify(empty, null, 2)}`).toEqual([]);

      for (const { alert, expr } of alerts) {
        const answer = await prometheus.query(expr);
        expect(answer.status, `${alert}: ${answer.error}`).toBe("success");
      }
      // Prometheus loaded the same file and evaluates every rule without error.
      const rules = await prometheus.rules();
      expect(rules.map((r) => r.name).sort()).toEqual(alerts.map((a) => a.alert).sort());
      await sleepUntil(async () => (await prometheus.rules()).every((r) => r.health === "ok"), {
        what: "every rule evaluated without error",
        timeoutMs: SCRAPE_WAIT_MS,
        state: () => prometheus.rules(),
      });

      const workerMetrics = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
      const workerLint = await promtoolCheckMetrics(workerMetrics);
      expect(workerLint, workerLint.output).toEqual({ code: 0, output: "" });
      // No per-image labels: nothing in the exposition names an input key.
      expect(workerMetrics).not.toContain("photos/");

      const rulesCheck = await promtool(["check", "rules", ALERTS]);
      expect(rulesCheck.code, rulesCheck.output).toBe(0);
      // The alerts fire when they should (stalled run, failure ratio, workers down): promtool's unit tests.
      const rulesTest = await promtool(["test", "rules", ALERTS.replace(/\.yml$/, ".test.yml")]);
      expect(rulesTest.code, rulesTest.output).toBe(0);
    },
    budget(START_TIMEOUT_MS, RUN_TIMEOUT_MS, 3 * SCRAPE_WAIT_MS),
  );

  it(
    "shows the queue, the worker and the run in `memscore status --json`",
    async () => {
      const status = await runCli(["status", "--run", "obs-run", "--json"], env);
      expect(status.code, status.stderr).toBe(0);
      const report = JSON.parse(status.stdout) as {
        queue: string;
        workers: { count: number };
        jobs: Record<string, number>;
        runs: { runId: string; done: number; total: number; failed: number; failuresByReason: object }[];
      };
      expect(report.queue).toBe(queue);
      expect(report.workers.count).toBe(1);
      expect(report.jobs.waiting).toBe(0);
      expect(report.runs).toHaveLength(1);
      expect(report.runs[0]).toMatchObject({ runId: "obs-run", done: IMAGES, total: IMAGES, failed: BROKEN });
      expect(report.runs[0]?.failuresByReason).toEqual({
        not_image: 2,
        decode_failed: 1,
        unsupported_format: 1,
      });

      const text = await runCli(["status", "--run", "obs-run"], env);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain(`queue ${queue}`);
      expect(text.stdout).toMatch(new RegExp(`obs-run .*100\\.0%  ${IMAGES}/${IMAGES} images  finished`));
      expect(text.stdout).toContain("failed 4 (not_image 2, decode_failed 1, unsupported_format 1)");

      const unknown = await runCli(["status", "--run", "no-such-run"], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no run "no-such-run"');
    },
    budget(3 * COMMAND_TIMEOUT_MS),
  );

  it(
    "reports a worker not ready while its Redis does not answer, and ready again once it does",
    async () => {
      const redis = await startLocalRedis();
      const worker = startWorkerProcess({ ...env, REDIS_URL: redis.url, MEMSCORE_QUEUE: uniqueName("q") }, [
        "--concurrency",
        "1",
      ]);
      workers.push(worker);
      const redisPid = redis.pid() as number;
      try {
        const port = await metricsPortOf(worker);
        const readyz = async () => {
          const response = await fetch(`http://127.0.0.1:${port}/readyz`);
          return { status: response.status, body: (await response.json()) as { notReady?: string[] } };
        };
        const waitForReadyz = (status: number) =>
          sleepUntil(async () => (await readyz()).status === status, {
            what: `/readyz to answer ${status}`,
            timeoutMs: START_TIMEOUT_MS,
            state: async () => ({ readyz: await readyz(), worker: worker.tail() }),
          });
        await waitForReadyz(200);

        // Redis stops answering (SIGSTOP: the server hangs, its port stays bound and no other
        // process can take it), as a Redis does that is overloaded or cut off by the network.
        process.kill(redisPid, "SIGSTOP");
        try {
          await waitForReadyz(503);
          expect((await readyz()).body.notReady).toEqual(["redis"]);
          expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
          // Scrapes still answer, saying Redis is down, instead of hanging.
          const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          expect(metrics).toMatch(/memscore_redis_up\{queue="[^"]+"\} 0/);
        } finally {
          process.kill(redisPid, "SIGCONT");
        }
        await waitForReadyz(200);
      } finally {
        await stopProcesses([worker]);
        await redis.stop();
      }
    },
    budget(4 * START_TIMEOUT_MS),
  );
});
