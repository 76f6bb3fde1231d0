#!/usr/bin/env bash
# The full search space at one ratio: search (resumable: re-running continues the study), then
# the full WikiText-2 / PTB test perplexity of the delivered model. Results are copied into
# benchmarks/results/full_space/ (20 %) or full_space_r<PCT>/ (the study and the model stay in
# the scratch directory).
#   bash benchmarks/search/full_space.sh [TRIALS] [RATIO] [SPACE]   (default 30 trials at 0.2 in --space full;
#   a budget of 100 is the recorded one; SPACE may be a space file, e.g. benchmarks/search/spaces/reconstruct-sequential.json)
# The recorded 100-trial run (full_space/) started without the recipes; STARTS=recipes runs the
# search as a user gets it today (the recipes first, the default early stop) into full_space_default/:
#   STARTS=recipes bash benchmarks/search/full_space.sh 100
# VARIANT=NAME FLAGS="..." adds search flags and a suffix to the directories, e.g. the refinement of the best trial:
#   STARTS=recipes VARIANT=refine2 FLAGS="--refine-every 2" bash benchmarks/search/full_space.sh 100   # -> full_space_default_refine2/
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS="${1:-30}"
RATIO="${2:-0.2}"
SPACE="${3:-full}"
TAG=""; [ "$SPACE" = full ] || TAG="-$(basename "$SPACE" .json)"
STARTS="${STARTS:-none}"
START_FLAGS=(--no-starting-points)
if [ "$STARTS" = recipes ]; then START_FLAGS=(); TAG="${TAG}-default"; fi
read -r -a EXTRA <<< "${FLAGS:-}"
if [ -n "${VARIANT:-}" ]; then TAG="${TAG}-${VARIANT}"; fi
PCT=$(python -c "print(round(100 * $RATIO))")
DATA="${ADAPRUNER_DATA_DIR:-../shared/data}"
OUT="${ADAPRUNER_BENCH_DIR:-/tmp/adapruner-bench}/full-space-r${PCT}${TAG}-tpe-s0"
RES=benchmarks/results/full_space
[ "$PCT" = 20 ] || RES="${RES}_r${PCT}"
RES="${RES}${TAG//-default/_default}"
RES="${RES/%-${VARIANT:-}/_${VARIANT:-}}"
mkdir -p "$RES"
/usr/bin/time -v adapruner search --model smollm2-135m --ratio "$RATIO" --trials "$TRIALS" --space "$SPACE" "${START_FLAGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} --seed 0 \
    --out "$OUT" --data-dir "$DATA" 2> "$RES/search_stderr.txt"
cp "$OUT/trials.csv" "$OUT/best_config.json" "$OUT/pruning_report.json" "$RES/"
cp "$OUT/convergence.png" "$RES/convergence.png"
adapruner eval --model "$OUT/model" --ppl wikitext2,ptb --data-dir "$DATA" --out "$RES/eval_test.json" --overwrite
