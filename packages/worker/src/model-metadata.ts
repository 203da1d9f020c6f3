import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ModelContractError } from "@memscore/shared";
import { readOnnxMetadataProps } from "./onnx-metadata.js";

/**
 * How decoded pixels become the model's square input (`inputSize` S):
 * - `stretch`: resized to S×S, the aspect ratio not kept (ResMem-Net);
 * - `stretch-crop`: resized to R×R (`resizeSize`), then the centre S×S is cut out, at offset
 *   ⌊(R − S)/2⌋ on both axes (ResMem: 256, then 227 at offset 14, as torchvision's CenterCrop).
 */
export type ResizeGeometry = { kind: "stretch" } | { kind: "stretch-crop"; resizeSize: number };

/** Resampling kernels a model may ask for: sharp's (libvips') names. */
export const RESIZE_KERNELS = [
  "nearest",
  "linear",
  "cubic",
  "mitchell",
  "lanczos2",
  "lanczos3",
  "mks2013",
  "mks2021",
] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];

/** What the worker needs to know about a model, read from its ONNX metadata_props (design.md). */
export interface ModelMetadata {
  name: string;
  version: string;
  /** Side of the square input, in pixels (224 for ResMem-Net, 227 for ResMem). */
  inputSize: number;
  /** @defaultValue `{ kind: "stretch" }` for a model without `memscore.resize` */
  resize: ResizeGeometry;
  /** @defaultValue `"lanczos3"` for a model without `memscore.resize_kernel` */
  resizeKernel: ResizeKernel;
  /** Per-channel (R, G, B) normalisation applied after scaling pixels to [0, 1]. */
  mean: [number, number, number];
  std: [number, number, number];
  /** False for randomly initialised models: their scores are not memorability. */
  trained: boolean;
  trainingData: string;
  /** The licence of the weights. @defaultValue `"unspecified"` for a model without `memscore.license` */
  license: string;
  /** sha256 of the weights file an imported model was built from, when recorded. */
  weightsSha256?: string;
}

/** The keys every model must have (the first contract). */
export const METADATA_KEYS = {
  name: "memscore.name",
  version: "memscore.version",
  inputSize: "memscore.input_size",
  mean: "memscore.mean",
  std: "memscore.std",
  trained: "memscore.trained",
  trainingData: "memscore.training_data",
} as const;

/** Keys added later: a model without them gets {@link ORIGINAL_GEOMETRY} and an unspecified licence. */
export const OPTIONAL_METADATA_KEYS = {
  resize: "memscore.resize",
  resizeSize: "memscore.resize_size",
  resizeKernel: "memscore.resize_kernel",
  license: "memscore.license",
  weightsSha256: "memscore.weights_sha256",
} as const;

/**
 * The geometry of models exported before the geometry keys existed (the original contract:
 * stretch to S, Lanczos 3). The one place these defaults are written down.
 */
export const ORIGINAL_GEOMETRY: Pick<ModelMetadata, "resize" | "resizeKernel"> = {
  resize: { kind: "stretch" },
  resizeKernel: "lanczos3",
};

function optional(props: Map<string, string>, key: string): string | undefined {
  const value = props.get(key)?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function required(props: Map<string, string>, key: string): string {
  const value = optional(props, key);
  if (value === undefined) {
    throw new ModelContractError(
      `model metadata is missing "${key}" (export the model with model/export.py)`,
    );
  }
  return value;
}

function triple(props: Map<string, string>, key: string, positive: boolean): [number, number, number] {
  const raw = required(props, key);
  const parts = raw.split(",").map((s) => Number(s.trim()));
  if (parts.length !== 3 || parts.some((v) => !Number.isFinite(v) || (positive && v <= 0))) {
    throw new ModelContractError(
      `model metadata "${key}" must be three ${positive ? "positive " : ""}numbers, got "${raw}"`,
    );
  }
  return parts as [number, number, number];
}

function side(raw: string, key: string, min: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > 4096) {
    throw new ModelContractError(
      `model metadata "${key}" must be an integer from ${min} to 4096, got "${raw}"`,
    );
  }
  return value;
}

function parseResize(props: Map<string, string>, inputSize: number): ResizeGeometry {
  const kind = optional(props, OPTIONAL_METADATA_KEYS.resize) ?? ORIGINAL_GEOMETRY.resize.kind;
  const sizeRaw = optional(props, OPTIONAL_METADATA_KEYS.resizeSize);
  if (kind === "stretch") {
    if (sizeRaw !== undefined) {
      throw new ModelContractError(
        `model metadata "${OPTIONAL_METADATA_KEYS.resizeSize}" is set but "${OPTIONAL_METADATA_KEYS.resize}" is stretch (it needs stretch-crop)`,
      );
    }
    return { kind };
  }
  if (kind === "stretch-crop") {
    if (sizeRaw === undefined) {
      throw new ModelContractError(
        `model metadata "${OPTIONAL_METADATA_KEYS.resize}" is stretch-crop but "${OPTIONAL_METADATA_KEYS.resizeSize}" is missing`,
      );
    }
    return { kind, resizeSize: side(sizeRaw, OPTIONAL_METADATA_KEYS.resizeSize, inputSize) };
  }
  throw new ModelContractError(
    `model metadata "${OPTIONAL_METADATA_KEYS.resize}" must be stretch or stretch-crop, got "${kind}"`,
  );
}

function parseKernel(props: Map<string, string>): ResizeKernel {
  const raw = optional(props, OPTIONAL_METADATA_KEYS.resizeKernel) ?? ORIGINAL_GEOMETRY.resizeKernel;
  if (!(RESIZE_KERNELS as readonly string[]).includes(raw)) {
    throw new ModelContractError(
      `model metadata "${OPTIONAL_METADATA_KEYS.resizeKernel}" must be one of ${RESIZE_KERNELS.join(", ")}, got "${raw}"`,
    );
  }
  return raw as ResizeKernel;
}

/**
 * Validates the memscore.* metadata keys; throws {@link ModelContractError} naming the bad key.
 * Keys added after the first contract (resize geometry, kernel, licence) are optional, with the
 * original contract's values as defaults, so models exported before them keep working.
 */
export function parseModelMetadata(props: Map<string, string>): ModelMetadata {
  const inputSize = side(required(props, METADATA_KEYS.inputSize), METADATA_KEYS.inputSize, 16);
  const trainedRaw = required(props, METADATA_KEYS.trained);
  if (trainedRaw !== "true" && trainedRaw !== "false") {
    throw new ModelContractError(
      `model metadata "${METADATA_KEYS.trained}" must be true or false, got "${trainedRaw}"`,
    );
  }
  const weightsSha256 = optional(props, OPTIONAL_METADATA_KEYS.weightsSha256);
  if (weightsSha256 !== undefined && !/^[0-9a-f]{64}$/.test(weightsSha256)) {
    throw new ModelContractError(
      `model metadata "${OPTIONAL_METADATA_KEYS.weightsSha256}" must be 64 lowercase hex digits, got "${weightsSha256}"`,
    );
  }
  return {
    name: required(props, METADATA_KEYS.name),
    version: required(props, METADATA_KEYS.version),
    inputSize,
    resize: parseResize(props, inputSize),
    resizeKernel: parseKernel(props),
    mean: triple(props, METADATA_KEYS.mean, false),
    std: triple(props, METADATA_KEYS.std, true),
    trained: trainedRaw === "true",
    trainingData: required(props, METADATA_KEYS.trainingData),
    license: optional(props, OPTIONAL_METADATA_KEYS.license) ?? "unspecified",
    ...(weightsSha256 !== undefined && { weightsSha256 }),
  };
}

/**
 * A model file's metadata and sha256, without starting an inference session: for commands that
 * only need the model's contract (e.g. `memscore preprocess`).
 */
export async function readModelMetadata(path: string): Promise<ModelMetadata & { sha256: string }> {
  const bytes = await readFile(path);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { ...parseModelMetadata(readOnnxMetadataProps(bytes)), sha256 };
}
