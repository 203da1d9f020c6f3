#!/usr/bin/env bash
# Device check for a lent GPU machine (written for one NVIDIA H200 with PyTorch and CUDA 13 /
# cuDNN 9 in its Python environment, no network, no Node.js). Two modes:
#
#   bash bench/device-check.sh pack        # here, after `npm ci && npm run build`
#   OUT=/some/dir bash bench/device-check.sh   # there, from the repository root
#
# pack writes .device/carry/ (ignored by git): the CUDA provider libraries (the pinned files of
# `npm run gpu:install`) and a runtime (node, redis-server and its libraries, node_modules without
# the development tools, the built packages, the Vulkan loader), each as tar.xz cut into parts of
# at most 52 MiB (under the device tool's 64 MiB per call), with SHA256SUMS. It prints the calls
# that carry the parts: one part per call, all but the last with a command that only lists them
# (a warm machine keeps what earlier calls carried), the last one running this script.
#
# The run verifies and reassembles the parts, then prints and logs (to $OUT/log.txt; ratios in
# $OUT/summary.json, every step's raw output in $OUT/results.tar.gz), most wanted first, so that
# what the budget cuts is the least wanted:
#   (t) the tiny model on the CPU provider, end to end with 1, 2, 4 and 8 pipeline threads: does
#       host work scale with cores (the 2-core machine cannot say);
#   (e) r50 end to end on the CUDA provider, one worker process, JPEG heatmaps and scores only,
#       and scores only with one ONNX Runtime CPU thread;
#   (b) onnxruntime-node's CUDA provider, raw, on the same weights: fp32 and fp16 models, batch
#       1, 16, 64, 128; whether `ep.cuda.cudnn_conv_algo_search` session entries reach it;
#   (a) PyTorch CUDA r50 throughput, fp32 and fp16, batch 1, 16, 64, 128, and at batch 64 with
#       cuDNN autotuning off and with TF32 off (what the CUDA provider's fixed options cost);
#   (c) the fp16 model's score and Grad-CAM error against fp32, both on the CUDA provider;
#   (d) the WebGPU provider, raw, same model;
# and the ratios: tiny N threads ÷ 1, CUDA provider ÷ PyTorch (goal ≥ 0.8 at batch 64), fp16 ÷
# fp32, WebGPU ÷ CUDA, end to end (goal ≥ 1,000 images/s) ÷ raw. Every step has a timeout and
# the whole run has a budget (BUDGET_S, default 420 s), so it ends inside one 10-minute call and
# leaves device time for the calls that carry the parts.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
CARRY="$ROOT/.device/carry"
RUN="$ROOT/.device/run"
PART_SIZE=52M

# ---------------------------------------------------------------------------------------------
# pack (here)
# ---------------------------------------------------------------------------------------------
pack() {
  set -e
  [ -f packages/cli/dist/bin.js ] || { echo "build first: npm ci && npm run build" >&2; exit 1; }
  mkdir -p "$CARRY"
  rm -f "$CARRY"/runtime.tar.xz.part-* "$CARRY/SHA256SUMS"
  PACK_STAGING="$(mktemp -d)"
  trap 'rm -rf "$PACK_STAGING"' EXIT
  local staging="$PACK_STAGING"

  # The provider libraries, verified against the pins by the install step itself. Compressing
  # 230 MB takes minutes: the parts are kept while the pins they were made from are the same.
  local pins
  pins="$(sha256sum infra/gpu/cuda-provider.lock.json | cut -d' ' -f1)"
  if [ "$(cat "$CARRY/provider.pins" 2>/dev/null)" != "$pins" ]; then
    rm -f "$CARRY"/provider.tar.xz.part-* "$CARRY/provider.pins"
    node infra/gpu/install-cuda-provider.mjs --dest "$staging/provider"
    tar -C "$staging/provider" -cf - libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so |
      xz -T0 -6 | split -b "$PART_SIZE" -d -a 2 - "$CARRY/provider.tar.xz.part-"
    echo "$pins" >"$CARRY/provider.pins"
  else
    echo "provider parts in $CARRY are from the current pins: kept"
  fi

  # node, and redis-server with the libraries a stock Ubuntu lacks (all non-libc ones, to be safe).
  mkdir -p "$staging/runtime/bin" "$staging/runtime/lib"
  cp "$(readlink -f "$(command -v node)")" "$staging/runtime/bin/node"
  cp "$(readlink -f "$(command -v redis-server)")" "$staging/runtime/lib/redis-server"
  ldd "$(command -v redis-server)" | awk '/=> \// {print $3}' |
    grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | xargs -r cp -L -t "$staging/runtime/lib"
  # The worker's JPEG codec (packages/worker/build, carried with the repository) links the
  # system's libjpeg-turbo (libjpeg.so.62), which an Ubuntu image may lack; without it every JPEG
  # goes through sharp at two to three times the CPU.
  [ -f packages/worker/build/jpeg-codec.node ] || { echo "no packages/worker/build/jpeg-codec.node: npm run build" >&2; exit 1; }
  mkdir -p "$staging/runtime/jpeg"
  ldd packages/worker/build/jpeg-codec.node | awk '/libjpeg/ {print $3}' | xargs -r cp -L -t "$staging/runtime/jpeg"
  # WebGPU (Dawn) reaches the GPU through the Vulkan loader; the GPU machine may not have it.
  (cd "$staging/runtime" && apt-get download libvulkan1 >/dev/null 2>&1) ||
    echo "note: apt-get download libvulkan1 failed (run apt-get update first); WebGPU then needs the machine's own loader"
  tar -C "$ROOT" -cf "$staging/repo.tar" \
    --exclude='node_modules/@biomejs' --exclude='node_modules/typescript' --exclude='node_modules/@rolldown' \
    --exclude='node_modules/rolldown' --exclude='node_modules/lightningcss*' --exclude='node_modules/vite' \
    --exclude='node_modules/vitest' --exclude='node_modules/@vitest' --exclude='node_modules/kubernetes-models' \
    --exclude='node_modules/@kubernetes-models' --exclude='node_modules/dpdm' --exclude='node_modules/@types' \
    --exclude='node_modules/.cache' --exclude='node_modules/@duckdb' --exclude='node_modules/playwright-core' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
    --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' \
    --exclude='libonnxruntime_providers_*.so' \
    node_modules packages/shared/dist packages/producer/dist packages/worker/dist packages/cli/dist \
    packages/worker/build
  tar -C "$staging" -rf "$staging/repo.tar" runtime
  xz -T0 -6 <"$staging/repo.tar" | split -b "$PART_SIZE" -d -a 2 - "$CARRY/runtime.tar.xz.part-"
  (cd "$CARRY" && sha256sum ./*.part-* >SHA256SUMS)
  set +e

  # One call carries the working tree (tracked and untracked files) plus its parts: at most 64 MiB.
  local tree_bytes cap
  tree_bytes=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  cap=$(((62 << 20) - tree_bytes))
  echo ""
  echo "carry plan: $(find "$CARRY" -name '*.part-*' | wc -l) parts, $(du -sh "$CARRY" | cut -f1) in all;" \
    "the working tree is $((tree_bytes >> 20)) MiB, so a call carries at most $((cap >> 20)) MiB of parts"
  local calls=() group="" group_bytes=0 part bytes
  for part in "$CARRY"/provider.tar.xz.part-* "$CARRY"/runtime.tar.xz.part-*; do
    bytes=$(stat -c %s "$part")
    if [ -n "$group" ] && [ $((group_bytes + bytes)) -gt "$cap" ]; then
      calls+=("$group|$group_bytes")
      group="" group_bytes=0
    fi
    group="${group:+$group, }\".device/carry/$(basename "$part")\""
    group_bytes=$((group_bytes + bytes))
  done
  calls+=("$group, \".device/carry/SHA256SUMS\"|$group_bytes")
  local i=0 n=${#calls[@]} entry
  for entry in "${calls[@]}"; do
    i=$((i + 1))
    if [ "$i" -lt "$n" ]; then
      echo "  call $i: carry [${entry%|*}] ($((${entry#*|} >> 20)) MiB), command: ls -la .device/carry"
    else
      echo "  call $i: carry [${entry%|*}] ($((${entry#*|} >> 20)) MiB), command: bash bench/device-check.sh, timeout_s 600"
    fi
  done
  echo "  (one call after another, so the machine stays warm and keeps what the earlier calls carried)"
}

if [ "${1:-}" = "pack" ]; then
  pack
  exit $?
fi
if [ -n "${1:-}" ]; then
  echo "usage: bash bench/device-check.sh [pack]" >&2
  exit 2
fi

# ---------------------------------------------------------------------------------------------
# run (on the GPU machine)
# ---------------------------------------------------------------------------------------------
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT" "$RUN/results" "$RUN/models"
LOG="$OUT/log.txt"
: >"$LOG"
RESULTS="$RUN/results"
PYTHON="${PYTHON:-python3}"
BUDGET_S="${BUDGET_S:-420}"
START=$(date +%s)

say() { echo "$@" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
# step TIMEOUT_S NAME COMMAND...: runs COMMAND with at most TIMEOUT_S (and what is left of the
# budget), output to stdout and the log; returns the command's exit status. A shell function
# runs as `bash -c NAME` after `export -f NAME` (timeout runs programs, not functions).
step() {
  local limit=$1 what=$2
  shift 2
  local remaining
  remaining=$(left)
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  say ""
  if [ "$limit" -lt 5 ]; then
    say "=== $what: skipped, out of time ==="
    return 124
  fi
  say "=== $what (timeout ${limit}s) ==="
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "--- exit $rc after $(($(date +%s) - START)) s in total"
  return "$rc"
}

say "memscore device check, $(date -u +%FT%TZ), repo $ROOT, budget ${BUDGET_S}s, log $LOG"

# Reassemble what pack carried (each part's sha256 first: a part from an earlier, different pack
# must not be mixed in).
reassemble() {
  set -o pipefail
  (cd "$CARRY" && sha256sum -c SHA256SUMS) || return 1
  cat "$CARRY"/runtime.tar.xz.part-* | xz -d | tar -C "$ROOT" -xf - || return 1
  mkdir -p "$RUN" && rm -rf "$RUN/runtime" && mv "$ROOT/runtime" "$RUN/runtime"
  local ort="$ROOT/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
  cat "$CARRY"/provider.tar.xz.part-* | xz -d | tar -C "$ort" -xf - || return 1
  # redis-server through a wrapper that finds its carried libraries.
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$RUN/runtime/lib" "$RUN/runtime/lib/redis-server" \
    >"$RUN/runtime/bin/redis-server"
  chmod +x "$RUN/runtime/bin/redis-server"
  for deb in "$RUN"/runtime/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" "$RUN/vulkan"; done
  ls -la "$ort"
}
export -f reassemble
export ROOT CARRY RUN RESULTS
if [ -f "$CARRY/SHA256SUMS" ]; then
  step 120 "reassemble the carried parts" bash -c reassemble || { say "reassembly failed: nothing else can run"; exit 1; }
fi
export PATH="$RUN/runtime/bin:$PATH"

# CUDA 13 and cuDNN 9 from the Python environment's NVIDIA wheels (site-packages/nvidia/*/lib).
NVIDIA_LIBS="$("$PYTHON" -c '
import glob, os, site
dirs = []
for base in site.getsitepackages():
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
print(":".join(dirs))' 2>/dev/null)"
export LD_LIBRARY_PATH="${NVIDIA_LIBS:+$NVIDIA_LIBS:}$RUN/runtime/jpeg${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -d "$RUN/vulkan/usr/lib/x86_64-linux-gnu" ] && VULKAN_LIBS="$RUN/vulkan/usr/lib/x86_64-linux-gnu" || VULKAN_LIBS=""
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES="$ICD"

step 20 "machine" bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "no nvidia-smi";
  echo "cores: $(nproc)"; node --version || echo "no node"; redis-server --version || echo "no redis-server";
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"'
step 30 "python" "$PYTHON" -c '
import sys, torch
print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("cudnn", torch.backends.cudnn.version())'
# STEPS: the letters of the steps to run (default all), e.g. STEPS="t e" for a short second call.
STEPS="${STEPS:-t e b a c d}"
want() { [[ " $STEPS " == *" $1 "* ]]; }
step 20 "the worker's native JPEG codec" node --input-type=module -e '
  const w = await import("@memscore/worker");
  console.log(w.jpegCodecProblem ?? "loads: JPEGs are decoded and encoded by libjpeg-turbo");
  process.exit(w.jpegCodecProblem ? 1 : 0);'
step 30 "CUDA provider: pinned files, and every library it loads" bash -c '
  node infra/gpu/install-cuda-provider.mjs --check &&
  node --input-type=module -e "
    const w = await import(\"@memscore/worker\");
    const problem = w.cudaProviderProblem();
    console.log(problem ?? \"every library the CUDA provider needs loads here\");
    process.exit(problem ? 1 : 0);"'

# (t) Does host work scale with cores? The tiny model (inference nearly free) on the CPU provider,
# end to end with 1, 2, 4 and 8 pipeline threads, JPEG heatmaps; the S3 server in several
# processes (bench/lib/bench-services.mjs) so that it does not set the pace.
tiny_scaling() {
  local n rc=0
  for n in 1 2 4 8; do
    node bench/end-to-end.mjs --model packages/worker/models/resmemnet-tiny.onnx --images 2048 --distinct-images 512 \
      --batch-size 16 --threads 4 --pipeline-threads "$n" --json >"$RESULTS/tiny-$n.json" 2>"$RESULTS/tiny-$n.err" ||
      { rc=$?; tail -15 "$RESULTS/tiny-$n.err"; continue; }
    node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
      const one = process.argv[2] ? JSON.parse(require("fs").readFileSync(process.argv[2])) : r;
      const c = r.cpuMsPerImage;
      const busy = (c.workerProcess + c.producer + (c.s3Server ?? 0)) / c.available;
      console.log(`${r.pipelineThreads} pipeline threads: ${r.imagesPerSecond.toFixed(1)} images/s (÷ 1 thread: ${(r.imagesPerSecond / one.imagesPerSecond).toFixed(2)}); ` +
        `worker CPU ${c.workerProcess.toFixed(2)} ms/image (outside inference ${c.outsideInference.toFixed(2)}, main thread ${c.byThread.main.toFixed(2)}); ` +
        `S3 server ${c.s3Server.toFixed(2)} ms/image in ${r.s3Processes} processes; cores busy ${(100 * busy).toFixed(0)}%; ${r.scored} scored, ${r.failed} failed; JPEG codec ${r.jpegCodec}`);
    ' "$RESULTS/tiny-$n.json" "$([ "$n" != 1 ] && [ -s "$RESULTS/tiny-1.json" ] && echo "$RESULTS/tiny-1.json")"
  done
  return $rc
}
export -f tiny_scaling
want t && step 150 "(t) tiny model on the CPU provider: end to end with 1, 2, 4, 8 pipeline threads" bash -c tiny_scaling

# Same weights for every engine: seed 0, exported here by model/export.py.
FP32="$RUN/models/resmemnet-r50.onnx"
FP16="$RUN/models/resmemnet-r50-fp16.onnx"
export FP32 FP16
{ want e || want b || want a || want c || want d; } && step 60 "export r50 fp32" "$PYTHON" model/export.py --variant r50 --seed 0 --out "$FP32"

# (e) end to end, one worker process (16 pipeline threads, the default), CUDA provider, r50:
# JPEG heatmaps, then scores only; then scores only with one ONNX Runtime CPU thread instead of
# 16 (a CUDA session's CPU pool runs the nodes left on the CPU, beside 16 busy pipeline threads).
e2e() {
  local run format threads name rc=0
  # format:ONNX Runtime CPU threads (empty: the default, one per core)
  for run in jpeg: none: none:1; do
    format="${run%%:*}" threads="${run##*:}" name="e2e-$format${threads:+-ort$threads}"
    UV_THREADPOOL_SIZE=16 node bench/end-to-end.mjs --provider cuda --model "$FP32" --images 4096 --distinct-images 512 \
      --batch-size 64 ${threads:+--threads "$threads"} --heatmap-format "$format" --json >"$RESULTS/$name.json" 2>"$RESULTS/$name.err" ||
      { rc=$?; tail -15 "$RESULTS/$name.err"; continue; }
    node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
      const c = r.cpuMsPerImage;
      const engineMs = (1000 * r.seconds * r.engineBusyShare) / r.batches;
      console.log(`${r.heatmapFormat}, ${r.inputs?.threads ?? process.argv[2]} ONNX Runtime CPU threads: ${r.imagesPerSecond.toFixed(1)} images/s on ${r.provider}, ${r.pipelineThreads} pipeline threads; batch fill ${r.meanBatchFill.toFixed(2)}, engine busy ${(100 * r.engineBusyShare).toFixed(0)}%, ${engineMs.toFixed(0)} ms per batch; ` +
        `worker CPU ${c.workerProcess.toFixed(2)} ms/image (inference thread ${c.byThread.inference.toFixed(2)}, outside inference ${c.outsideInference.toFixed(2)}, main thread ${c.byThread.main.toFixed(2)}); ` +
        `S3 server ${c.s3Server.toFixed(2)} ms/image in ${r.s3Processes} processes; cores × time ${c.available.toFixed(2)} ms/image; ${r.scored} scored, ${r.failed} failed; ${r.paddedRows} padding rows; JPEG codec ${r.jpegCodec}`);
    ' "$RESULTS/$name.json" "${threads:-$(nproc)}"
  done
  return $rc
}
export -f e2e
want e && step 240 "(e) end to end, one worker process, CUDA provider, r50" bash -c e2e

# (b) the CUDA provider, raw: pre-decoded tensors through ModelRuntime.run.
want b && step 70 "(b1) CUDA provider, raw, fp32" bash -c "node bench/raw-model.mjs --provider cuda --model '$FP32' \
  --batch-sizes 1,16,64,128 --seconds 12 --json > '$RESULTS/raw-cuda-fp32.json'; rc=\$?; \
  [ -s '$RESULTS/raw-cuda-fp32.json' ] && node -e 'for (const r of JSON.parse(require(\"fs\").readFileSync(process.argv[1])).results) console.log(\"batch\", r.batchSize, r.imagesPerSecond.toFixed(1), \"images/s\")' '$RESULTS/raw-cuda-fp32.json'; exit \$rc"


# (a) PyTorch on CUDA, model/ code, same weights.
want a && step 100 "(a) PyTorch r50 on CUDA" env RESULTS="$RESULTS" "$PYTHON" - <<'PY'
import json, os, sys, time
import torch
sys.path.insert(0, os.path.join(os.getcwd(), "model"))
from resmemnet import ResMemNet

if not torch.cuda.is_available():
    sys.exit("CUDA is not available to torch")
torch.manual_seed(0)
base = ResMemNet("r50").eval().cuda()
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
rows = []

def measure(model, batch, dtype, label, seconds=2.0):
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        runs, start = 0, time.perf_counter()
        while runs < 5 or time.perf_counter() - start < seconds:
            model(x)
            runs += 1
        torch.cuda.synchronize()
    ips = runs * batch / (time.perf_counter() - start)
    rows.append({"engine": "pytorch", "variant": label, "batch": batch, "imagesPerSecond": ips})
    print(f"{label:28s} batch {batch:3d}: {ips:9.1f} images/s")

torch.backends.cudnn.benchmark = True
for batch in (1, 16, 64, 128):
    measure(base, batch, torch.float32, "fp32")
half = ResMemNet("r50").eval().cuda()
half.load_state_dict(base.state_dict())
half = half.half()
for batch in (1, 16, 64, 128):
    measure(half, batch, torch.float16, "fp16")
torch.backends.cudnn.benchmark = False
measure(base, 64, torch.float32, "fp32, cudnn.benchmark off")
torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
measure(base, 64, torch.float32, "fp32, TF32 off")
json.dump(rows, open(os.path.join(os.environ["RESULTS"], "pytorch.json"), "w"), indent=1)
PY


{ want b || want c; } && step 60 "export r50 fp16" "$PYTHON" model/export.py --variant r50 --seed 0 --precision fp16 --out "$FP16"
want b && step 60 "(b2) CUDA provider, raw, fp16" bash -c "node bench/raw-model.mjs --provider cuda --model '$FP16' \
  --batch-sizes 1,16,64,128 --seconds 12 --json > '$RESULTS/raw-cuda-fp16.json'; rc=\$?; \
  [ -s '$RESULTS/raw-cuda-fp16.json' ] && node -e 'for (const r of JSON.parse(require(\"fs\").readFileSync(process.argv[1])).results) console.log(\"batch\", r.batchSize, r.imagesPerSecond.toFixed(1), \"images/s\")' '$RESULTS/raw-cuda-fp16.json'; exit \$rc"


# (c) fp16 against fp32, both on the CUDA provider, on generated photographs-like JPEGs.
fp16_error() {
  node --input-type=module -e "
    import sharp from 'sharp';
    import { mkdirSync } from 'node:fs';
    mkdirSync('$RUN/samples', { recursive: true });
    for (let i = 0; i < 32; i++) {
      const raw = Buffer.alloc(640 * 480 * 3);
      for (let p = 0; p < raw.length; p++) raw[p] = (p * (i + 3) + (p >> 11) * 7) & 255;
      await sharp(raw, { raw: { width: 640, height: 480, channels: 3 } }).blur(2).jpeg().toFile('$RUN/samples/s' + i + '.jpg');
    }" || return 1
  node packages/cli/dist/bin.js score "$RUN/samples" --provider cuda --model "$FP32" --batch-size 32 --json >"$RESULTS/score-fp32.jsonl" || return 1
  node packages/cli/dist/bin.js score "$RUN/samples" --provider cuda --model "$FP16" --batch-size 32 --json >"$RESULTS/score-fp16.jsonl" || return 1
  node -e '
    const fs = require("fs");
    const read = (p) => fs.readFileSync(p, "utf8").trim().split("\n").map(JSON.parse);
    const a = read(process.argv[1]), b = read(process.argv[2]);
    let score = 0, cam = 0;
    a.forEach((x, i) => {
      score = Math.max(score, Math.abs(x.score - b[i].score));
      x.gradcam.flat().forEach((v, k) => { cam = Math.max(cam, Math.abs(v - b[i].gradcam.flat()[k])); });
    });
    const out = { images: a.length, maxScoreError: score, maxGradcamCellError: cam };
    fs.writeFileSync(process.argv[3], JSON.stringify(out));
    console.log(out);' "$RESULTS/score-fp32.jsonl" "$RESULTS/score-fp16.jsonl" "$RESULTS/fp16-error.json"
}
export -f fp16_error
want c && step 60 "(c) fp16 against fp32 on the CUDA provider (32 JPEGs)" bash -c fp16_error

# Whether session config entries reach the CUDA provider: onnxruntime-node's binding passes only
# deviceId, so cuDNN's convolution search stays EXHAUSTIVE unless these entries are honoured.
conv_search() {
  # Under the repository root, so that onnxruntime-node resolves from its node_modules.
  cat >"$RUN/conv-search.mjs" <<'JS'
import { writeFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
const [model, out] = process.argv.slice(2);
const batch = 64;
const input = new ort.Tensor("float32", new Float32Array(batch * 3 * 224 * 224).fill(0.1), [batch, 3, 224, 224]);
const rows = [];
for (const search of [undefined, "EXHAUSTIVE", "HEURISTIC", "DEFAULT"]) {
  const extra = search ? { ep: { cuda: { cudnn_conv_algo_search: search } } } : {};
  const created = performance.now();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [{ name: "cuda" }],
    graphOptimizationLevel: "all",
    extra,
  });
  const first = performance.now();
  await session.run({ image: input });
  const firstRunMs = performance.now() - first;
  let runs = 0;
  const start = performance.now();
  while (runs < 5 || performance.now() - start < 3000) {
    await session.run({ image: input });
    runs++;
  }
  const imagesPerSecond = (runs * batch * 1000) / (performance.now() - start);
  rows.push({ search: search ?? "(not set)", createMs: first - created, firstRunMs, imagesPerSecond });
  console.log(`${search ?? "(not set)"}: first run ${firstRunMs.toFixed(0)} ms, then ${imagesPerSecond.toFixed(1)} images/s`);
  await session.release();
}
writeFileSync(out, JSON.stringify(rows));
JS
  node "$RUN/conv-search.mjs" "$FP32" "$RESULTS/conv-search.json"
}
export -f conv_search
want b && step 60 "(b3) ep.cuda.cudnn_conv_algo_search session entries, batch 64" bash -c conv_search

# (d) WebGPU provider (Dawn over Vulkan), same model.
want d && step 60 "(d) WebGPU provider, raw, fp32" bash -c "LD_LIBRARY_PATH='${VULKAN_LIBS:+$VULKAN_LIBS:}$LD_LIBRARY_PATH' \
  node bench/raw-model.mjs --provider webgpu --model '$FP32' --batch-sizes 16,64 --seconds 8 --json > '$RESULTS/raw-webgpu.json'; rc=\$?; \
  [ -s '$RESULTS/raw-webgpu.json' ] && node -e 'for (const r of JSON.parse(require(\"fs\").readFileSync(process.argv[1])).results) console.log(\"batch\", r.batchSize, r.imagesPerSecond.toFixed(1), \"images/s\")' '$RESULTS/raw-webgpu.json'; exit \$rc"

# Ratios, from whatever ran.
step 20 "summary" "$PYTHON" - "$RESULTS" "$OUT/summary.json" <<'PY'
import json, os, sys
results, out = sys.argv[1], sys.argv[2]

def load(name):
    try:
        with open(os.path.join(results, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def raw(name):
    data = load(name)
    return {r["batchSize"]: r["imagesPerSecond"] for r in data["results"]} if data else {}

torch_rows = load("pytorch.json") or []
pt = {(r["variant"], r["batch"]): r["imagesPerSecond"] for r in torch_rows}
cuda32, cuda16, webgpu = raw("raw-cuda-fp32.json"), raw("raw-cuda-fp16.json"), raw("raw-webgpu.json")
KEEP = ("imagesPerSecond", "pipelineThreads", "s3Processes", "jpegCodec", "scored", "failed", "meanBatchFill", "paddedRows", "engineBusyShare", "cpuMsPerImage")
brief = lambda run: run and {k: run.get(k) for k in KEEP}
e2e = {fmt: load(f"e2e-{fmt}.json") for fmt in ("jpeg", "none", "none-ort1")}
tiny = {n: load(f"tiny-{n}.json") for n in (1, 2, 4, 8)}
summary = {"pytorch": torch_rows, "cudaFp32": cuda32, "cudaFp16": cuda16, "webgpu": webgpu,
           "e2e": {fmt: brief(run) for fmt, run in e2e.items()},
           "tinyByPipelineThreads": {n: brief(run) for n, run in tiny.items()},
           "fp16Error": load("fp16-error.json"), "convSearch": load("conv-search.json"), "ratios": {}}
ratios = summary["ratios"]
for batch in (1, 16, 64, 128):
    if batch in cuda32 and ("fp32", batch) in pt:
        ratios[f"cuda fp32 / pytorch fp32, batch {batch}"] = cuda32[batch] / pt[("fp32", batch)]
    if batch in cuda16 and batch in cuda32:
        ratios[f"cuda fp16 / cuda fp32, batch {batch}"] = cuda16[batch] / cuda32[batch]
    if batch in cuda16 and ("fp16", batch) in pt:
        ratios[f"cuda fp16 / pytorch fp16, batch {batch}"] = cuda16[batch] / pt[("fp16", batch)]
    if batch in webgpu and batch in cuda32:
        ratios[f"webgpu / cuda fp32, batch {batch}"] = webgpu[batch] / cuda32[batch]
if ("fp32, cudnn.benchmark off", 64) in pt:
    ratios["pytorch fp32 batch 64: cudnn.benchmark off / on"] = pt[("fp32, cudnn.benchmark off", 64)] / pt[("fp32", 64)]
if ("fp32, TF32 off", 64) in pt:
    ratios["pytorch fp32 batch 64: TF32 off / on"] = pt[("fp32, TF32 off", 64)] / pt[("fp32", 64)]
for fmt, run in e2e.items():
    if run and cuda32:
        ratios[f"end to end ({fmt}) / best raw cuda fp32"] = run["imagesPerSecond"] / max(cuda32.values())
for n, run in tiny.items():
    if n != 1 and run and tiny[1]:
        ratios[f"tiny, cpu: {n} pipeline threads / 1"] = run["imagesPerSecond"] / tiny[1]["imagesPerSecond"]
for name, value in ratios.items():
    print(f"{name:50s} {value:7.3f}")
for fmt, run in e2e.items():
    if run:
        print(f"{f'end to end ({fmt}), images/s (goal >= 1000)':50s} {run['imagesPerSecond']:7.1f}")
with open(out, "w") as f:
    json.dump(summary, f, indent=1)
PY

tar -C "$RESULTS" -czf "$OUT/results.tar.gz" . 2>/dev/null
say ""
say "done in $(($(date +%s) - START)) s; log: $LOG, ratios: $OUT/summary.json"
