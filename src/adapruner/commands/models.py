"""``adapruner models``: the bundled model aliases and the model families that can be pruned.

An alias is a checkpoint shipped inside a pip package; the first load converts it into the
cache (``$ADAPRUNER_CACHE``, default ~/.cache/adapruner) and later loads read the cached copy.
Any local Hugging Face directory, ``.gguf`` file or hub id of a listed family works as well.
"""

from __future__ import annotations

import argparse
import importlib.util
import json


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``models`` and its flags."""
    p = subparsers.add_parser("models", help="list bundled model aliases and supported families",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    return p


def listing() -> dict:
    """Aliases (with install and cache state), supported families and the cache directory."""
    from adapruner.models.aliases import ALIASES, package_version
    from adapruner.models.gguf_cache import cache_key, cache_root, is_converted
    from adapruner.core.adapters import ADAPTERS

    aliases = []
    for alias in ALIASES.values():
        installed = importlib.util.find_spec(alias.module) is not None
        version = package_version(alias) if installed else None
        cached = cache_root() / cache_key(None, alias.name, version) if installed else None
        aliases.append({
            "alias": alias.name, "description": alias.description, "package": alias.package,
            "installed": installed, "version": version,
            "install": None if installed else alias.pip_command,
            "cached": bool(cached and is_converted(cached)), "cache_dir": str(cached) if cached else None,
        })
    families = [{"family": a.name, "model_types": list(a.model_types), "examples": a.example} for a in ADAPTERS]
    return {"aliases": aliases, "families": families, "cache_root": str(cache_root())}


def run(args: argparse.Namespace) -> int:
    """Print the aliases and the supported families."""
    info = listing()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("Bundled aliases (use with --model):")
    for a in info["aliases"]:
        state = (f"installed {a['version']}, " + ("cached" if a["cached"] else "converted on first use")
                 if a["installed"] else f"not installed; run: {a['install']}")
        print(f"  {a['alias']:<16} {a['description']}  [{state}]")
    print("\nSupported families (any local directory, .gguf file or hub id of these types):")
    for f in info["families"]:
        print(f"  {f['family']:<10} model_type {'/'.join(f['model_types']):<20} {f['examples']}")
    print(f"\nCache: {info['cache_root']} (set ADAPRUNER_CACHE to move it)")
    return 0
