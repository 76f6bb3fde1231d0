"""The CLI's error boundary: every failure becomes one line and a documented exit status.

=======  ==============================================================================
status   meaning
=======  ==============================================================================
0        done
1        an internal error (a bug): one line that says so; ``--debug`` shows the traceback
2        bad input: a flag, a file, a value the user can fix (:class:`AdaprunerError`)
3        the environment failed: the disk is full, a file is too large, an I/O error, a
         read-only place, a permission (:class:`EnvironmentFault`)
130      interrupted (Ctrl-C)
=======  ==============================================================================

Library code raises typed exceptions and never formats them; :func:`explain` turns each class
of failure (including those raised by torch, safetensors or the OS) into ``(status, line)``.
With ``--debug`` or ``ADAPRUNER_DEBUG=1`` the traceback follows the line.
"""

from __future__ import annotations

import errno
import os
import pickle

from adapruner.errors import AdaprunerError, EnvironmentFault

OK, BUG, BAD_INPUT, ENVIRONMENT, INTERRUPTED = 0, 1, 2, 3, 130
DEBUG_ENV = "ADAPRUNER_DEBUG"

# errno -> what happened and what to do about it
DISK_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free space (or choose another --out) and run the same command again"),
    errno.EFBIG: ("a file grew beyond the size the system allows", "raise the limit (ulimit -f) or write elsewhere"),
    errno.EIO: ("an input/output error", "check the disk, then run the same command again"),
    errno.EROFS: ("the file system is read-only", "write to a writable place (--out)"),
    errno.EACCES: ("permission denied", "check the permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "check the permissions or choose another path"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within the quota, then run the same command again"),
}
# Optional dependencies -> the extra that installs them.
EXTRAS = {"psycopg2": "postgres", "psycopg": "postgres", "llama_cpp": "llamacpp", "optuna_dashboard": "dashboard",
          "mwparserfromhell": "bench", "mkdocs": "docs"}


def debug_requested(argv: list[str] | None) -> bool:
    """``--debug`` among the arguments or ``ADAPRUNER_DEBUG`` set to a true value."""
    return "--debug" in (argv or []) or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one line (without ``error: ``) that report ``exc``."""
    if isinstance(exc, EnvironmentFault):
        return ENVIRONMENT, str(exc)
    if isinstance(exc, AdaprunerError):
        return BAD_INPUT, str(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_FAULTS:
        what, fix = DISK_FAULTS[exc.errno]
        where = f" ({exc.filename})" if exc.filename else ""
        return ENVIRONMENT, f"{what}{where}: {fix}"
    if isinstance(exc, pickle.UnpicklingError) or type(exc).__name__ == "UnpicklingError":
        return BAD_INPUT, ("a pickled file was refused (adapruner reads weights from safetensors, and torch files only "
                           "with weights_only=True): convert it to safetensors, e.g. with transformers' "
                           "save_pretrained(safe_serialization=True), on a machine you trust")
    if type(exc).__name__ == "SafetensorError" or (isinstance(exc, Exception) and "safetensors" in type(exc).__module__):
        fault = _os_error_in(str(exc))
        if fault is not None:  # the Rust writer reports a refused write as text: "I/O error: ... (os error 27)"
            what, fix = DISK_FAULTS[fault]
            return ENVIRONMENT, f"{what} (writing a safetensors file): {fix}"
        return BAD_INPUT, f"a safetensors file is malformed ({_first_line(exc)}): re-download or re-save the checkpoint"
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in EXTRAS:
        extra = EXTRAS[exc.name.split(".")[0]]
        return BAD_INPUT, f"the optional dependency '{exc.name}' is not installed: pip install 'adapruner[{extra}]'"
    if type(exc).__name__ == "PanicException":  # a Rust library (tokenizers, safetensors) gave up on its input
        return BAD_INPUT, (f"a file could not be parsed ({_first_line(exc)}): most often a damaged tokenizer.json or "
                           "weights file; restore the checkpoint's files")
    if isinstance(exc, MemoryError):
        return ENVIRONMENT, ("out of memory: lower --micro-batch / --batch-size, or prune one layer at a time with "
                             "--stream (adapruner prune --dry-run prints the predicted peak)")
    if isinstance(exc, OSError) and exc.filename:
        return ENVIRONMENT, f"{exc.strerror or type(exc).__name__} ({exc.filename}): check the path and run again"
    return BUG, (f"internal error ({type(exc).__name__}: {_first_line(exc)}); this is a bug in adapruner: rerun with "
                 "--debug for the traceback and please report it with the command")


def _os_error_in(text: str) -> int | None:
    """The errno of a disk fault a library quoted in its message as ``(os error N)``, if any."""
    import re

    match = re.search(r"\(os error (\d+)\)", text)
    return int(match.group(1)) if match and int(match.group(1)) in DISK_FAULTS else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
