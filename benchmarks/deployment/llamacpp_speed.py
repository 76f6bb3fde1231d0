"""llama.cpp speed and fidelity of exported GGUF files: dense SmolLM2-135M vs 20 % pruned models.

Three models, each exported to f32 and q8_0 with ``adapruner export``:
dense; ``uniform`` (FLAP + bias compensation, every layer the same widths: llama.cpp's ``llama``
architecture); ``global`` (FLAP + bias compensation, global allocation: per-layer widths, ``deci``).
All six files are loaded in one process and measured in interleaved rounds (a round times every
file once), so load drifting over time skews none of them: prefill tokens/s of a 128-token prompt
and greedy decode tokens/s over 64 tokens, medians over rounds, ratios vs dense of the same type.
Fidelity: mean next-token NLL of 16 WikiText-2 test windows (seq 128) in llama.cpp (default f16 KV
cache) against transformers on the same token ids.

    python benchmarks/deployment/llamacpp_speed.py --data-dir ../shared/data

Resumable: pruned checkpoints and GGUF files in ``--work`` are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# Channels rounded to 32 so that every q8_0 matrix quantizes (rows of 32k values; others stay f16).
MODELS = {
    "uniform": ["--metric", "flap", "--update", "bias", "--layers", "0:30", "--allocation-option", "equal=true",
                "--round-to", "32"],
    "global": ["--metric", "flap", "--update", "bias", "--mode", "global", "--round-to", "32"],
}
OUTTYPES = ("f32", "q8_0")


def main() -> int:
    import torch
    import transformers as T

    import adapruner  # noqa: F401
    from adapruner.cli import main as cli
    from adapruner.core.io import write_json, write_text
    from adapruner.core.versions import versions
    from adapruner.data.corpora import load_wikitext2
    from adapruner.data.tokens import cut_windows, encode, leading_bos
    from adapruner.export import export_gguf
    from adapruner.export.gguf import resolve_checkpoint
    from adapruner.export.llamacpp import mean_nll, measure_speed, open_gguf

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--work", default="/tmp/adapruner-bench/llamacpp")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--decode", type=int, default=64)
    p.add_argument("--out", default="benchmarks/results/llamacpp")
    args = p.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)

    checkpoints = {"dense": resolve_checkpoint("smollm2-135m")}
    for name, flags in MODELS.items():
        if not (work / name / "model" / "config.json").is_file():
            rc = cli(["prune", "--model", "smollm2-135m", "--ratio", "0.2", "--seed", "0", "--device", "cpu",
                      "--data-dir", args.data_dir, *flags, "--out", str(work / name), "--overwrite"])
            if rc:
                return rc
        checkpoints[name] = work / name / "model"
    files = {}
    for name, ckpt in checkpoints.items():
        for outtype in OUTTYPES:
            path = work / f"{name}-{outtype}.gguf"
            if not path.is_file():
                export_gguf(ckpt, path, outtype=outtype)
            files[(name, outtype)] = path

    tok = T.AutoTokenizer.from_pretrained(checkpoints["dense"])
    ids = encode(tok, "\n\n".join(load_wikitext2(args.data_dir, "test")[:400]))
    windows = cut_windows(ids, 128, leading_bos(tok))[:16]
    reference = {}
    for name, ckpt in checkpoints.items():
        model = T.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = torch.cat([model(w[None]).logits for w in windows])[:, :-1]
        reference[name] = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                            windows[:, 1:].reshape(-1)).item()
        del model
    rows = [w.tolist() for w in windows]
    prompt = ids[: args.prompt]

    results = {key: {"prefill": [], "decode": []} for key in files}
    from contextlib import ExitStack

    with ExitStack() as stack:
        fidelity = {}
        for key, path in files.items():
            with open_gguf(path, n_ctx=256) as llm:
                nll = mean_nll(llm, rows)
            fidelity[key] = {"nll_llama_cpp": nll, "nll_transformers": reference[key[0]],
                             "relative_difference": (nll - reference[key[0]]) / reference[key[0]]}
        llms = {key: stack.enter_context(open_gguf(path, n_ctx=args.prompt + args.decode + 8, all_logits=False))
                for key, path in files.items()}
        for r in range(args.rounds):
            for key, llm in llms.items():
                speed = measure_speed(llm, prompt, args.decode, repeats=1)
                results[key]["prefill"].append(speed.prefill_tokens_per_s)
                results[key]["decode"].append(speed.decode_tokens_per_s)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    table = []
    for (name, outtype), r in results.items():
        dense = results[("dense", outtype)]
        pre, dec = statistics.median(r["prefill"]), statistics.median(r["decode"])
        table.append({
            "model": name, "outtype": outtype, "file_mib": files[(name, outtype)].stat().st_size / 2**20,
            "prefill_tokens_per_s": pre, "decode_tokens_per_s": dec,
            "prefill_vs_dense": pre / statistics.median(dense["prefill"]),
            "decode_vs_dense": dec / statistics.median(dense["decode"]),
            **fidelity[(name, outtype)],
        })
    record = {"protocol": {"prompt_tokens": args.prompt, "decode_tokens": args.decode, "rounds": args.rounds,
                           "threads": torch.get_num_threads(), "nll_windows": 16, "seq_len": 128,
                           "kv_cache": "f16 (llama.cpp default)"},
              "rows": table, "versions": versions("llama_cpp", "gguf"), "date": time.strftime("%Y-%m-%d")}
    write_json(out / "speed.json", record)
    lines = ["| model | type | file | prefill tok/s | decode tok/s | prefill vs dense | decode vs dense | "
             "NLL llama.cpp / transformers |", "|---|---|---|---|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['model']} | {t['outtype']} | {t['file_mib']:.0f} MiB | {t['prefill_tokens_per_s']:.0f} | "
                     f"{t['decode_tokens_per_s']:.1f} | {t['prefill_vs_dense']:.2f}x | {t['decode_vs_dense']:.2f}x | "
                     f"{t['nll_llama_cpp']:.4f} / {t['nll_transformers']:.4f} ({100 * t['relative_difference']:+.2f} %) |")
    write_text(out / "speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
