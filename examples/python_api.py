"""adapruner from Python: prune SmolLM2-135M by 20 % with a recipe, evaluate it, load it back.

    ADAPRUNER_DATA_DIR=../shared/data python examples/python_api.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import adapruner

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "p20"

# The same pipeline as `adapruner prune --model smollm2-135m --ratio 0.2 --recipe flap-bias --out OUT`.
pruned = adapruner.prune("smollm2-135m", 0.2, recipe="flap-bias", out=out, device="cpu")
print(f"removed {pruned.report['ratio_achieved']:.1%} of the parameters; checkpoint in {pruned.model_dir}")

# Perplexity of the saved checkpoint on the first 8 windows of WikiText-2's test split.
scores = adapruner.evaluate(pruned.model_dir, ppl=["wikitext2"], max_windows=8, device="cpu")
print(f"WikiText-2 perplexity (8 windows): {scores.perplexity['wikitext2']:.1f}")

# The checkpoint is a transformers model (import adapruner first when its layers differ in width).
from transformers import AutoModelForCausalLM  # noqa: E402

model = AutoModelForCausalLM.from_pretrained(pruned.model_dir)
assert sum(p.numel() for p in model.parameters()) == pruned.report["parameters_after"]
