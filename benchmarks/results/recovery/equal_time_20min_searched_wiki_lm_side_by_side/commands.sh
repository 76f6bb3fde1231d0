set -e
cd /work/main
[ -d /tmp/s32/searched20 ] || adapruner prune --model smollm2-135m --ratio 0.2 --config benchmarks/results/full_space/best_config.json --out /tmp/s32/searched20 --device cpu --data-dir ../shared/data
python benchmarks/recovery/equal_time.py --data-dir ../shared/data --work /tmp/s32/work --minutes 20 --ratios "" --extra searched20=/tmp/s32/searched20 --mixed-precision bf16 --distill-lr 2e-4 --eval-every 20 --distill-batch-size=4 --distill-lm-weight=0.5 --distill-temperature=1 --distill-data books ../shared/data/alpaca/alpaca_cleaned_sample2000.json ../shared/data/ptb/ptb.train.txt /tmp/wiki/enwiki-sample.txt --distill-text-field=output --distill-freeze-embeddings --limit 500 --out benchmarks/results/recovery/equal_time_20min_searched_wiki_lm_side_by_side
echo DONE
