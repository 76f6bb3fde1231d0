"""``adapruner stats``: parameters, MACs, memory, prefill latency, decode speed, sample generations.

With ``--model2`` both models are loaded into one process and their timed repeats are
interleaved, so the printed ratios (model2 / model) come from the same conditions. Latency is the
paper's Table 9 setting: batch 1, a 64-token input, median of ``--repeats`` runs after warm-up.
Writes the full result (including the protocol and per-layer widths) to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adapruner.commands.common import add_model_arg, add_runtime_args, seed_everything
from adapruner.core.io import check_writable, write_json_or_rescue
from adapruner.core.versions import versions
from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stats`` and its flags."""
    p = subparsers.add_parser("stats", help="parameters, MACs, memory, latency, tokens/s and sample generations",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--model2", default=None, help="a second model (e.g. the pruned one) measured side by side")
    p.add_argument("--out", default="stats.json", help="JSON output file (default stats.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--context", type=int, default=64, help="prompt tokens for latency (paper: 64)")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per model (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs per model")
    p.add_argument("--decode-steps", type=int, default=32, help="greedy tokens timed for decode tokens/s")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length of the sample generations")
    p.add_argument("--no-samples", action="store_true", help="skip the sample generations")
    add_runtime_args(p)
    return p


def _fmt_bytes(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def summary_table(result: dict) -> str:
    """A side-by-side text table of the headline numbers."""
    names = list(result["models"])
    rows = [
        ("parameters", lambda r: f"{r['parameters']:,}"),
        ("MACs/token", lambda r: f"{r['macs_per_token']['total'] / 1e6:.1f} M"),
        ("weights", lambda r: _fmt_bytes(r["weight_bytes"])),
        ("peak memory", lambda r: _fmt_bytes(r["peak_memory"]["bytes"])),
        ("prefill latency", lambda r: f"{r['prefill_latency_s'] * 1e3:.1f} ms"),
        ("decode", lambda r: f"{r['decode_tokens_per_s']:.1f} tok/s"),
    ]
    width = max(len(n) for n in names) + 2
    lines = ["".ljust(18) + "".join(n.ljust(max(width, 16)) for n in names)]
    for label, f in rows:
        lines.append(label.ljust(18) + "".join(f(result["models"][n]).ljust(max(width, 16)) for n in names))
    for n, r in (result.get("ratios") or {}).items():
        lines.append(f"ratios {n} / {r['vs']}: params {r['parameters']:.3f}, MACs {r['macs_per_token']:.3f}, "
                     f"peak memory {r['peak_memory']:.3f}, prefill speed-up {r['prefill_speedup']:.2f}x, "
                     f"decode speed-up {r['decode_speedup']:.2f}x")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Load one or two models, measure, print, write JSON."""

    from adapruner.eval.stats import TimingProtocol, measure
    from adapruner.models.load import load_model

    if args.context < 1 or args.repeats < 1 or args.decode_steps < 1 or args.warmup < 0 or args.max_new_tokens < 1:
        raise AdaprunerError("--context, --repeats, --decode-steps and --max-new-tokens must be >= 1 and --warmup >= 0")
    need = args.context + max(args.decode_steps, args.max_new_tokens)

    def check_context(limit: int | None, spec: str) -> None:
        if limit is not None and need > limit:
            raise AdaprunerError(f"--context {args.context} plus {max(args.decode_steps, args.max_new_tokens)} "
                                 f"generated tokens exceeds the context of {spec} ({limit} tokens); lower --context")

    from adapruner.eval.perplexity import max_context
    from adapruner.models.load import peek_context

    for spec in [args.model] + ([args.model2] if args.model2 else []):
        check_context(peek_context(spec), spec)  # before loading, where the config can be read
    out = Path(args.out)
    if out.is_dir():
        out = out / "stats.json"
    from adapruner.core.io import check_output

    check_output(out, [args.model, args.model2], overwrite=args.overwrite, may_lie_inside=True)
    check_writable(out)
    seed_everything(args.seed)
    specs = [args.model] + ([args.model2] if args.model2 else [])
    models, paths = {}, {}
    for i, spec in enumerate(specs):
        loaded = load_model(spec, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
        check_context(max_context(loaded.model), spec)
        name = spec if spec not in models else f"{spec} ({i + 1})"
        models[name] = (loaded.model, loaded.tokenizer)
        paths[name] = loaded.path
    protocol = TimingProtocol(context=args.context, decode_steps=args.decode_steps, warmup=args.warmup,
                              repeats=args.repeats, seed=args.seed)
    result = measure(models, protocol, samples=not args.no_samples, max_new_tokens=args.max_new_tokens)
    result["command"] = "stats"
    result["model_paths"] = paths
    result["versions"] = versions()
    write_json_or_rescue(out, result)
    print(summary_table(result))
    if not args.no_samples:
        for name, r in result["models"].items():
            for s in r["samples"]:
                print(f"[{name}] {s['prompt']}|{s['continuation']}")
    print(f"wrote {out}")
    return 0
