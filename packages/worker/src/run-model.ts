import type { ImageRecord, RunModel } from "@memscore/shared";
import type { ModelMetadata } from "./model-metadata.js";

/** What outputs say about a model: enough to trace a score to the file and weights behind it. */
export type ModelIdentity = Pick<
  ModelMetadata,
  "name" | "version" | "trained" | "trainingData" | "license"
> & {
  sha256: string;
};

/**
 * The model as every image record (and a preprocessed directory's manifest) names it: the one
 * place that turns model metadata into the snake_case fields memscore's outputs use.
 */
export function recordModel(model: ModelIdentity): ImageRecord["model"] {
  return {
    name: model.name,
    version: model.version,
    sha256: model.sha256,
    trained: model.trained,
    training_data: model.trainingData,
    license: model.license,
  };
}

/** The model as a run's summary describes it (stored in the run's Redis state by the first worker). */
export function describeRunModel(model: ModelIdentity): RunModel {
  const { license, ...rest } = recordModel(model);
  // Models without memscore.license state none ("unspecified"): the summary then says nothing.
  return license === "unspecified" ? rest : { ...rest, license };
}
