import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { resolveConfig } from "@memscore/shared";
import { describe, expect, it } from "vitest";
import { CLI_BIN } from "./support/cli.js";
import { dockerIgnore, type Instruction, parseDockerfile, splitFlags } from "./support/dockerfile.js";
import { renderKustomization } from "./support/kustomize.js";

const ROOT = new URL("..", import.meta.url).pathname;

const envOf = (instructions: Instruction[]): Record<string, string> =>
  Object.fromEntries(
    instructions
      .filter((i) => i.keyword === "ENV")
      .flatMap((i) => i.args.split(/\s+/).map((pair) => pair.split("=") as [string, string])),
  );

/** Every file under `dir`, relative to the repository root (node_modules and .git left out). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === ".git") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(relative(ROOT, path));
  }
  return out;
}

/** The Node line both images run: the current LTS. */
const IMAGE_NODE_MAJOR = 24;

describe.each([
  { file: "worker.Dockerfile", provider: "cuda" },
  { file: "service.Dockerfile", provider: "cpu" },
])("infra/docker/$file", ({ file, provider }) => {
  const path = join(ROOT, "infra/docker", file);

  it("starts from pinned images and from its own earlier stages only", async () => {
    const { stages } = await parseDockerfile(path);
    expect(stages.length).toBeGreaterThan(1);
    const names = new Set<string>();
    for (const stage of stages) {
      if (!names.has(stage.from)) {
        // image:tag with a version number (no "latest"), or a digest.
        expect(stage.from, `FROM ${stage.from}`).toMatch(
          /^[a-z0-9./-]+(:[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*|@sha256:[0-9a-f]{64})$/,
        );
        expect(stage.from).not.toMatch(/:latest$/);
      }
      for (const i of stage.instructions.filter((x) => x.keyword === "COPY")) {
        const from = splitFlags(i.args).flags.from;
        if (from !== undefined) expect(names, `COPY --from=${from} (line ${i.line})`).toContain(from);
      }
      if (stage.name) names.add(stage.name);
    }
    const node = stages.map((s) => s.from).find((f) => f.startsWith("node:"));
    const engines = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")).engines.node as string;
    const [major, minor] =
      /^node:(\d+)\.(\d+)/
        .exec(node ?? "")
        ?.slice(1)
        .map(Number) ?? [];
    const [wantMajor, wantMinor] = /(\d+)\.(\d+)/.exec(engines)?.slice(1).map(Number) ?? [];
    // A Node at least as new as package.json's engines asks for, and the current LTS line:
    // both images run Node 24 (the code also runs on 20).
    expect(major).toBeGreaterThanOrEqual(wantMajor as number);
    if (major === wantMajor) expect(minor).toBeGreaterThanOrEqual(wantMinor as number);
    expect(major).toBe(IMAGE_NODE_MAJOR);
  });

  it("copies only files that exist in the repository and are in the build context", async () => {
    const { stages } = await parseDockerfile(path);
    const ignored = dockerIgnore(await readFile(join(ROOT, ".dockerignore"), "utf8"));
    for (const stage of stages) {
      for (const i of stage.instructions.filter((x) => x.keyword === "COPY" || x.keyword === "ADD")) {
        const { flags, words } = splitFlags(i.args);
        if (flags.from !== undefined) continue;
        for (const source of words.slice(0, -1)) {
          const clean = source.replace(/\/$/, "");
          expect(existsSync(join(ROOT, clean)), `${source} (line ${i.line})`).toBe(true);
          expect(ignored(clean), `${source} is excluded by .dockerignore (line ${i.line})`).toBe(false);
        }
      }
    }
    // The context carries sources and the bundled model, never local builds or dependencies.
    const context = (await filesUnder(join(ROOT, "packages"))).filter((f) => !ignored(f));
    expect(context).toContain("packages/worker/models/resmemnet-tiny.onnx");
    expect(
      context.filter((f) => f.includes("/dist/") || f.endsWith(".tsbuildinfo") || f.endsWith(".node")),
    ).toEqual([]);
    expect(ignored("node_modules/sharp/package.json")).toBe(true);
    expect(ignored(".git/HEAD")).toBe(true);
  });

  it("builds the worker's JPEG codec or fails, and gives the runtime stage libjpeg-turbo", async () => {
    const { stages } = await parseDockerfile(path);
    const build = stages.find((s) =>
      s.instructions.some((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args)),
    );
    const runs = (build?.instructions ?? []).filter((i) => i.keyword === "RUN").map((i) => i.args);
    // Headers and compiler before the build; the build itself with --require, so no image ships
    // a worker that silently decodes with libvips.
    const installed = runs.filter((r) => /apt-get install/.test(r)).join(" ");
    expect(installed).toMatch(/\blibjpeg(62-turbo|-turbo8)-dev\b/);
    expect(installed).toMatch(/(^|\s)(gcc|g\+\+)(\s|$)/); // g++ brings gcc, whose cc the build runs
    expect(runs.some((r) => r.includes("build-jpeg-codec.mjs --require"))).toBe(true);
    const final = stages.at(-1)?.instructions ?? [];
    const runtime = final
      .filter((i) => i.keyword === "RUN" && /apt-get install/.test(i.args))
      .map((i) => i.args);
    expect(runtime.join(" ")).toMatch(/\blibjpeg(62-turbo|-turbo8)\b(?!-dev)/);
    // Debian's libjpeg62-turbo with Debian's headers, Ubuntu's libjpeg-turbo8 with Ubuntu's.
    expect(/62-turbo/.test(installed)).toBe(/62-turbo/.test(runtime.join(" ")));
  });

  it("runs the memscore CLI as a non-root user, serving metrics and health on the configured port", async () => {
    const { stages } = await parseDockerfile(path);
    const final = stages.at(-1)?.instructions ?? [];
    const user = final.filter((i) => i.keyword === "USER").at(-1)?.args ?? "root";
    const uid = user.split(":")[0] as string;
    expect(["root", "0"]).not.toContain(uid);
    expect(final.some((i) => i.keyword === "RUN" && i.args.includes(`--uid ${uid}`))).toBe(true);
    // Kubernetes runs the pods as that same uid.
    const objects = await renderKustomization(join(ROOT, "infra/k8s/overlays/cpu"));
    for (const o of objects.filter((x) => x.kind === "Deployment")) {
      const spec = (o.spec as { template: { spec: { securityContext: { runAsUser: number } } } }).template
        .spec;
      expect(String(spec.securityContext.runAsUser), o.metadata.name).toBe(uid);
    }

    const env = envOf(final);
    expect(env.MEMSCORE_METRICS_HOST).toBe("0.0.0.0");
    expect(env.MEMSCORE_PROVIDER).toBe(provider);
    const port = resolveConfig({}).metricsPort;
    expect(Number(env.MEMSCORE_METRICS_PORT ?? port)).toBe(port);
    expect(final.find((i) => i.keyword === "EXPOSE")?.args).toBe(String(port));
    expect(final.find((i) => i.keyword === "HEALTHCHECK")?.args).toContain(`127.0.0.1:${port}/healthz`);

    const entrypoint = JSON.parse(final.find((i) => i.keyword === "ENTRYPOINT")?.args ?? "[]") as string[];
    const workdir = final.find((i) => i.keyword === "WORKDIR")?.args ?? "/";
    const cli = JSON.parse(await readFile(join(ROOT, "packages/cli/package.json"), "utf8")) as {
      bin: { memscore: string };
    };
    expect(entrypoint).toEqual(["node", join(workdir, "packages/cli", cli.bin.memscore)]);
    const [command] = JSON.parse(final.find((i) => i.keyword === "CMD")?.args ?? "[]") as string[];
    const help = spawnSync(process.execPath, [CLI_BIN, command as string, "--help"], { encoding: "utf8" });
    expect(help.status, `memscore ${command} --help`).toBe(0);
  });
});

/** The stage that runs `npm ci`, and the index of that RUN among its instructions. */
async function npmCiStage(file: string): Promise<{ instructions: Instruction[]; npmCi: number }> {
  const { stages } = await parseDockerfile(join(ROOT, "infra/docker", file));
  const build = stages.find((s) =>
    s.instructions.some((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args)),
  );
  expect(build, `a stage of ${file} runs npm ci`).toBeDefined();
  const instructions = build?.instructions ?? [];
  return {
    instructions,
    npmCi: instructions.findIndex((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args)),
  };
}

describe("infra/docker/service.Dockerfile", () => {
  it("skips onnxruntime-node's download of GPU binaries (ONNXRUNTIME_NODE_INSTALL=skip before npm ci)", async () => {
    const { instructions, npmCi } = await npmCiStage("service.Dockerfile");
    expect(envOf(instructions.slice(0, npmCi)).ONNXRUNTIME_NODE_INSTALL).toBe("skip");
  });
});

describe("infra/docker/worker.Dockerfile: the CUDA provider", () => {
  it("starts from a CUDA 13 + cuDNN 9 runtime image, the CUDA and cuDNN the provider was built for", async () => {
    const { stages } = await parseDockerfile(join(ROOT, "infra/docker/worker.Dockerfile"));
    const cuda = stages.map((s) => s.from).filter((f) => f.startsWith("nvidia/cuda:"));
    expect(cuda.length).toBeGreaterThan(0);
    for (const from of cuda) expect(from).toMatch(/^nvidia\/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
    expect(stages.at(-1)?.from).toBe(cuda[0]);
  });

  it("installs it with npm run gpu:install after an npm ci that runs no install script (no NuGet)", async () => {
    const { instructions, npmCi } = await npmCiStage("worker.Dockerfile");
    expect(instructions[npmCi]?.args).toMatch(/--ignore-scripts/);
    const install = envOf(instructions).ONNXRUNTIME_NODE_INSTALL;
    expect(install === undefined || install === "skip", `ONNXRUNTIME_NODE_INSTALL=${install}`).toBe(true);
    const gpuInstall = instructions.findIndex(
      (i) => i.keyword === "RUN" && /\bnpm run gpu:install\b/.test(i.args),
    );
    expect(gpuInstall).toBeGreaterThan(npmCi);
    // The install step and its pins are copied in before it runs, and are in the build context.
    const copied = instructions
      .slice(0, gpuInstall)
      .filter((i) => i.keyword === "COPY")
      .flatMap((i) => splitFlags(i.args).words.slice(0, -1));
    expect(copied).toContain("infra/gpu/");
    const ignored = dockerIgnore(await readFile(join(ROOT, ".dockerignore"), "utf8"));
    expect(ignored("infra/gpu/install-cuda-provider.mjs")).toBe(false);
    expect(ignored("infra/gpu/cuda-provider.lock.json")).toBe(false);
    expect(ignored("infra/k8s/base/worker.yaml")).toBe(true);
    const scripts = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")).scripts as Record<
      string,
      string
    >;
    expect(scripts["gpu:install"]).toBe("node infra/gpu/install-cuda-provider.mjs");
  });

  it("fails the build when a library the provider needs does not resolve (ldd), the driver's libcuda.so.1 aside", async () => {
    const { instructions } = await npmCiStage("worker.Dockerfile");
    const run =
      instructions.find((i) => i.keyword === "RUN" && /\bnpm run gpu:install\b/.test(i.args))?.args ?? "";
    expect(run).toMatch(
      /provider=node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/libonnxruntime_providers_cuda\.so/,
    );
    expect(run).toContain(`ldd "$provider"`);
    expect(run).toContain(String.raw`grep 'not found' | grep -v 'libcuda\.so\.1 '`);
    expect(run).toMatch(/exit 1/);
    expect(run).toContain(String.raw`ldconfig -p | grep 'libcudnn\.so\.9 '`);
    // Core and provider are one ONNX Runtime version: the image's onnxruntime-node is the pinned one.
    const lock = JSON.parse(await readFile(join(ROOT, "infra/gpu/cuda-provider.lock.json"), "utf8")) as {
      onnxruntimeVersion: string;
    };
    const worker = JSON.parse(await readFile(join(ROOT, "packages/worker/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(worker.dependencies["onnxruntime-node"]).toBe(lock.onnxruntimeVersion);
  });
});
