import { readFile } from "node:fs/promises";

/** Resident memory of a process in bytes (VmRSS from /proc), or undefined once it has exited. */
export async function residentBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Samples the resident memory of some processes until stopped; `stop()` resolves with the peak per pid. */
export function sampleResidentMemory(
  pids: readonly number[],
  intervalMs = 100,
): { stop(): Promise<Map<number, number>> } {
  const peaks = new Map<number, number>(pids.map((pid) => [pid, 0]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const pid of pids) {
        const bytes = await residentBytes(pid);
        if (bytes !== undefined) peaks.set(pid, Math.max(peaks.get(pid) ?? 0, bytes));
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return peaks;
    },
  };
}
