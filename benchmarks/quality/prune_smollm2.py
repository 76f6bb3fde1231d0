"""SmolLM2-135M pruned 20 % with random and with L2 importance: size and WikiText-2 perplexity.

Runs ``adapruner prune`` once per metric, reloads each saved directory with a plain
``AutoModelForCausalLM.from_pretrained`` (after ``import adapruner``), and prints one table with
the dense model and both pruned models side by side: parameters, safetensors bytes, their ratio
to the dense model, and WikiText-2 test perplexity (128-token windows, LLM-Pruner protocol; the
first ``--windows`` windows, or all with ``--windows 0``):

    python benchmarks/quality/prune_smollm2.py --windows 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import transformers as T

import adapruner  # noqa: F401  (registers the pruned model types)
from adapruner.cli import main as cli
from adapruner.data.corpora import load_corpus
from adapruner.data.paths import resolve_data_dir
from adapruner.eval.perplexity import corpus_windows, perplexity
from adapruner.models.load import load_model
from adapruner.allocation import count_parameters


def safetensors_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--metrics", default="random,l2")
    parser.add_argument("--windows", type=int, default=256, help="WikiText-2 test windows (0 = all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="keep the pruned directories here (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    data_dir = resolve_data_dir(args.data_dir or str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    dense = load_model("smollm2-135m", device="cpu")
    windows = corpus_windows(dense.tokenizer, load_corpus("wikitext2", "test", data_dir), 128,
                             max_windows=args.windows or None)
    rows = []
    t = time.perf_counter()
    ppl = perplexity(dense.model, windows).ppl
    rows.append({"model": "dense", "params": count_parameters(dense.model),
                 "bytes": safetensors_bytes(Path(dense.path)), "ppl": ppl, "ppl_s": time.perf_counter() - t})
    del dense

    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="prune-smollm2-"))
    for metric in args.metrics.split(","):
        out = out_root / f"smollm2-{metric}-{int(args.ratio * 100)}"
        rc = cli(["prune", "--model", "smollm2-135m", "--ratio", str(args.ratio), "--metric", metric,
                  "--out", str(out), "--device", "cpu", "--overwrite"])
        if rc:
            raise SystemExit(rc)
        model = T.AutoModelForCausalLM.from_pretrained(out / "model").eval()  # transformers load
        report = json.loads((out / "pruning_report.json").read_text())
        t = time.perf_counter()
        ppl = perplexity(model, windows).ppl
        rows.append({"model": f"{metric} {args.ratio:.0%}", "params": count_parameters(model),
                     "bytes": safetensors_bytes(out / "model"), "ppl": ppl, "ppl_s": time.perf_counter() - t,
                     "checkpoint": report["checkpoint"]["model_type"]})

    base = rows[0]
    print(f"\nWikiText-2 test, {len(windows)} windows x 128 tokens; ratios are pruned / dense")
    print(f"{'model':<12} {'parameters':>12} {'ratio':>6} {'safetensors':>12} {'ratio':>6} {'PPL':>10}")
    for r in rows:
        print(f"{r['model']:<12} {r['params']:>12,} {r['params'] / base['params']:>6.3f} "
              f"{r['bytes'] / 2**20:>10.1f}Mi {r['bytes'] / base['bytes']:>6.3f} {r['ppl']:>10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"windows": len(windows), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
