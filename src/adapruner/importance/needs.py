"""What a calibration pass must collect, and the one place that decides it.

A metric declares what its scores read (:meth:`~adapruner.importance.base.Metric.statistics_needs`):
calibration activations, the backward pass, Gram matrices, second-order factors. A weight update
that reads the importance samples declares the same (bias compensation: their input means).
:func:`adapruner.planning.statistics_needs` joins the two for a configuration and
:func:`adapruner.importance.statistics.collect` runs exactly that pass, so a configuration that
needs no gradients never pays for a backward pass. Every caller goes through these two:
``prune`` (in memory and streamed), a search trial, and the memory estimate.

Statistics remember what they hold (``Statistics.needs``), so a search that already collected
more on a calibration set (a gradient metric's pass also has every activation sum) re-uses them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatisticsNeeds:
    """The parts of one calibration pass: ``samples`` (a forward over the calibration windows:
    activation sums and means), ``gradients`` (a backward pass: the Taylor terms), ``gram`` (input
    Gram matrices of o_proj / down_proj) and the second-order ``element_factors`` to fold. Nothing
    at all means the weights alone (magnitude metrics)."""

    samples: bool = False
    gradients: bool = False
    gram: bool = False
    element_factors: tuple[float, ...] = ()

    def __or__(self, other: StatisticsNeeds) -> StatisticsNeeds:
        return StatisticsNeeds(samples=self.samples or other.samples, gradients=self.gradients or other.gradients,
                               gram=self.gram or other.gram,
                               element_factors=tuple(sorted({*self.element_factors, *other.element_factors})))

    def covers(self, other: StatisticsNeeds) -> bool:
        """Whether statistics collected for ``self`` hold everything ``other`` asks for."""
        return ((self.samples or not other.samples) and (self.gradients or not other.gradients)
                and (self.gram or not other.gram) and set(other.element_factors) <= set(self.element_factors))


WEIGHTS_ONLY = StatisticsNeeds()
