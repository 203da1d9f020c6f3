import type { RunModel } from "@memscore/shared";
import type { ModelInfo } from "./model-runtime.js";

/** The model as a run's summary describes it (stored in the run's Redis state by the first worker). */
export function describeRunModel(model: ModelInfo): RunModel {
  return {
    name: model.name,
    version: model.version,
    sha256: model.sha256,
    trained: model.trained,
    training_data: model.trainingData,
    // Models without memscore.license state none ("unspecified"): the summary then says nothing.
    ...(model.license !== "unspecified" && { license: model.license }),
  };
}
