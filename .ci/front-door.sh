#!/usr/bin/env bash
# The README's front door, run as a new user would after `npm ci && npm run build`: the main job
# (`npx memscore demo`) and local scoring (`npx memscore score --json` on the samples). Fails if
# either command fails or writes no outputs. Run by .ci/run once per tested Node version.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=packages/cli/samples
images=$(find "$samples" -name '*.jpg' | wc -l)
echo "ci: front door on node $(node --version), $images sample images"

rm -rf memscore-out
npx memscore demo
records=$(find memscore-out -name '*.jpg.json' | wc -l)
heatmaps=$(find memscore-out -name '*.jpg.heatmap.*' | wc -l)
tables=$(find memscore-out/_runs -name 'results.csv' | wc -l)
echo "ci: demo wrote $records records, $heatmaps heatmaps, $tables results table(s)"
if [ "$records" -ne "$images" ] || [ "$heatmaps" -ne "$images" ] || [ "$tables" -ne 1 ]; then
  echo "ci: the demo did not write one record and one heatmap per sample and a results table" >&2
  exit 1
fi

npx memscore score --json "$samples" >memscore-out/score.jsonl
scored=$(node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  console.log(lines.map((l) => JSON.parse(l)).filter((r) => Number.isFinite(r.score)).length);
' memscore-out/score.jsonl)
echo "ci: memscore score --json scored $scored of $images"
if [ "$scored" -ne "$images" ]; then
  echo "ci: memscore score did not score every sample" >&2
  exit 1
fi
