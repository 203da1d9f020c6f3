import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleepUntil } from "./services.js";
import { START_TIMEOUT_MS } from "./timeouts.js";

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
  /**
   * Sets the `host:port` targets of a scrape job (file-based discovery: Prometheus picks the
   * change up within a second), so processes can bind port 0 and be scraped once they say where.
   */
  setTargets(job: string, targets: readonly (string | TargetGroup)[]): Promise<void>;
  /** When each rule group was last evaluated (ms since the epoch; 0 before the first evaluation). */
  lastEvaluations(): Promise<number[]>;
  /** Alerts pending or firing now (GET /api/v1/alerts). */
  alerts(): Promise<ActiveAlert[]>;
  /** Scrape targets by job with their health ("up", "down", "unknown"). */
  targetHealth(): Promise<{ job: string; url: string; health: string; lastError: string }[]>;
  /** The loaded rules with their evaluation health. */
  rules(): Promise<{ name: string; health: string; lastError?: string }[]>;
  output(): string;
  stop(): Promise<void>;
}

export interface TestPrometheusOptions {
  /**
   * Scrape jobs: names (no targets until {@link TestPrometheus.setTargets}), or job name →
   * `host:port` targets or groups of them with labels. Targets come from a file Prometheus
   * watches, so `setTargets` can add or remove them, as pods come and go.
   */
  jobs: readonly string[] | Record<string, readonly (string | TargetGroup)[]>;
  /** Absolute paths of rule files to load. @defaultValue none */
  ruleFiles?: string[];
  /** @defaultValue "1s" */
  scrapeInterval?: string;
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

/** Says how to get Prometheus when its binary is missing, instead of an unhandled spawn ENOENT. */
const MISSING_BINARY =
  "the `prometheus` binary was not found on PATH: install it (Debian/Ubuntu: `apt-get install prometheus`; " +
  "`.ci/run` installs it) to run the observability tests";

/**
 * Starts the `prometheus` binary (Debian's package; `.ci/run` installs it) with a temporary config
 * and TSDB on a port it binds itself (port 0; the port is read from its log), and waits until it
 * is ready.
 */
export async function startPrometheus(options: TestPrometheusOptions): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), "memscore-prometheus-"));
  const interval = options.scrapeInterval ?? "1s";
  const targetsFile = (job: string) => join(dir, `targets-${encodeURIComponent(job)}.json`);
  const setTargets = async (job: string, targets: readonly (string | TargetGroup)[]) => {
    const groups = targets.map((t) => (typeof t === "string" ? { targets: [t] } : t));
    // Written aside and renamed: Prometheus never reads a half-written file.
    await writeFile(`${targetsFile(job)}.tmp`, JSON.stringify(groups));
    await rename(`${targetsFile(job)}.tmp`, targetsFile(job));
  };
  const jobs: Record<string, readonly (string | TargetGroup)[]> = Array.isArray(options.jobs)
    ? Object.fromEntries((options.jobs as readonly string[]).map((job) => [job, []]))
    : (options.jobs as Record<string, readonly (string | TargetGroup)[]>);
  for (const [job, targets] of Object.entries(jobs)) await setTargets(job, targets);
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: Object.keys(jobs).map((job) => ({
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
      "--web.listen-address=127.0.0.1:0",
      // Info level: the "Listening on" line is the only place the port shows.
      "--log.level=info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  let spawnError: Error | undefined;
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("error", (error) => {
    spawnError = error;
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let url = "";
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${url}${path}`)).json()) as T;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && spawnError === undefined) {
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
    await sleepUntil(
      async () => {
        if (url === "") {
          const port = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(output)?.[1];
          if (port === undefined) return false;
          url = `http://127.0.0.1:${port}`;
        }
        return (await fetch(`${url}/-/ready`)).ok;
      },
      {
        what: "prometheus to listen and be ready",
        timeoutMs: START_TIMEOUT_MS,
        state: () => output,
        stopIf: () =>
          spawnError !== undefined
            ? (spawnError as NodeJS.ErrnoException).code === "ENOENT"
              ? MISSING_BINARY
              : `prometheus could not be started: ${spawnError.message}`
            : child.exitCode !== null
              ? `prometheus exited with code ${child.exitCode}`
              : undefined,
      },
    );
  } catch (error) {
    await stop();
    throw spawnError && (spawnError as NodeJS.ErrnoException).code === "ENOENT"
      ? new Error(MISSING_BINARY)
      : error;
  }

  return {
    url,
    query: (expr) => get(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    setTargets,
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
    output: () => output,
    stop,
  };
}

/** Runs `promtool ARGS` with `stdin`; resolves with its exit code and output. */
function runPromtool(args: string[], stdin?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", args, { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT" ? new Error(MISSING_BINARY.replace("`prometheus`", "`promtool`")) : error,
      ),
    );
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(stdin);
  });
}

/** Runs `promtool check metrics` on exposition text; resolves with its exit code and output. */
export function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return runPromtool(["check", "metrics"], text);
}

/** Runs `promtool ARGS` (e.g. `check rules FILE`). */
export function promtool(args: string[]): Promise<{ code: number | null; output: string }> {
  return runPromtool(args);
}
