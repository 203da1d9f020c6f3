import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, posix, relative } from "node:path";

/**
 * How many cores this process may use: the CPU count, lowered by a cgroup CPU quota (a
 * container's CPU limit: cgroup v2 `cpu.max`, cgroup v1 `cpu.cfs_quota_us` ÷ `cpu.cfs_period_us`).
 * Node 20's `availableParallelism()` sees the node's cores, not the pod's limit, so thread pools
 * sized from it alone oversubscribe a limited pod and get throttled.
 */
export interface CpuBudget {
  /** Whole cores to size thread pools by: ⌊limit⌋ (at least 1) when a quota applies, else the CPU count. */
  cores: number;
  /** The CPU count the OS reports (`availableParallelism()`). */
  cpuCount: number;
  /** The tightest quota found, in cores (e.g. 3.5), or undefined when none applies. */
  limit: number | undefined;
  /** Where the limit comes from, e.g. "cgroup v2 cpu.max /sys/fs/cgroup/cpu.max". */
  source: string;
}

export interface CpuBudgetOptions {
  /** Prefix of every path read (`/proc/self/...`, the cgroup mounts); for tests. @defaultValue "/" */
  root?: string;
  /** @defaultValue availableParallelism() */
  cpuCount?: number;
}

interface CgroupMount {
  version: 1 | 2;
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup or /sys/fs/cgroup/cpu,cpuacct. */
  mountPoint: string;
  /** The cgroup path at the mount's root (not "/" when the mount is itself a sub-cgroup). */
  mountRoot: string;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

/** cgroup v2 and v1-with-cpu mounts from /proc/self/mountinfo (fields after " - ": type, source, options). */
function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fields = left.split(" ");
    const [fsType, , superOptions = ""] = right.split(" ");
    const mountRoot = fields[3];
    const mountPoint = fields[4];
    if (!mountRoot || !mountPoint) continue;
    if (fsType === "cgroup2") mounts.push({ version: 2, mountPoint, mountRoot });
    else if (fsType === "cgroup" && superOptions.split(",").includes("cpu"))
      mounts.push({ version: 1, mountPoint, mountRoot });
  }
  return mounts;
}

/** The process's cgroup path per hierarchy: "" for v2 ("0::/path"), else each v1 controller. */
function cgroupPaths(procCgroup: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of procCgroup.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, controllers = "", path = "/"] = match;
    if (controllers === "") paths.set("", path);
    for (const c of controllers.split(",")) if (c) paths.set(c, path);
  }
  return paths;
}

/** The directories from the process's own cgroup up to the mount's root, innermost first. */
function cgroupDirs(root: string, mount: CgroupMount, cgroupPath: string | undefined): string[] {
  // Inside a cgroup namespace the path is relative to the mount already ("/"); without one it
  // starts with the mount's root, which the mount point stands for.
  let relative = cgroupPath ?? "/";
  if (mount.mountRoot !== "/" && relative.startsWith(mount.mountRoot))
    relative = relative.slice(mount.mountRoot.length) || "/";
  const dirs: string[] = [];
  for (let dir = posix.normalize(`/${relative}`); ; dir = posix.dirname(dir)) {
    dirs.push(join(root, mount.mountPoint, dir));
    if (dir === "/") return dirs;
  }
}

/** Cores allowed by one quota file pair, or undefined when unlimited or unreadable. */
function quotaCores(quota: number, period: number): number | undefined {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return undefined;
  return quota / period;
}

function limitOf(dir: string, version: 1 | 2): number | undefined {
  if (version === 2) {
    // "max 100000" (no limit) or "350000 100000" (3.5 cores).
    const [quota, period] = (readText(join(dir, "cpu.max")) ?? "").trim().split(/\s+/);
    if (quota === undefined || quota === "max" || period === undefined) return undefined;
    return quotaCores(Number(quota), Number(period));
  }
  const quota = readText(join(dir, "cpu.cfs_quota_us"));
  const period = readText(join(dir, "cpu.cfs_period_us"));
  if (quota === undefined || period === undefined) return undefined;
  return quotaCores(Number(quota.trim()), Number(period.trim()));
}

/**
 * Reads the CPU budget of this process from its cgroups (every level up to the root, v2 and v1,
 * the tightest wins). Never throws: without readable cgroup files the budget is the CPU count.
 */
export function readCpuBudget(options: CpuBudgetOptions = {}): CpuBudget {
  const root = options.root ?? "/";
  const cpuCount = options.cpuCount ?? availableParallelism();
  const mounts = cgroupMounts(readText(join(root, "proc/self/mountinfo")) ?? "");
  const paths = cgroupPaths(readText(join(root, "proc/self/cgroup")) ?? "");
  let limit: number | undefined;
  let source = "no cgroup CPU quota";
  for (const mount of mounts) {
    const path = mount.version === 2 ? paths.get("") : paths.get("cpu");
    for (const dir of cgroupDirs(root, mount, path)) {
      const cores = limitOf(dir, mount.version);
      if (cores !== undefined && (limit === undefined || cores < limit)) {
        limit = cores;
        const file = mount.version === 2 ? "cpu.max" : "cpu.cfs_quota_us";
        source = `cgroup v${mount.version} /${relative(root, join(dir, file))}`;
      }
    }
  }
  const cores = limit === undefined ? cpuCount : Math.max(1, Math.min(cpuCount, Math.floor(limit)));
  return { cores, cpuCount, limit, source };
}

let cached: CpuBudget | undefined;

/**
 * Whole cores this process may use (its container's CPU limit, else the CPU count), read once.
 * The default of every thread-pool size in the config derives from it.
 */
export function usableCores(): number {
  cached ??= readCpuBudget();
  return cached.cores;
}
