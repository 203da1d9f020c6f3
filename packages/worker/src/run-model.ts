import type { RunModel } from "@memscore/shared";
import type { ModelInfo } from "./model-runtime.js";

/** The model as a run's summary describes it (stored in the run's Redis state by the first worker). */
export function describeRunModel(model: ModelInfo): RunModel {
  // Older models carry no licence key; a model whose metadata names one has it on its info.
  const licence =
    "licence" in model && typeof model.licence === "string" && model.licence.trim() !== ""
      ? model.licence.trim()
      : undefined;
  return {
    name: model.name,
    version: model.version,
    sha256: model.sha256,
    trained: model.trained,
    training_data: model.trainingData,
    ...(licence !== undefined && { licence }),
  };
}
