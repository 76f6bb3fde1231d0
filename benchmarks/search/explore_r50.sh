#!/usr/bin/env bash
# 50 % hand exploration around the searched 20 % configuration: what the transfer gets wrong.
# Each variant is pruned with `adapruner prune --config best_config.json --ratio 0.5` plus the
# flags below and scored on the first 64 WikiText-2 *validation* windows (never a test split);
# resumable (finished variants are skipped). Results: benchmarks/results/full_space_r50/explore.tsv
#   bash benchmarks/search/explore_r50.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
DATA="${ADAPRUNER_DATA_DIR:-../shared/data}"
B="${ADAPRUNER_BENCH_DIR:-/tmp/adapruner-bench}/explore50"
RES=benchmarks/results/full_space_r50
CFG=benchmarks/results/full_space/best_config.json
mkdir -p "$B" "$RES"
echo -e "variant\tflags\tvalid_ppl_64\tprune_s" > "$RES/explore.tsv.tmp"
ppl() { python -c "import json,sys; print(round(json.load(open(sys.argv[1]))['perplexity'][0]['ppl'], 1))" "$1"; }
run() {
  local name=$1; shift
  if [ ! -f "$B/$name/eval.json" ]; then
    local t0; t0=$(date +%s)
    adapruner prune --model smollm2-135m --ratio 0.5 --config "$CFG" --out "$B/$name" --overwrite \
      --data-dir "$DATA" --device cpu "$@" > "$B/$name.log" 2>&1 || { echo "$name failed: $(tail -1 "$B/$name.log")"; return; }
    echo $(( $(date +%s) - t0 )) > "$B/$name.prune_s"
    adapruner eval --model "$B/$name" --ppl wikitext2 --split valid --max-windows 64 --data-dir "$DATA" \
      --device cpu --out "$B/$name/eval.json" --overwrite >> "$B/$name.log" 2>&1 || { echo "$name: eval failed"; return; }
  fi
  echo -e "$name\t$*\t$(ppl "$B/$name/eval.json")\t$(cat "$B/$name.prune_s" 2>/dev/null)" | tee -a "$RES/explore.tsv.tmp"
}
run transfer
run transfer-seq256 --update-option mode=sequential
run uni-wanda-os256 --mode uniform
run uni-wanda-seq256 --mode uniform --update-option mode=sequential
run uni-wanda-seq256-bias --mode uniform --update-option mode=sequential --update-option bias=true
mv "$RES/explore.tsv.tmp" "$RES/explore.tsv"
