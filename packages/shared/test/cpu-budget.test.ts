import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readCpuBudget, resolveConfig, usableCores } from "../src/index.js";

/** A fake filesystem root holding the given files (path → content). */
async function fakeRoot(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "memscore-cgroup-"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

// What the kernel shows in a Kubernetes pod (cgroup v2, own cgroup namespace).
const V2_MOUNTINFO =
  "1 0 0:1 / / rw - overlay overlay rw\n" +
  "30 1 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
// cgroup v1 with cpu and cpuacct co-mounted (older nodes), also in a namespace.
const V1_MOUNTINFO =
  "1 0 0:1 / / rw - overlay overlay rw\n" +
  "31 1 0:27 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n" +
  "34 31 0:30 / /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n" +
  "35 31 0:31 / /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";

describe("readCpuBudget (cores from the container's CPU limit)", () => {
  const roots: string[] = [];
  const root = async (files: Record<string, string>) => {
    const dir = await fakeRoot(files);
    roots.push(dir);
    return dir;
  };
  afterEach(async () => {
    await Promise.all(roots.splice(0).map((r) => rm(r, { recursive: true, force: true })));
  });

  it("reads a cgroup v2 cpu.max limit and rounds it down to whole cores", async () => {
    const dir = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "350000 100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 16 })).toEqual({
      cores: 3,
      cpuCount: 16,
      limit: 3.5,
      source: "cgroup v2 /sys/fs/cgroup/cpu.max",
    });
  });

  it("uses the CPU count when cpu.max says max", async () => {
    const dir = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "max 100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 16 })).toMatchObject({ cores: 16, limit: undefined });
  });

  it("takes the tightest limit on the way up from the process's cgroup (no cgroup namespace)", async () => {
    const pod = "/kubepods.slice/kubepods-burstable.slice/pod1";
    const dir = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": `0::${pod}/cri-containerd-abc.scope\n`,
      [`sys/fs/cgroup${pod}/cri-containerd-abc.scope/cpu.max`]: "max 100000\n",
      [`sys/fs/cgroup${pod}/cpu.max`]: "200000 100000\n",
      "sys/fs/cgroup/kubepods.slice/cpu.max": "6000000 100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 64 })).toEqual({
      cores: 2,
      cpuCount: 64,
      limit: 2,
      source: `cgroup v2 /sys/fs/cgroup${pod}/cpu.max`,
    });
  });

  it("reads a cgroup v1 CFS quota and period", async () => {
    const dir = await root({
      "proc/self/mountinfo": V1_MOUNTINFO,
      "proc/self/cgroup": "5:memory:/\n4:cpu,cpuacct:/\n0::/\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "400000\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 8 })).toEqual({
      cores: 4,
      cpuCount: 8,
      limit: 4,
      source: "cgroup v1 /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
    });
  });

  it("treats a v1 quota of -1 as no limit", async () => {
    const dir = await root({
      "proc/self/mountinfo": V1_MOUNTINFO,
      "proc/self/cgroup": "4:cpu,cpuacct:/\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 8 })).toMatchObject({ cores: 8, limit: undefined });
  });

  it("finds a v1 container's own cgroup when the mount's root is that cgroup (Docker without cgroupns)", async () => {
    const dir = await root({
      "proc/self/mountinfo": "40 31 0:30 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n",
      "proc/self/cgroup": "3:cpu:/docker/abc\n",
      "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    });
    expect(readCpuBudget({ root: dir, cpuCount: 8 })).toMatchObject({ cores: 1, limit: 1.5 });
  });

  it("never goes below one core nor above the CPU count", async () => {
    const small = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "50000 100000\n",
    });
    expect(readCpuBudget({ root: small, cpuCount: 8 })).toMatchObject({ cores: 1, limit: 0.5 });
    const large = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "1600000 100000\n",
    });
    expect(readCpuBudget({ root: large, cpuCount: 4 })).toMatchObject({ cores: 4, limit: 16 });
  });

  it("falls back to the CPU count without cgroup files, and ignores malformed ones", async () => {
    const empty = await root({});
    expect(readCpuBudget({ root: empty, cpuCount: 6 })).toEqual({
      cores: 6,
      cpuCount: 6,
      limit: undefined,
      source: "no cgroup CPU quota",
    });
    const garbage = await root({
      "proc/self/mountinfo": V2_MOUNTINFO,
      "proc/self/cgroup": "0::/\n",
      "sys/fs/cgroup/cpu.max": "lots\n",
    });
    expect(readCpuBudget({ root: garbage, cpuCount: 6 })).toMatchObject({ cores: 6, limit: undefined });
  });

  it("sizes the default ONNX Runtime and pipeline thread counts from the usable cores", () => {
    const config = resolveConfig({});
    expect(config.intraOpThreads).toBe(usableCores());
    expect(config.pipelineThreads).toBe(usableCores());
    // On this machine the limit (if any) comes from the real cgroup files.
    expect(usableCores()).toBe(readCpuBudget().cores);
  });
});
