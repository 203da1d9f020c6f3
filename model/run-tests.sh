#!/usr/bin/env bash
# Model (PyTorch) test suite, run by `npm test` / `npm run test:model`.
# Uses Debian's /usr/bin/python3 explicitly: the python3 first on PATH may lack torch.
# Without PyTorch the suite fails rather than skips: a green `npm test` must mean it ran.
set -u
PY=/usr/bin/python3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! "$PY" -c 'import torch, torchvision, onnx' >/dev/null 2>&1; then
  echo "model suite FAILED: PyTorch not found for $PY (install: apt-get install python3-torch python3-torchvision python3-onnx)" >&2
  exit 1
fi

exec "$PY" "$HERE/run_tests.py"
