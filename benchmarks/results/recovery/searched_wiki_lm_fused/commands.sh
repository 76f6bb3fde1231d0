set -e
cd /work/main
adapruner prune --model smollm2-135m --ratio 0.2 --config benchmarks/results/full_space/best_config.json --out /tmp/s20/searched20 --device cpu --data-dir ../shared/data
adapruner finetune --model /tmp/s20/searched20 --method distill --teacher smollm2-135m --batch-size 4 --lr 2e-4 --temperature 1 --lm-weight 0.5 --data books ../shared/data/alpaca/alpaca_cleaned_sample2000.json ../shared/data/ptb/ptb.train.txt /tmp/wiki/enwiki-sample.txt --text-field output --freeze-embeddings --max-minutes 20.0 --max-steps 100000 --eval-every 20 --val-windows 16 --seq-len 128 --warmup-steps 10 --mixed-precision bf16 --out /tmp/s20/distill --overwrite --device cpu --data-dir ../shared/data
adapruner eval --model /tmp/s20/distill --ppl wikitext2,ptb --tasks all --limit 500 --device cpu --data-dir ../shared/data --overwrite
echo DONE
