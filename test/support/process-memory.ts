import { readFile } from "node:fs/promises";

/**
 * The peak resident memory of a live process in bytes: VmHWM from /proc/PID/status, which the
 * kernel keeps up to date on every page fault, so no peak between two readings is ever missed
 * (unlike sampling VmRSS).
 */
export async function peakResidentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(kb) * 1024;
}
