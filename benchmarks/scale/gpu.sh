#!/usr/bin/env bash
# One command for a lent GPU (about 5-8 minutes on an H100): the Llama-3.1-8B shape pruned at 20 %
# with element1, streamed on the GPU; prints and writes ($OUT/scale_gpu.json) the peak device memory
# (torch.cuda.max_memory_allocated) and the time, with the card's name.
#   run: bash benchmarks/scale/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHONPATH=src python3 benchmarks/scale/gpu.py "$@"
