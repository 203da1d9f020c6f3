#!/usr/bin/env bash
# Model (PyTorch) test suite, run by `npm test` / `npm run test:model`.
# Uses Debian's /usr/bin/python3 explicitly: the python3 first on PATH may lack torch.
set -u
PY=/usr/bin/python3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! "$PY" -c 'import torch, torchvision, onnx' >/dev/null 2>&1; then
  msg="PyTorch not found for $PY (install: apt-get install python3-torch python3-torchvision python3-onnx)"
  if [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; then
    # CI images always install it, so a missing torch there is a broken image, not a skip.
    echo "model suite FAILED: $msg" >&2
    exit 1
  fi
  echo "model suite SKIPPED: $msg"
  exit 0
fi

exec "$PY" "$HERE/run_tests.py"
