"""Run reports: :func:`collect_run` reads a run directory, :func:`write_report` writes markdown + plots."""

from adapruner.report.collect import RunSummary, collect_run
from adapruner.report.render import write_report

__all__ = ["RunSummary", "collect_run", "write_report"]
