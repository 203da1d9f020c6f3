import { ModelContractError } from "@memscore/shared";

/** What the worker needs to know about a model, read from its ONNX metadata_props (design.md). */
export interface ModelMetadata {
  name: string;
  version: string;
  /** Side of the square input, in pixels (224 for ResMem-Net). */
  inputSize: number;
  /** Per-channel (R, G, B) normalisation applied after scaling pixels to [0, 1]. */
  mean: [number, number, number];
  std: [number, number, number];
  /** False for randomly initialised models: their scores are not memorability. */
  trained: boolean;
  trainingData: string;
}

export const METADATA_KEYS = {
  name: "memscore.name",
  version: "memscore.version",
  inputSize: "memscore.input_size",
  mean: "memscore.mean",
  std: "memscore.std",
  trained: "memscore.trained",
  trainingData: "memscore.training_data",
} as const;

function required(props: Map<string, string>, key: string): string {
  const value = props.get(key);
  if (value === undefined || value.trim() === "") {
    throw new ModelContractError(
      `model metadata is missing "${key}" (export the model with model/export.py)`,
    );
  }
  return value.trim();
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

/** Validates the memscore.* metadata keys; throws {@link ModelContractError} naming the bad key. */
export function parseModelMetadata(props: Map<string, string>): ModelMetadata {
  const inputSizeRaw = required(props, METADATA_KEYS.inputSize);
  const inputSize = Number(inputSizeRaw);
  if (!Number.isInteger(inputSize) || inputSize < 16 || inputSize > 4096) {
    throw new ModelContractError(
      `model metadata "${METADATA_KEYS.inputSize}" must be an integer, got "${inputSizeRaw}"`,
    );
  }
  const trainedRaw = required(props, METADATA_KEYS.trained);
  if (trainedRaw !== "true" && trainedRaw !== "false") {
    throw new ModelContractError(
      `model metadata "${METADATA_KEYS.trained}" must be true or false, got "${trainedRaw}"`,
    );
  }
  return {
    name: required(props, METADATA_KEYS.name),
    version: required(props, METADATA_KEYS.version),
    inputSize,
    mean: triple(props, METADATA_KEYS.mean, false),
    std: triple(props, METADATA_KEYS.std, true),
    trained: trainedRaw === "true",
    trainingData: required(props, METADATA_KEYS.trainingData),
  };
}
