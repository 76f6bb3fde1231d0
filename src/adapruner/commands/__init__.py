"""CLI sub-commands, one module each (see :mod:`adapruner.cli`)."""
