#!/usr/bin/env bash
# Every paper-table benchmark in priority order (what the open issues need first, cheapest first),
# then the README. Resumable: finished studies, builds and evaluations are skipped. Extra flags
# (e.g. --device cuda) go to every script.
#   bash benchmarks/paper/run_all.sh [FLAGS...]
set -uo pipefail
cd "$(dirname "$0")/../.."
P=benchmarks/paper
status=0
run() { python "$@" || status=1; python $P/render.py >/dev/null || true; }
run $P/fig4.py --seeds 0 "$@"                                    # TPE + random, 100 trials each
run $P/metrics.py "$@"                                           # every metric at 20 %, test PPL
run $P/table1.py --ratios 0.2 --tune no --methods adapruner,element1 --evals wikitext2,ptb "$@"
run $P/table1.py --ratios 0.2 --tune no "$@"                     # + zero-shot, + seeds of vector/element2
run $P/table9.py "$@"
run $P/table10.py "$@"
# What a 2-core CPU finishes in a few hours comes next: the 50 % rows and the searches of
# Table 2 / Fig. 4 seed 1 with a 30-trial budget (each compared with a 30-trial full search).
run $P/table1.py --ratios 0.5 --tune no --seeds 1 --trials 30 "$@"
run $P/table1.py --ratios 0.2 --tune yes "$@"                   # LoRA-recovered rows
run $P/table2.py --trials 30 --evals wikitext2,ptb "$@"
run $P/table2.py --trials 30 "$@"                                # + zero-shot
run $P/table1.py --ratios 0.5 --tune no --trials 30 "$@"         # + 50 % calibration seeds
run $P/fig4.py --seeds 1 "$@"                                    # second seed at the full 100 trials
run $P/table1.py --ratios 0.5 --tune yes --trials 30 "$@"        # LoRA-recovered 50 % rows
run $P/table2.py --trials 30 --ablations '' --table8 --evals wikitext2,ptb "$@"   # Table 8 rows
# The full budget (100 trials everywhere), for a GPU or a long CPU run.
run $P/table2.py "$@"
run $P/fig4.py "$@"
run $P/table1.py "$@"
python $P/render.py
exit $status
