"""Export of pruned checkpoints to other runtimes: GGUF for llama.cpp (:mod:`.gguf`).

``FORMATS`` maps each ``adapruner export --format`` name to its writer
``(checkpoint, out, outtype, overwrite, tokenizer_from) -> ExportResult``.
"""

from adapruner.export.gguf import OUTTYPES, ExportResult, export_gguf

FORMATS = {"gguf": export_gguf}

__all__ = ["FORMATS", "OUTTYPES", "ExportResult", "export_gguf"]
