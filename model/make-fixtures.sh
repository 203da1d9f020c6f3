#!/usr/bin/env bash
# Regenerate the small model fixture used by the worker's tests (`npm run model:fixtures`).
# The export is deterministic: seed 0 always gives the same bytes, hence the same sha256.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(realpath -m "$HERE/../packages/worker/models/resmemnet-tiny.onnx")"
mkdir -p "$(dirname "$OUT")"
/usr/bin/python3 "$HERE/export.py" --variant tiny --seed 0 --out "$OUT"
sha256sum "$OUT"

# PyTorch reference outputs for the bundled sample photographs. The worker's exact 224×224 RGB
# input is written losslessly first (memscore preprocess), so PyTorch sees byte-identical
# pixels and the parity test isolates the model + normalisation (test/model-parity.test.ts).
ROOT="$(realpath "$HERE/..")"
cd "$ROOT"
npm run build --silent
rm -rf model/build/preprocessed
node packages/cli/dist/bin.js preprocess --model "$OUT" --out model/build/preprocessed packages/cli/samples
/usr/bin/python3 model/reference.py --variant tiny --seed 0 --no-resize \
  --images model/build/preprocessed --out test/fixtures/reference-tiny.json
/usr/bin/python3 model/tools/make-contract-fixtures.py test/fixtures/models
