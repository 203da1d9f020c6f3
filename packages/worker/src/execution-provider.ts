import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type ExecutionProviderChoice, type Logger, MemscoreError } from "@memscore/shared";
import { readNeededLibraries, unloadableLibraries } from "./shared-libraries.js";

/** A concrete provider ONNX Runtime can run on (the `auto` choice resolves to one of these). */
export type ExecutionProviderName = Exclude<ExecutionProviderChoice, "auto">;

/**
 * The order `auto` tries: accelerators first, CPU last because it always works. CUDA needs the
 * CUDA provider libraries (`npm run gpu:install`) and CUDA 13 + cuDNN 9; WebGPU runs over Vulkan
 * on Linux and needs a GPU driver with a Vulkan ICD.
 */
export const AUTO_PROVIDER_ORDER: readonly ExecutionProviderName[] = ["cuda", "webgpu", "cpu"];

/** The libraries `npm run gpu:install` places next to onnxruntime-node's core library. */
export const CUDA_PROVIDER_LIBRARIES = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
];

/**
 * cuDNN is not among the CUDA provider's DT_NEEDED entries: ONNX Runtime loads it with dlopen when
 * the provider starts, so it is probed by name.
 */
const CUDNN_LIBRARY = "libcudnn.so.9";

/** From the NVIDIA driver, not from CUDA: its absence means no driver, whatever LD_LIBRARY_PATH says. */
const DRIVER_LIBRARY = "libcuda.so.1";

/** The folder onnxruntime-node's binding loads its core library from, and the core its providers. */
export function onnxruntimeBinaryDir(): string {
  const manifest = createRequire(import.meta.url).resolve("onnxruntime-node/package.json");
  return join(dirname(manifest), "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Why the CUDA provider cannot start from `binDir`, found without creating a session (which
 * fails with only the first missing library, after ONNX Runtime prints a long native error), or
 * undefined when every library it needs can be loaded.
 */
export function cudaProviderProblem(binDir: string = onnxruntimeBinaryDir()): string | undefined {
  const missing = CUDA_PROVIDER_LIBRARIES.filter((name) => !existsSync(join(binDir, name)));
  if (missing.length > 0) {
    return `the CUDA provider libraries are not installed (${missing.join(", ")} missing in ${binDir}): run npm run gpu:install`;
  }
  const provider = join(binDir, "libonnxruntime_providers_cuda.so");
  const wanted = [...readNeededLibraries(provider), CUDNN_LIBRARY];
  const failed = unloadableLibraries(wanted);
  if (failed.length === 0) return undefined;
  const problems: string[] = [];
  if (failed.some((f) => f.name === DRIVER_LIBRARY)) {
    problems.push(
      `no NVIDIA driver: ${DRIVER_LIBRARY} cannot be loaded (on Kubernetes request nvidia.com/gpu; with Docker run with --gpus all)`,
    );
  }
  const libraries = failed.filter((f) => f.name !== DRIVER_LIBRARY);
  if (libraries.length > 0) {
    // "cannot open shared object file" only says "not found"; other reasons (a wrong version,
    // a dependency of the library missing) are worth passing on.
    const otherReasons = libraries
      .map((f) => f.reason)
      .filter((r) => !/cannot open shared object file/.test(r));
    problems.push(
      `cannot load ${libraries.map((f) => f.name).join(", ")} (CUDA 13 / cuDNN 9, needed by ${provider}): ` +
        "add their folders to LD_LIBRARY_PATH (a CUDA 13 toolkit's lib64 and cuDNN 9's lib, or the " +
        "site-packages/nvidia/*/lib folders of a Python environment with CUDA 13 wheels)" +
        (otherReasons.length > 0 ? `; the loader said: ${otherReasons.join("; ")}` : ""),
    );
  }
  return problems.join("; ");
}

/**
 * Why a provider cannot work here, found without trying it, or undefined if it is worth a try.
 */
export function providerUnavailableReason(provider: ExecutionProviderName): string | undefined {
  if (provider === "webgpu") {
    // Without a GPU device node, Vulkan can only offer a software rasteriser (slower than the
    // CPU provider), and probing it prints driver noise: skip it.
    const devices = (dir: string) => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    };
    const gpu =
      devices("/dev").some((d) => /^nvidia\d+$/.test(d)) ||
      devices("/dev/dri").some((d) => d.startsWith("renderD"));
    return gpu ? undefined : "no GPU device found (/dev/nvidia*, /dev/dri/renderD*)";
  }
  if (provider === "cuda") return cudaProviderProblem();
  return undefined;
}

/** Expands a configured choice into the providers to try, in order. */
export function providerCandidates(choice: ExecutionProviderChoice): ExecutionProviderName[] {
  return choice === "auto" ? [...AUTO_PROVIDER_ORDER] : [choice];
}

/**
 * Tries `create` with each candidate in turn and returns the first that initialises, logging why
 * the others did not. With an explicit (non-auto) choice a failure is an error, not a fallback:
 * a user who asked for `cuda` must not silently get a CPU run.
 */
export async function firstWorkingProvider<T>(
  choice: ExecutionProviderChoice,
  create: (provider: ExecutionProviderName) => Promise<T>,
  logger: Logger,
): Promise<{ provider: ExecutionProviderName; value: T }> {
  const failures: string[] = [];
  for (const provider of providerCandidates(choice)) {
    const unavailable = providerUnavailableReason(provider);
    if (unavailable) {
      failures.push(`${provider}: ${unavailable}`);
      if (choice === "auto") logger.info("execution provider unavailable", { provider, reason: unavailable });
      continue;
    }
    try {
      const value = await create(provider);
      logger.info("execution provider selected", { provider, requested: choice, skipped: failures });
      return { provider, value };
    } catch (error) {
      const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
      failures.push(`${provider}: ${reason}`);
      if (choice === "auto") logger.info("execution provider unavailable", { provider, reason });
    }
  }
  throw new MemscoreError(
    "provider_unavailable",
    `no execution provider could be initialised (${failures.join("; ")})`,
  );
}
