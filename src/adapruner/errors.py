"""User-facing errors.

Every mistake a user can make (a bad flag, a missing file, an unreachable ratio) is raised as
:class:`AdaprunerError` with a one-line message that names the problem and the fix. The CLI
prints ``error: <message>`` and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class AdaprunerError(Exception):
    """A problem caused by the user's input, reported as one line without a traceback."""

    def __init__(self, message: str):
        # Keep messages to one line so the CLI output stays readable.
        super().__init__(" ".join(str(message).split()))


class EnvironmentFault(AdaprunerError):
    """The environment failed, not the input (a full disk, a read-only place, an I/O error); the
    CLI exits with status 3 and the same command can be run again once it is fixed."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`AdaprunerError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AdaprunerError(message)
