import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@memscore/cli";
import { sleepUntil } from "./services.js";

/** A Prometheus HTTP API answer (`/api/v1/query`, `/api/v1/targets`, `/api/v1/rules`). */
export interface PrometheusAnswer<T = { resultType: string; result: unknown[] }> {
  status: "success" | "error";
  data: T;
  errorType?: string;
  error?: string;
}

/** A private Prometheus server for one test file. */
export interface TestPrometheus {
  url: string;
  /** Evaluates an instant query now (GET /api/v1/query). */
  query(expr: string): Promise<PrometheusAnswer>;
  /** Scrape targets by job with their health ("up", "down", "unknown"). */
  targetHealth(): Promise<{ job: string; url: string; health: string; lastError: string }[]>;
  /** The loaded rules with their evaluation health. */
  rules(): Promise<{ name: string; health: string; lastError?: string }[]>;
  /** When each rule group was last evaluated (ms since the epoch; 0 before the first evaluation). */
  lastEvaluations(): Promise<number[]>;
  /** Alerts pending or firing now (GET /api/v1/alerts). */
  alerts(): Promise<ActiveAlert[]>;
  /** Replaces a job's targets; Prometheus picks the change up within a second or so. */
  setTargets(job: string, groups: TargetGroup[]): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/** Targets that share labels, as in Prometheus' file-based discovery. */
export interface TargetGroup {
  targets: string[];
  labels?: Record<string, string>;
}

/** An alert as Prometheus' API lists it. */
export interface ActiveAlert {
  labels: Record<string, string>;
  state: "pending" | "firing";
  activeAt: string;
  value: string;
}

export interface TestPrometheusOptions {
  /**
   * Scrape jobs: job name → `host:port` targets, or groups of them with labels. Targets come
   * from a file Prometheus watches, so `setTargets` can add or remove them, as pods come and go.
   */
  jobs: Record<string, string[] | TargetGroup[]>;
  /** Absolute paths of rule files to load. @defaultValue none */
  ruleFiles?: string[];
  /** @defaultValue "1s" */
  scrapeInterval?: string;
}

/**
 * Starts the `prometheus` binary (Debian's package; `.ci/run` installs it) on a free port with
 * a temporary config and TSDB, and waits until it is ready.
 */
export async function startPrometheus(options: TestPrometheusOptions): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), "memscore-prometheus-"));
  const port = await freePort();
  const interval = options.scrapeInterval ?? "1s";
  const targetsFile = (job: string) => join(dir, `targets-${encodeURIComponent(job)}.json`);
  const setTargets = async (job: string, groups: TargetGroup[]) => {
    // Written whole, then renamed: Prometheus never reads a half-written file.
    await writeFile(`${targetsFile(job)}.tmp`, JSON.stringify(groups));
    await rename(`${targetsFile(job)}.tmp`, targetsFile(job));
  };
  for (const [job, targets] of Object.entries(options.jobs)) {
    const groups = targets.map((t) => (typeof t === "string" ? { targets: [t] } : t));
    await setTargets(job, groups);
  }
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: Object.keys(options.jobs).map((job) => ({
      job_name: job,
      file_sd_configs: [{ files: [targetsFile(job)], refresh_interval: "1s" }],
    })),
  };
  // JSON is valid YAML: no YAML writer needed.
  await writeFile(join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${url}${path}`)).json()) as T;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    await sleepUntil(async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${output}`);
      return (await fetch(`${url}/-/ready`)).ok;
    }, 60_000);
  } catch (error) {
    await stop();
    throw new Error(`prometheus did not become ready: ${(error as Error).message}\n${output}`);
  }

  return {
    url,
    query: (expr) => get(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    targetHealth: async () => {
      const answer =
        await get<
          PrometheusAnswer<{
            activeTargets: {
              labels: { job: string };
              scrapeUrl: string;
              health: string;
              lastError: string;
            }[];
          }>
        >("/api/v1/targets");
      return answer.data.activeTargets.map((t) => ({
        job: t.labels.job,
        url: t.scrapeUrl,
        health: t.health,
        lastError: t.lastError,
      }));
    },
    rules: async () => {
      const answer =
        await get<
          PrometheusAnswer<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>
        >("/api/v1/rules");
      return answer.data.groups.flatMap((g) => g.rules);
    },
    lastEvaluations: async () => {
      const answer = await get<PrometheusAnswer<{ groups: { lastEvaluation: string }[] }>>("/api/v1/rules");
      return answer.data.groups.map((g) => Math.max(0, Date.parse(g.lastEvaluation)));
    },
    alerts: async () =>
      (await get<PrometheusAnswer<{ alerts: ActiveAlert[] }>>("/api/v1/alerts")).data.alerts,
    setTargets,
    output: () => output,
    stop,
  };
}

/** Runs `promtool check metrics` on exposition text; resolves with its exit code and output. */
export function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** Runs `promtool ARGS` (e.g. `check rules FILE`). */
export function promtool(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}
