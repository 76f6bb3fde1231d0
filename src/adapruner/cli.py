"""The ``adapruner`` command line: one sub-command per pipeline stage.

Each sub-command lives in :mod:`adapruner.commands.<name>` and exposes ``add_parser(subparsers)``
and ``run(args) -> int``. Before the parser is built, plugins are imported so that the metrics,
allocators, weight updates and search dimensions they register become CLI choices: the modules
named in ``$ADAPRUNER_PLUGINS`` (comma-separated) and the ``adapruner.plugins`` entry points of
installed packages. User mistakes surface as :class:`~adapruner.errors.AdaprunerError` and
are printed as a single ``error: ...`` line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys

from adapruner.errors import AdaprunerError

# Order = order in `adapruner --help`.
COMMANDS = ("models", "data", "eval", "compare", "prune", "search", "finetune", "export", "stats", "report")


PLUGINS_ENV = "ADAPRUNER_PLUGINS"


def load_plugins() -> list[str]:
    """Import the plugin modules (``$ADAPRUNER_PLUGINS`` and ``adapruner.plugins`` entry points);
    return their names. A plugin that fails to import is a one-line error naming it."""
    loaded = []
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- a plugin may fail in any way while it imports
            raise AdaprunerError(f"cannot import plugin '{name}' from ${PLUGINS_ENV} ({type(exc).__name__}: "
                                 f"{exc}): fix the module or remove it from ${PLUGINS_ENV}") from None
        loaded.append(name)
    for entry in importlib.metadata.entry_points(group="adapruner.plugins"):
        try:
            entry.load()
        except Exception as exc:  # noqa: BLE001 -- a plugin may fail in any way while it imports
            raise AdaprunerError(f"cannot import plugin '{entry.name}' ({entry.value}; {type(exc).__name__}: "
                                 f"{exc}): fix or uninstall the package that provides it") from None
        loaded.append(entry.value)
    return loaded


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse with its usage error kept on one line: a value that holds a newline is echoed
    escaped, so the last line of stderr is always the ``error:`` line scripts look for."""

    def error(self, message: str):
        super().error(one_line(message))


def one_line(text: str) -> str:
    """``text`` with line breaks escaped (``\\n``), so a message that quotes user input stays one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available sub-command registered."""
    parser = OneLineErrorParser(
        prog="adapruner",
        description="Structured pruning of LLMs with searched calibration data and importance metrics.",
        epilog="Exit status: 0 done, 1 internal error (a bug), 2 bad input, 3 the environment failed (disk full, "
               "read-only, I/O error), 130 interrupted. --debug (anywhere, or ADAPRUNER_DEBUG=1) prints the "
               "traceback after the error line.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"adapruner.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"adapruner.commands.{name}":
                continue  # stage not built yet
            raise
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: the error boundary (:mod:`adapruner.boundary`) around
    the command, so every failure is one ``error:`` line with a documented exit status."""
    from adapruner import boundary

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = boundary.debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        load_plugins()
        parser = build_parser()  # imports the commands' libraries: Ctrl-C may land here too
        args = parser.parse_args(argv)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return boundary.INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 -- the boundary: every failure is reported, none escapes
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        status, line = boundary.explain(exc)
        if debug:
            import traceback

            traceback.print_exc()
        _close_progress_bars()
        print(f"error: {one_line(line)}", file=sys.stderr)
        return status


def _close_progress_bars() -> None:
    """End every progress bar a failed step left open (a library's, on an exception), so the error
    starts its own line instead of continuing the bar's."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 -- a bar on a closed stream: nothing to end
            pass


CLEANUP_AFTER_CTRL_C_S = 30
# Modules inside which an interrupt must not land: a KeyboardInterrupt raised mid-transaction
# leaves an SQLite write lock held by a connection nobody will finish (the cleanup then waits on
# it), and one raised in Optuna's trial bookkeeping escapes its `except Exception` and crashes
# it (UnboundLocalError in `_run_trial`). Storage calls take milliseconds.
STORAGE_MODULES = ("optuna", "sqlalchemy", "sqlite3", "psycopg", "psycopg2")


def _storage_caller(frame):
    """The frame that called into Optuna or database code when the main thread is inside such
    code (walking outwards from the innermost frame to this package's own code), else None."""
    outermost_storage = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == "adapruner" or module.startswith("adapruner."):
            break
        if module.split(".")[0] in STORAGE_MODULES:
            outermost_storage = frame
        frame = frame.f_back
    return outermost_storage.f_back if outermost_storage is not None else None


def _on_ctrl_c(signum, frame) -> None:
    """Ctrl-C: raise KeyboardInterrupt as Python does, but never inside a storage call (there it
    is raised in the caller as soon as the call returns), and start a clock. If the cleanup it
    triggers (marking the running trial failed, closing the storage) has not ended the process
    within CLEANUP_AFTER_CTRL_C_S, exit anyway: a user who pressed Ctrl-C must get their shell
    back, also from a storage call that hangs. A trial left RUNNING that way is failed by the next
    run (its process is gone). A second Ctrl-C interrupts at once, wherever it lands."""
    import signal
    import threading

    def give_up() -> None:
        print(f"interrupted; cleanup did not finish within {CLEANUP_AFTER_CTRL_C_S} s, exiting",
              file=sys.stderr, flush=True)
        os._exit(130)

    timer = threading.Timer(CLEANUP_AFTER_CTRL_C_S, give_up)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    caller = _storage_caller(frame)
    if caller is None:
        raise KeyboardInterrupt
    _raise_when_back_in(caller)


def _raise_when_back_in(caller) -> None:
    """Raise KeyboardInterrupt at the first trace event (next line, return or exception) of
    ``caller``: pdb's technique, a local trace function on a frame that is already running."""

    def local(frame, event, arg):
        caller.f_trace = None
        sys.settrace(None)
        raise KeyboardInterrupt

    caller.f_trace = local
    caller.f_trace_lines = True
    sys.settrace(lambda frame, event, arg: None)  # tracing on for this thread; new frames untraced


def entry() -> None:
    """The process entry point (console script, ``python -m adapruner.cli``): :func:`main`, then exit.

    After Ctrl-C (exit status 130) a thread a library left running would keep the interpreter
    alive: Optuna starts a non-daemon heartbeat thread per trial. The study is already recorded
    (the interrupted trial is marked failed), so exit without waiting for such threads. A cleanup that
    itself hangs is cut off by :func:`_on_ctrl_c`'s clock.
    """
    import signal
    import threading

    signal.signal(signal.SIGINT, _on_ctrl_c)
    code = main()
    if code == 130 and any(t is not threading.main_thread() and t.is_alive() and not t.daemon
                           for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
