import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type ExecutionProviderChoice, type Logger, MemscoreError } from "@memscore/shared";

/** A concrete provider ONNX Runtime can run on (the `auto` choice resolves to one of these). */
export type ExecutionProviderName = Exclude<ExecutionProviderChoice, "auto">;

/**
 * The order `auto` tries: accelerators first, CPU last because it always works. CUDA needs
 * onnxruntime-node's CUDA binaries (installed in the GPU image at build time); WebGPU runs over
 * Vulkan on Linux and needs a GPU driver with a Vulkan ICD.
 */
export const AUTO_PROVIDER_ORDER: readonly ExecutionProviderName[] = ["cuda", "webgpu", "cpu"];

/**
 * Why a provider cannot work here, found without trying it (trying CUDA without its libraries
 * makes ONNX Runtime print a long native error), or undefined if it is worth a try.
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
  if (provider !== "cuda") return undefined;
  const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
  const binDir = join(dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
  if (!existsSync(join(binDir, "libonnxruntime_providers_cuda.so"))) {
    return "onnxruntime-node's CUDA binaries are not installed (GPU images install them at build time: ONNXRUNTIME_NODE_INSTALL=cuda12)";
  }
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
