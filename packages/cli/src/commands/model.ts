import { IMPORTABLE_MODELS, type ImportableModel, importModel } from "@memscore/worker";
import { parseCommandArgs, stringFlag } from "../args.js";
import { UsageError } from "../usage-error.js";

const HELP = `usage: memscore model import resmem --weights FILE --out FILE.onnx [options]

Turns a published model's weights into a memscore ONNX model (score + in-graph Grad-CAM, with
the model's own preprocessing recorded in its metadata), with model/import_model.py and a
Python that has PyTorch (/usr/bin/python3, else python3 on PATH).

  resmem    ResMem (Needell & Bainbridge, University of Chicago): the weights are model.pt
            inside the pip package \`resmem\` (ResMem Non-commercial License); memscore never
            ships or downloads them. The file is loaded without running pickled code, must fit
            the published architecture exactly, and its sha256 is recorded in the model.

options:
  --weights FILE        the weights file (a PyTorch state_dict)
  --out FILE            the ONNX file to write
  --training-data TEXT  what the weights were trained on (default: the published training data)
  --untrained           mark the model trained=false (random test weights)
  --python PATH         the Python to use (default: the first of /usr/bin/python3, python3 with PyTorch)

Exit code: 0 written, 1 unusable weights (one line says why), 2 bad usage or no PyTorch.`;

export async function modelCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      weights: { type: "string" },
      out: { type: "string" },
      "training-data": { type: "string" },
      untrained: { type: "boolean" },
      python: { type: "string" },
    },
    HELP,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const [action, kind, ...extra] = positionals;
  if (action !== "import") {
    throw new UsageError(`${action ? `unknown action "${action}"` : "no action given"}`, HELP);
  }
  if (!kind || !(IMPORTABLE_MODELS as readonly string[]).includes(kind)) {
    throw new UsageError(
      `${kind ? `unknown model "${kind}"` : "no model given"}: importable models are ${IMPORTABLE_MODELS.join(", ")}`,
      HELP,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, HELP);
  const weights = stringFlag(values, "weights");
  const out = stringFlag(values, "out");
  if (!weights) throw new UsageError(`--weights FILE is required`, HELP);
  if (!out) throw new UsageError(`--out FILE is required`, HELP);
  const trainingData = stringFlag(values, "training-data");
  const python = stringFlag(values, "python");
  return importModel({
    kind: kind as ImportableModel,
    weights,
    out,
    ...(trainingData !== undefined && { trainingData }),
    ...(python !== undefined && { python }),
    untrained: values.untrained === true,
  });
}
