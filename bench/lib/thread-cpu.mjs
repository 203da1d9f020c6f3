// CPU time of this process's threads, from /proc (Linux), grouped by what runs on them, so a
// benchmark can say where the CPU went and not only how much was used.
//
// Node 20 does not name its threads, so they are told apart by what they do: pipeline threads
// report their own ids (/proc/thread-self); libuv's pool (where sharp pipelines, zlib and file
// reads run) is found by giving it known work (pbkdf2) and seeing which threads ran it; the other
// threads that appear while the worker starts are the inference thread and ONNX Runtime's pool;
// libvips names its threads "libvips worker"; the main thread's id is the process id; the rest
// are V8's background threads (garbage collection, JIT compilation) and Node's idle helpers.
import { execFileSync } from "node:child_process";
import { pbkdf2 } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { promisify } from "node:util";

let ticksPerSecond;

/** Command name and CPU ms (user + system) from a /proc …/stat file's text. */
function parseStat(stat) {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
  const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  // Fields after the parenthesised name: utime is field 14, stime 15 (1-based, in ticks).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { name, ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond };
}

/** CPU ms (user + system) a process has used so far; null off Linux or once it has gone. */
export function processCpuMs(pid) {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, "utf8")).ms;
  } catch {
    return null;
  }
}

/**
 * Minor page faults of a process so far (/proc/PID/stat field 10): pages it touched for the first
 * time since they were mapped. Each costs a trap, and on some VMs a trip to the host; a worker
 * that keeps faulting in the same memory is freeing and re-mapping it. Null off Linux.
 */
export function processMinorFaults(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
  } catch {
    return null;
  }
}

/**
 * CPU ms, summed over all cores, that the hypervisor ran other guests while this machine wanted
 * to run (/proc/stat's "steal"): on a shared VM, time that no process here got. Null off Linux.
 */
export function stolenCpuMs() {
  try {
    ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
    // First line: "cpu user nice system idle iowait irq softirq steal ..." (ticks, all cores).
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/);
    return (Number(fields[8] ?? 0) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** CPU ms (user + system) and command name of every thread of `pid`; empty off Linux. */
export function threadTimes(pid = process.pid) {
  const times = new Map();
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return times;
  }
  for (const tid of tids) {
    try {
      times.set(Number(tid), parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")));
    } catch {
      // The thread ended between listing and reading.
    }
  }
  return times;
}

/** Ids of libuv's pool threads: those that run a burst of pbkdf2 work (twice the pool size). */
export async function libuvPoolThreads() {
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const before = threadTimes();
  await Promise.all(
    Array.from({ length: 2 * size }, () => promisify(pbkdf2)("memscore", "bench", 100_000, 32, "sha256")),
  );
  const after = threadTimes();
  const gains = [...after].map(([tid, { ms }]) => [tid, ms - (before.get(tid)?.ms ?? 0)]);
  const most = Math.max(...gains.map(([, ms]) => ms));
  return new Set(gains.filter(([tid, ms]) => tid !== process.pid && ms >= most / 4).map(([tid]) => tid));
}

export const THREAD_GROUPS = {
  inference: "inference thread + ONNX Runtime pool",
  pipeline: "pipeline threads (S3 SDK, JPEG codec, overlay, messages)",
  main: "main JavaScript thread",
  libuv: "libuv pool (sharp pipelines, zlib, file reads)",
  libvips: "libvips workers",
  v8: "V8 background (garbage collection, JIT)",
};

/**
 * A thread's role. `known.pipeline`: the pipeline threads' ids (they report them);
 * `known.libuv`: from {@link libuvPoolThreads}; `known.model`: ids that appeared while the
 * worker started ({@link newThreads} around the start) and are none of the others: the
 * inference thread and ONNX Runtime's pool.
 */
function groupOf(tid, name, known, mainPid) {
  if (tid === mainPid) return "main";
  if (name.startsWith("libvips")) return "libvips";
  if (known.pipeline?.has(tid)) return "pipeline";
  if (known.libuv.has(tid)) return "libuv";
  if (known.model.has(tid)) return "inference";
  return "v8";
}

/** Ids of threads in `after` that were not in `before` (two {@link threadTimes} snapshots). */
export function newThreads(before, after) {
  return new Set([...after.keys()].filter((tid) => !before.has(tid)));
}

/**
 * CPU ms per group used between two snapshots of process `mainPid`'s threads, divided by `per`
 * (e.g. images).
 */
export function cpuByGroup(before, after, known, per = 1, mainPid = process.pid) {
  const groups = Object.fromEntries(Object.keys(THREAD_GROUPS).map((g) => [g, 0]));
  for (const [tid, { name, ms }] of after) {
    const used = ms - (before.get(tid)?.ms ?? 0);
    groups[groupOf(tid, name, known, mainPid)] += used / per;
  }
  return groups;
}
