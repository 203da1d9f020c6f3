import { fileURLToPath } from "node:url";

/**
 * The model shipped inside this package: ResMem-Net "tiny", randomly initialised (untrained), so
 * the pipeline runs out of the box. Its scores are not memorability; see model/README.md.
 */
export const BUNDLED_MODEL_PATH = fileURLToPath(new URL("../models/resmemnet-tiny.onnx", import.meta.url));
