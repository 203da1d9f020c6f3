import { type ChildProcess, spawn } from "node:child_process";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { sleepUntil, within } from "./services.js";
import { COMMAND_TIMEOUT_MS, START_TIMEOUT_MS } from "./timeouts.js";

/** The built CLI entry point (tests run after `npm run build`). */
export const CLI_BIN = fileURLToPath(new URL("../../packages/cli/dist/bin.js", import.meta.url));

/** Output kept per stream: a debug-level worker writes a few MB in a long test. */
const MAX_KEPT_CHARS = 8 * 1024 * 1024;
/** What failure messages show of a process's output. */
const TAIL_CHARS = 20_000;

/** A `memscore` child process, with everything it printed kept for assertions and failure messages. */
export interface CliProcess {
  child: ChildProcess;
  /** `memscore ARGS`, for messages. */
  command: string;
  /** stdout and stderr as they arrived, interleaved. */
  output(): string;
  /** The end of {@link output}, short enough for a failure message. */
  tail(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True until the process has exited. */
  running(): boolean;
}

/** Starts `memscore ARGS` as a real child process with `env` over this process's environment. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  let stderr = "";
  const keep = (text: string, more: string) => (text + more).slice(-MAX_KEPT_CHARS);
  child.stdout?.on("data", (d: Buffer) => {
    stdout = keep(stdout, d.toString());
    output = keep(output, d.toString());
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr = keep(stderr, d.toString());
    output = keep(output, d.toString());
  });
  // 'close', not 'exit': by then every byte of output has arrived.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  child.once("error", (error) => {
    output = keep(output, `\n[spawn failed: ${error.message}]\n`);
  });
  return {
    child,
    command: `memscore ${args.join(" ")}`,
    output: () => output,
    tail: () => output.slice(-TAIL_CHARS),
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The process's stderr; ends with a note when it was killed for running past its time. */
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs `memscore ARGS` to completion. A process still running after `timeoutMs` is killed, and
 * its stderr says so: the caller's `expect(result.code, result.stderr)` then explains the failure
 * before the test's own time limit (which must be longer) is reached.
 */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<CliResult> {
  const run = startCli(args, env);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    run.child.kill("SIGKILL");
  }, timeoutMs);
  const { code, signal } = await run.exited;
  clearTimeout(timer);
  const note = timedOut ? `\n[runCli: ${run.command} was killed after ${timeoutMs} ms]\n` : "";
  return { code, signal, stdout: run.stdout(), stderr: run.stderr() + note, timedOut };
}

/** Starts `memscore worker ARGS`: JSON logs at info level (start-up, metrics port), metrics on a free port. */
export function startWorkerProcess(env: NodeJS.ProcessEnv, args: string[] = []): CliProcess {
  // Port 0: several workers per test (and tests in parallel) must not fight over the default port.
  return startCli(["worker", ...args], {
    MEMSCORE_LOG_LEVEL: "info",
    MEMSCORE_LOG_FORMAT: "json",
    MEMSCORE_METRICS_PORT: "0",
    ...env,
  });
}

/** The name a worker process gives BullMQ, which records it on each job it takes (`job.processedBy`). */
export function workerName(worker: CliProcess): string {
  return `${hostname()}:${worker.child.pid}`;
}

/** Starts `memscore producer ARGS` (the scheduled-scan service), logging as a worker does. */
export function startProducerProcess(env: NodeJS.ProcessEnv, args: string[] = []): CliProcess {
  return startCli(["producer", ...args], {
    MEMSCORE_LOG_LEVEL: "info",
    MEMSCORE_LOG_FORMAT: "json",
    MEMSCORE_METRICS_PORT: "0",
    ...env,
  });
}

/**
 * Waits for a process that should end by itself (or after a signal) to exit, and resolves with
 * how it ended. One still running after `timeoutMs` is killed, and the wait fails with its output.
 */
export async function exitOf(
  proc: CliProcess,
  timeoutMs = START_TIMEOUT_MS,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  try {
    return await within(`${proc.command} to exit`, timeoutMs, proc.exited);
  } catch (error) {
    proc.child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}; its output:\n${proc.tail()}`);
  }
}

/** Stops processes: SIGTERM, then SIGKILL for any still running after `timeoutMs`. */
export async function stopProcesses(processes: readonly CliProcess[], timeoutMs = 20_000): Promise<void> {
  await Promise.all(
    processes.map(async (p) => {
      if (!p.running()) return;
      p.child.kill("SIGTERM");
      const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
      await p.exited;
      clearTimeout(timer);
    }),
  );
}

/** Parses JSON-lines output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

/** The JSON log lines of a process whose message is `msg` (other lines are skipped). */
export function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((entry) => entry.msg === msg);
}

/**
 * Waits until a process has printed a line matching `pattern` and returns the match; fails early,
 * with its output, if the process exits first.
 */
export async function waitForOutput(
  proc: CliProcess,
  pattern: RegExp,
  timeoutMs = START_TIMEOUT_MS,
): Promise<RegExpExecArray> {
  let match: RegExpExecArray | null = null;
  await sleepUntil(
    () => {
      match = pattern.exec(proc.output());
      return match !== null;
    },
    {
      what: `${proc.command} to print ${pattern}`,
      timeoutMs,
      state: () => proc.tail(),
      stopIf: () => (proc.running() ? undefined : `${proc.command} exited`),
    },
  );
  return match as unknown as RegExpExecArray;
}

/**
 * The port a process serves /metrics on (it was started with port 0), from its log: a worker or
 * producer logs "metrics and health server listening", `enqueue --metrics-port` prints "serving
 * metrics on URL".
 */
export async function metricsPortOf(proc: CliProcess, timeoutMs = START_TIMEOUT_MS): Promise<number> {
  const match = await waitForOutput(
    proc,
    /"msg":"metrics and health server listening".*?"port":(\d+)|serving metrics on http:\/\/[^/]+:(\d+)\//,
    timeoutMs,
  );
  return Number(match[1] ?? match[2]);
}

/** Waits until a worker has loaded its model and connected ("worker started"). */
export async function workerStarted(worker: CliProcess, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  await waitForOutput(worker, /"msg":"worker started"/, timeoutMs);
}
