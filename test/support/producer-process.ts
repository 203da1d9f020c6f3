import { spawn } from "node:child_process";
import { CLI_BIN } from "./cli.js";
import type { WorkerProcess } from "./workers.js";

/**
 * Starts `memscore producer ARGS` (the scheduled-scan service) as a real process, logging JSON
 * at info level so tests can read which scans it ran. Stop it with stopWorkers().
 */
export function startProducerProcess(env: NodeJS.ProcessEnv, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, [CLI_BIN, "producer", ...args], {
    // Port 0: several producers per test must not fight over the default metrics port.
    env: {
      ...process.env,
      MEMSCORE_LOG_LEVEL: "info",
      MEMSCORE_LOG_FORMAT: "json",
      MEMSCORE_METRICS_PORT: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** The JSON log lines of a process whose message is `msg`. */
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
