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
run $P/table1.py --ratios 0.5 --tune no "$@"
run $P/table1.py --ratios 0.2 "$@"
run $P/table2.py "$@"
run $P/fig4.py "$@"
run $P/table1.py "$@"
python $P/render.py
exit $status
