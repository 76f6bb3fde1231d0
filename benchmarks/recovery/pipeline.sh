#!/usr/bin/env bash
# Reproduces the "Recovery and evaluation" numbers of the README on a CPU:
# dense SmolLM2-135M zero-shot + PPL, 20 % pruning (element1), a CPU-sized LoRA recovery,
# the same evaluation before and after tuning, stats dense vs pruned in one process, and the report.
# Usage: bash benchmarks/recovery/pipeline.sh [OUT_DIR] [LIMIT] [PPL_WINDOWS]
set -euo pipefail
R=${1:-runs/recovery}
LIMIT=${2:-50}
WINDOWS=${3:-32}
export ADAPRUNER_DATA_DIR=${ADAPRUNER_DATA_DIR:-../shared/data}
EVAL="--tasks all --limit $LIMIT --ppl wikitext2,ptb --max-windows $WINDOWS --device cpu"
mkdir -p "$R/dense" "$R/p20" "$R/p20_lora"
time adapruner eval --model smollm2-135m $EVAL --out "$R/dense/eval.json"
time adapruner prune --model smollm2-135m --ratio 0.2 --metric element1 --out "$R/p20" --overwrite --device cpu
time adapruner finetune --model "$R/p20/model" --data "$ADAPRUNER_DATA_DIR/alpaca/alpaca_cleaned_sample2000.json" \
  --method lora --out "$R/p20_lora" --overwrite --max-steps 8 --batch-size 4 --micro-batch-size 4 \
  --lr 3e-4 --val-size 32 --device cpu
time adapruner eval --model "$R/p20/model" $EVAL --out "$R/p20/eval.json"
time adapruner eval --model "$R/p20_lora/model" $EVAL --out "$R/p20_lora/eval.json"
time adapruner stats --model smollm2-135m --model2 "$R/p20/model" --out "$R/p20/stats.json" --device cpu --repeats 5 --warmup 1 --decode-steps 8 --max-new-tokens 32
adapruner report "$R/dense" "$R/p20" "$R/p20_lora" --out "$R/report.md"
