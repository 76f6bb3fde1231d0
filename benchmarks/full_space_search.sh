#!/usr/bin/env bash
# The full search space at 20 %: search (resumable: re-running continues the study), then the
# full WikiText-2 / PTB test perplexity of the delivered model. Results are copied into
# benchmarks/results/full_space/ (the study and the model stay in the scratch directory).
#   bash benchmarks/full_space_search.sh [TRIALS]   (default 30; the issue's budget is 100)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS="${1:-30}"
DATA="${ADAPRUNER_DATA_DIR:-../shared/data}"
OUT="${ADAPRUNER_BENCH_DIR:-/tmp/adapruner-bench}/full-space-r20-tpe-s0"
RES=benchmarks/results/full_space
mkdir -p "$RES"
/usr/bin/time -v adapruner search --model smollm2-135m --ratio 0.2 --trials "$TRIALS" --space full --seed 0 \
    --out "$OUT" --data-dir "$DATA" 2> "$RES/search_stderr.txt"
cp "$OUT/trials.csv" "$OUT/best_config.json" "$OUT/pruning_report.json" "$RES/"
cp "$OUT/convergence.png" "$RES/convergence.png"
adapruner eval --model "$OUT/model" --ppl wikitext2,ptb --data-dir "$DATA" --out "$RES/eval_test.json"
