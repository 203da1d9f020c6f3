import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MemscoreError } from "@memscore/shared";

/** Published models whose weights `memscore model import` turns into a memscore ONNX model. */
export const IMPORTABLE_MODELS = ["resmem"] as const;
export type ImportableModel = (typeof IMPORTABLE_MODELS)[number];

/** Pythons tried in order: Debian's (which has python3-torch), then the first on PATH. */
export const TORCH_PYTHON_CANDIDATES = ["/usr/bin/python3", "python3"] as const;

/** What the importer needs from Python: the modules import_model.py imports. */
const TORCH_CHECK = "import torch, torchvision, onnx";

export const TORCH_INSTALL_HINT =
  "install PyTorch, torchvision and onnx for it (Debian/Ubuntu: `apt-get install python3-torch " +
  "python3-torchvision python3-onnx`; elsewhere: `pip install torch torchvision onnx`), or pass --python PATH";

/** model/import_model.py in the memscore checkout this package belongs to (src/ and dist/ alike). */
export const IMPORT_SCRIPT = fileURLToPath(new URL("../../../model/import_model.py", import.meta.url));

function runs(python: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(python, args, { stdio: "ignore" });
    child.on("error", () => resolve(false));
    child.on("close", (code) => resolve(code === 0));
  });
}

/**
 * The first Python of `candidates` that can import torch, torchvision and onnx; a
 * {@link MemscoreError} saying what was tried and exactly what to install when none can.
 */
export async function findTorchPython(
  candidates: readonly string[] = TORCH_PYTHON_CANDIDATES,
): Promise<string> {
  for (const python of candidates) {
    if (await runs(python, ["-c", TORCH_CHECK])) return python;
  }
  throw new MemscoreError(
    "no_torch",
    `no Python with PyTorch found (tried ${candidates.join(", ")}: \`${TORCH_CHECK}\` failed): ${TORCH_INSTALL_HINT}`,
  );
}

export interface ModelImportOptions {
  kind: ImportableModel;
  weights: string;
  out: string;
  /** A Python with PyTorch. @defaultValue the first of {@link TORCH_PYTHON_CANDIDATES} that works */
  python?: string;
  /** Recorded as memscore.training_data. @defaultValue the published model's training data */
  trainingData?: string;
  /** Marks the model trained=false (random test weights). @defaultValue false */
  untrained?: boolean;
}

/**
 * Runs model/import_model.py, which rebuilds the published model, loads the weights as untrusted
 * input and exports the ONNX file; its messages go straight to this process's stderr. Resolves
 * with its exit status (0 written, 1 unusable weights, 2 bad usage).
 */
export async function importModel(options: ModelImportOptions): Promise<number> {
  if (!existsSync(IMPORT_SCRIPT)) {
    throw new MemscoreError(
      "no_importer",
      `${IMPORT_SCRIPT} is missing: model import runs from a memscore checkout (it needs model/)`,
    );
  }
  const python = options.python ?? (await findTorchPython());
  if (options.python && !(await runs(python, ["-c", TORCH_CHECK]))) {
    throw new MemscoreError("no_torch", `${python} cannot \`${TORCH_CHECK}\`: ${TORCH_INSTALL_HINT}`);
  }
  const args = [IMPORT_SCRIPT, options.kind, "--weights", options.weights, "--out", options.out];
  if (options.trainingData !== undefined) args.push("--training-data", options.trainingData);
  if (options.untrained) args.push("--untrained");
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
