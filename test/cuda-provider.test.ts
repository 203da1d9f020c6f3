import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { appendFile, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CUDA_PROVIDER_LIBRARIES, cudaProviderProblem, onnxruntimeBinaryDir } from "@memscore/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.js";

const ROOT = new URL("..", import.meta.url).pathname;
const INSTALL = join(ROOT, "infra/gpu/install-cuda-provider.mjs");
const LOCK = JSON.parse(readFileSync(join(ROOT, "infra/gpu/cuda-provider.lock.json"), "utf8")) as {
  package: string;
  version: string;
  tarballSha256: string;
  libraries: Record<string, { sha256: string }>;
};
const SAMPLE = join(ROOT, "packages/cli/samples/coffee.jpg");

function install(...args: string[]) {
  return spawnSync(process.execPath, [INSTALL, ...args], { cwd: ROOT, encoding: "utf8", timeout: 600_000 });
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

/** Inverts one byte of `path` in place (twice restores it). */
async function flipByte(path: string, offset: number): Promise<void> {
  const file = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ 0xff;
    await file.write(byte, 0, 1, offset);
  } finally {
    await file.close();
  }
}

// One download of the real package (about 180 MB; npm's cache makes later runs cheap) into a
// private cache, installed into private folders: the checkout's onnxruntime-node is not touched.
describe("npm run gpu:install: the CUDA provider from the npm registry", () => {
  let work: string;
  let cache: string;
  let dest: string;
  let first: ReturnType<typeof install>;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "memscore-gpu-install-"));
    cache = join(work, "cache");
    dest = join(work, "dest");
    first = install("--cache", cache, "--dest", dest);
  }, 600_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("places the provider libraries with their pinned sha256 and says each was verified", async () => {
    expect(first.status, first.stderr).toBe(0);
    expect(await sha256(join(cache, `${LOCK.package}-${LOCK.version}.tgz`))).toBe(LOCK.tarballSha256);
    expect(Object.keys(LOCK.libraries).sort()).toEqual([...CUDA_PROVIDER_LIBRARIES].sort());
    for (const [name, { sha256: pinned }] of Object.entries(LOCK.libraries)) {
      expect(await sha256(join(dest, name)), name).toBe(pinned);
      expect(first.stdout).toContain(`${join(dest, name)}: sha256 ${pinned} (pinned) ok`);
    }
    // A second run finds everything in place and downloads nothing.
    const again = install("--dest", dest);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already installed and verified/);
    expect(again.stdout).not.toMatch(/fetching/);
  });

  it("refuses a tampered tarball and places nothing", async () => {
    const tarball = join(cache, `${LOCK.package}-${LOCK.version}.tgz`);
    const elsewhere = join(work, "elsewhere");
    await flipByte(tarball, 1_000_000);
    try {
      const refused = install("--cache", cache, "--dest", elsewhere);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(`refused .*: sha256 [0-9a-f]{64}, pinned ${LOCK.tarballSha256}`),
      );
      expect(refused.stderr).toMatch(/nothing was installed/);
      for (const name of CUDA_PROVIDER_LIBRARIES) expect(existsSync(join(elsewhere, name)), name).toBe(false);
    } finally {
      await flipByte(tarball, 1_000_000);
    }
  });

  it("--check names a placed library that was altered, and installing again restores it", async () => {
    const altered = join(dest, "libonnxruntime_providers_shared.so");
    await appendFile(altered, "x");
    const check = install("--check", "--dest", dest);
    expect(check.status).toBe(1);
    expect(check.stdout).toContain(`${altered}: sha256`);
    expect(check.stdout).toMatch(/altered/);
    expect(check.stderr).toMatch(/libonnxruntime_providers_shared\.so altered .*run npm run gpu:install/);

    const repaired = install("--cache", cache, "--dest", dest);
    expect(repaired.status, repaired.stderr).toBe(0);
    expect(install("--check", "--dest", dest).status).toBe(0);
  });

  it("answers a bad flag with a one-line usage message and exit 2", () => {
    const bad = install("--destination", dest);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/usage: npm run gpu:install/);
  });

  it("names each CUDA 13 / cuDNN 9 library that the installed provider cannot load here", () => {
    // The expectation comes from the system's own loader: ldd on the provider library lists its
    // unresolved dependencies; cuDNN (loaded by ONNX Runtime with dlopen) is looked up in the
    // loader cache and LD_LIBRARY_PATH.
    const provider = join(dest, "libonnxruntime_providers_cuda.so");
    const ldd = spawnSync("ldd", [provider], { encoding: "utf8" });
    expect(ldd.status, ldd.stderr).toBe(0);
    const needed = [...ldd.stdout.matchAll(/^\s*(\S+\.so[.\d]*) =>/gm)].map((m) => m[1] as string);
    const notFound = [...ldd.stdout.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1] as string);
    const searchPath = (process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean);
    const cudnnFound =
      spawnSync("ldconfig", ["-p"], { encoding: "utf8" }).stdout.includes("libcudnn.so.9 ") ||
      searchPath.some((dir) => existsSync(join(dir, "libcudnn.so.9")));
    const missing = [...notFound, ...(cudnnFound ? [] : ["libcudnn.so.9"])];

    const problem = cudaProviderProblem(dest);
    if (missing.length === 0) {
      expect(problem).toBeUndefined();
      return;
    }
    expect(problem).toBeDefined();
    const text = problem ?? "";
    if (missing.includes("libcuda.so.1"))
      expect(text).toMatch(/no NVIDIA driver: libcuda\.so\.1 cannot be loaded/);
    const libraries = missing.filter((m) => m !== "libcuda.so.1");
    if (libraries.length > 0) {
      expect(text).toContain(`cannot load ${libraries.join(", ")} (CUDA 13 / cuDNN 9`);
      expect(text).toMatch(/LD_LIBRARY_PATH/);
    }
    // Libraries the loader does find are not blamed (libcudart.so.13 on a machine with only the runtime).
    for (const found of needed.filter((n) => !missing.includes(n))) expect(text).not.toContain(found);
  });
});

describe("choosing the execution provider at start, on this machine", () => {
  const installed = CUDA_PROVIDER_LIBRARIES.every((name) => existsSync(join(onnxruntimeBinaryDir(), name)));

  it("memscore score --provider cuda fails at once with what is missing", async () => {
    const result = await runCli(["score", SAMPLE, "--provider", "cuda", "--json"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^memscore score: no execution provider could be initialised \(cuda: /);
    // CI and a plain `npm ci` have no provider libraries; a checkout after `npm run gpu:install`
    // has them, and then lacks the CUDA libraries or a GPU instead.
    if (!installed) {
      expect(lines[0]).toContain(`missing in ${onnxruntimeBinaryDir()}): run npm run gpu:install`);
    } else {
      expect(lines[0]).toMatch(/cannot load lib|no NVIDIA driver|CUDA/);
    }
  });

  it("auto falls back to cpu, scores, and logs why cuda and webgpu were skipped", async () => {
    const result = await runCli(["score", SAMPLE, "--provider", "auto", "--json"], {
      MEMSCORE_LOG_LEVEL: "debug",
    });
    expect(result.code, result.stderr).toBe(0);
    const record = JSON.parse(result.stdout.trim()) as { score: number };
    expect(Number.isFinite(record.score)).toBe(true);
    expect(result.stderr).toMatch(/execution provider unavailable provider=cuda reason=\S/);
    if (!installed)
      expect(result.stderr).toMatch(/provider=cuda reason=the CUDA provider libraries are not installed/);
    expect(result.stderr).toMatch(/execution provider unavailable provider=webgpu reason=\S/);
    expect(result.stderr).toMatch(
      /execution provider selected provider=cpu requested=auto skipped=\["cuda: .*","webgpu: /,
    );
  });
});
