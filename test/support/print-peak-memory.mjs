// Preloaded with `node --import`: prints the process's peak resident memory (VmHWM, from /proc)
// on stderr as it exits, so a test can read the true peak of a real process, not a sample.
import { readFileSync } from "node:fs";

process.on("exit", () => {
  const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  process.stderr.write(`\npeak-memory VmHWM_kB=${kb}\n`);
});
