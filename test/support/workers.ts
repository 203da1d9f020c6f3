import { type ChildProcess, spawn } from "node:child_process";
import { CLI_BIN } from "./cli.js";

/** A `memscore worker` child process, with its output kept for failure messages. */
export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `memscore worker ARGS` as a real process. */
export function startWorkerProcess(env: NodeJS.ProcessEnv, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, [CLI_BIN, "worker", ...args], {
    // Port 0: several workers per test (and tests in parallel) must not fight over the default port.
    env: { ...process.env, MEMSCORE_LOG_LEVEL: "warn", MEMSCORE_METRICS_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** Stops workers: SIGTERM, then SIGKILL if they have not exited within `timeoutMs`. */
export async function stopWorkers(workers: WorkerProcess[], timeoutMs = 20_000): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) return;
      w.child.kill("SIGTERM");
      const timer = setTimeout(() => w.child.kill("SIGKILL"), timeoutMs);
      await w.exited;
      clearTimeout(timer);
    }),
  );
}
