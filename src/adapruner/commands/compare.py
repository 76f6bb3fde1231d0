"""``adapruner compare A.json B.json``: is model A's zero-shot accuracy really different from B's?

Reads two result files of ``adapruner eval --tasks ...`` (evaluated on the same examples: the
same tasks and ``--limit``) and compares them paired, example by example: per task the difference
A - B with its standard error and McNemar's exact test, then the mean over the tasks and the mean
without BoolQ with a z test (:mod:`adapruner.eval.significance`). A difference is called larger
than its noise at 2 standard errors. ``--out`` writes the comparison as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapruner.errors import AdaprunerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` and its flags."""
    p = subparsers.add_parser("compare", help="paired comparison of two zero-shot results (eval --tasks)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A.json", help="result file of adapruner eval --tasks (model A)")
    p.add_argument("b", metavar="B.json", help="result file of model B, on the same tasks and --limit")
    p.add_argument("--out", default=None, help="write the comparison as JSON here")
    return p


def read_zeroshot(path: str) -> tuple[str, dict]:
    """The model name and the per-task results of an eval result file (one-line errors otherwise)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AdaprunerError(f"{path} not found; give the result file adapruner eval --out wrote") from None
    except (OSError, ValueError) as exc:
        raise AdaprunerError(f"{path} is not an adapruner eval result file ({type(exc).__name__}: {exc})") from None
    zs = data.get("zeroshot") if isinstance(data, dict) else None
    if not isinstance(zs, dict) or not isinstance(zs.get("average"), dict):
        raise AdaprunerError(f"{path} holds no zero-shot results; evaluate with adapruner eval --tasks ... --out FILE")
    tasks = {t: zs[t] for t in zs["average"]["tasks"]}
    missing = [t for t, r in tasks.items() if not isinstance(r, dict) or "correct" not in r]
    if missing:
        raise AdaprunerError(f"{path} has no per-example outcomes for {', '.join(missing)} (written by an older "
                             "adapruner); evaluate the model again to compare it")
    return str(data.get("model", path)), tasks


def run(args: argparse.Namespace) -> int:
    """Compare, print the table and the verdict, write ``--out``."""
    from adapruner.core.io import check_writable, write_json
    from adapruner.eval.significance import compare

    name_a, a = read_zeroshot(args.a)
    name_b, b = read_zeroshot(args.b)
    if args.out:
        check_writable(Path(args.out))
    result = compare(a, b)
    print(f"A: {name_a}\nB: {name_b}")
    print(f"{'task':<24} {'A':>7} {'B':>7} {'A - B':>7} {'± se':>6} {'z':>6} {'McNemar p':>10} {'n':>6}")
    for t, r in result["tasks"].items():
        print(f"{t:<24} {100 * r['a']:>7.2f} {100 * r['b']:>7.2f} {100 * r['difference']:>+7.2f} "
              f"{100 * r['se']:>6.2f} {r['z']:>6.2f} {r['mcnemar']['p_value']:>10.3g} {r['n']:>6}")
    for key, label in (("mean", f"mean of {len(result['tasks'])}"), ("mean_without_boolq", "mean without boolq")):
        if key in result:
            r = result[key]
            verdict = "larger than its noise" if r["beyond_2_se"] else "within its noise"
            print(f"{label:<24} {'':>7} {'':>7} {100 * r['difference']:>+7.2f} {100 * r['se']:>6.2f} "
                  f"{r['z']:>6.2f}   {verdict} (paired, p = {r['p_value']:.3g})")
    if args.out:
        write_json(Path(args.out), {"a": {"file": args.a, "model": name_a}, "b": {"file": args.b, "model": name_b},
                                    **result})
        print(f"wrote {args.out}")
    return 0
