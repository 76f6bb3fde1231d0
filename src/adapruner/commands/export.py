"""``adapruner export``: write a pruned (or plain) checkpoint as a GGUF file that llama.cpp runs.

Models whose layers all have the same widths become their family's own llama.cpp architecture
(``llama`` for Llama / Mistral / SmolLM2 / TinyLlama, ``qwen2``); models with per-layer widths
(global or scheduled allocation, or compensation biases) become ``deci``, which llama.cpp builds
layer by layer. Run the result with ``llama-cli -m FILE.gguf`` or llama-cpp-python.
"""

from __future__ import annotations

import argparse

from adapruner.catalogue import EXPORT_FORMATS, GGUF_OUTTYPES


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``export`` and its flags."""
    p = subparsers.add_parser("export", help="write a checkpoint as a GGUF file for llama.cpp",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="checkpoint directory (e.g. OUT/model of prune or search), an alias or a .gguf file")
    p.add_argument("--format", default="gguf", choices=list(EXPORT_FORMATS), help="output format (default gguf)")
    p.add_argument("--out", required=True, help="the file to write, e.g. pruned.gguf")
    p.add_argument("--outtype", default="f32", choices=list(GGUF_OUTTYPES),
                   help="type of the weight matrices: f32, f16 or q8_0 (rows not a multiple of 32 fall back to "
                        "f16); norms and biases stay f32 (default f32)")
    p.add_argument("--tokenizer-from", default=None, metavar="FILE.gguf",
                   help="copy the tokenizer from this GGUF of the base model (default: the GGUF the checkpoint "
                        "was pruned from if known, else convert its tokenizer.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def run(args: argparse.Namespace) -> int:
    """Export ``--model`` to ``--out`` and print what was written."""
    from adapruner.core.io import check_output
    from adapruner.export import FORMATS
    from adapruner.export.gguf import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.model)
    check_output(args.out, [checkpoint, args.model, args.tokenizer_from])
    result = FORMATS[args.format](checkpoint, args.out, outtype=args.outtype,
                                  overwrite=args.overwrite, tokenizer_from=args.tokenizer_from, progress=True)
    fallback = f"; {len(result.fallback_f16)} matrices kept f16 (rows not a multiple of 32)" if result.fallback_f16 else ""
    print(f"wrote {result.path} ({result.bytes / 2**20:.1f} MiB, llama.cpp architecture '{result.arch}', "
          f"{result.outtype}, {result.n_tensors} tensors{fallback}); tokenizer {result.tokenizer}")
    print(f"run it: llama-cli -m {result.path} -p 'Hello'   (or llama_cpp.Llama(model_path='{result.path}'))")
    return 0
