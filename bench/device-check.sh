#!/usr/bin/env bash
# Device check for a GPU machine (written for an NVIDIA H200, no internet, Python 3.12 with
# torch (CUDA) and onnxruntime (CPU build); Node.js may be absent). Run from the repository root:
#
#   OUT=/some/dir bash bench/device-check.sh
#
# Prints and logs (to $OUT/log.txt): the machine; (a) PyTorch GPU throughput of ResMem-Net r50
# (model/ code, fp32, CUDA) at batch sizes 1, 16, 64; (b) when node and the built CLI exist:
# `memscore score --provider webgpu` on generated samples and the raw-model benchmark with the
# WebGPU provider. Every step has a timeout; the whole script stays under 6 minutes (340 s of
# step budget).
set -u
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
START=$(date +%s)

say() { echo "$@" | tee -a "$LOG"; }
# step TIMEOUT_S DESCRIPTION COMMAND...: runs COMMAND with a timeout, output to stdout and the log.
step() {
  local limit=$1 what=$2
  shift 2
  # The whole script must end within 6 minutes: a step gets at most what is left of 340 s.
  local left=$((340 - ($(date +%s) - START)))
  [ "$limit" -gt "$left" ] && limit=$left
  say ""
  if [ "$limit" -lt 5 ]; then
    say "=== $what: skipped, out of time ==="
    return
  fi
  say "=== $what (timeout ${limit}s) ==="
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "--- exit $rc after $(($(date +%s) - START)) s in total"
}

say "memscore device check, $(date -u +%FT%TZ), repo $ROOT, log $LOG"
step 5 "node" bash -c 'node --version || echo "no node"'
step 10 "GPUs" bash -c 'nvidia-smi -L || echo "no nvidia-smi"'
step 10 "Vulkan loader (WebGPU runs over Vulkan on Linux)" bash -c 'ldconfig -p | grep -i vulkan || echo "no Vulkan library in the ldconfig cache"'
step 10 "nvidia driver / Vulkan ICD files" bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1'
step 20 "python" "$PYTHON" -c '
import sys, torch
print(sys.version)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, ort.get_available_providers())
except ImportError as error:
    print(error)
'

# (a) PyTorch GPU throughput of r50, weights as build_model("r50", 0) (seeded init; not needed
# to be trained for a throughput figure). The model code was written for torch 1.13.
step 90 "(a) PyTorch r50 on CUDA, fp32" "$PYTHON" - <<'PY'
import os, sys, time
import torch
sys.path.insert(0, os.path.join(os.getcwd(), "model"))
from resmemnet import ResMemNet  # export.build_model also imports onnx; this is the same init

torch.manual_seed(0)
model = ResMemNet("r50").eval()
if not torch.cuda.is_available():
    sys.exit("CUDA is not available to torch")
dev = torch.device("cuda")
model = model.to(dev)
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
torch.backends.cudnn.benchmark = True
with torch.no_grad():
    for batch in (1, 16, 64):
        x = torch.randn(batch, 3, 224, 224, device=dev)
        for _ in range(5):  # warm-up (cudnn autotune)
            score, cam = model(x)
        torch.cuda.synchronize()
        runs, start = 0, time.perf_counter()
        while runs < 10 or time.perf_counter() - start < 3:
            score, cam = model(x)
            runs += 1
        torch.cuda.synchronize()
        dt = time.perf_counter() - start
        print(f"batch {batch:3d}: {runs * batch / dt:9.1f} images/s ({1000 * dt / runs:.2f} ms/batch, {runs} batches); "
              f"outputs score {tuple(score.shape)} gradcam {tuple(cam.shape)}")
PY

# (b) Node side, WebGPU provider.
if ! command -v node >/dev/null 2>&1; then
  say ""
  say "=== (b) skipped: no node on this machine ==="
elif [ ! -f packages/cli/dist/bin.js ] || [ ! -d node_modules/onnxruntime-node ]; then
  say ""
  say "=== (b) skipped: packages/cli/dist/bin.js or node_modules/onnxruntime-node missing (build with npm ci && npx tsc -b) ==="
else
  MODEL=model/build/resmemnet-r50.onnx
  if [ ! -f "$MODEL" ]; then
    mkdir -p "$OUT/model"
    step 60 "export r50 ONNX (needs the onnx package)" "$PYTHON" model/export.py --variant r50 --seed 0 --out "$OUT/model/resmemnet-r50.onnx"
    MODEL="$OUT/model/resmemnet-r50.onnx"
  fi
  if [ ! -f "$MODEL" ]; then
    MODEL=packages/worker/models/resmemnet-tiny.onnx
    say "r50 model unavailable: the WebGPU checks use the bundled tiny model ($MODEL)"
  fi
  step 20 "samples: 32 JPEGs of 640x480" "$PYTHON" - "$OUT/samples" <<'PY'
import os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(32):
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([(x * 255 // 640 + i * 37) % 256, y * 255 // 480, (x + y) * 128 // 1120], -1)
    img = (img + rng.integers(0, 32, img.shape)) % 256
    Image.fromarray(img.astype(np.uint8)).save(os.path.join(out, f"sample-{i:02d}.jpg"), quality=90)
print("wrote 32 samples to", out)
PY
  step 45 "(b1) memscore score --provider webgpu" bash -c \
    "MEMSCORE_LOG_LEVEL=info MEMSCORE_LOG_FORMAT=text node packages/cli/dist/bin.js score '$OUT/samples' --provider webgpu --model '$MODEL' --batch-size 16 --json > '$OUT/score-webgpu.jsonl'; rc=\$?; echo \"exit \$rc, \$(grep -c '\"score\"' '$OUT/score-webgpu.jsonl') images scored\"; head -c 600 '$OUT/score-webgpu.jsonl'; exit \$rc"
  step 60 "(b2) raw model throughput, provider webgpu" node bench/raw-model.mjs --provider webgpu --model "$MODEL" --batch-sizes 1,16,64 --seconds 12
  step 30 "(b3) raw model throughput, provider cpu, same model (for the ratio)" node bench/raw-model.mjs --provider cpu --model "$MODEL" --batch-sizes 16 --seconds 8
fi
say ""
say "done in $(($(date +%s) - START)) s; log: $LOG"
