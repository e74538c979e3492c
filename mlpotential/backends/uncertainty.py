"""What an engine's uncertainty is: a committee's or an ensemble's spread
(sample standard deviation over its members, ddof=1) or a Gaussian
process's predictive standard deviation. The numbers travel as
``energyStdDev``/``forcesStdDev`` whatever their kind; hosts and summaries
label them with :func:`uncertainty_kind`."""

from __future__ import annotations

from mlpotential.backends.keywords import EngineSettings

UNCERTAINTY_KINDS = {
    "committee": "committee standard deviation (ddof=1 over the model files)",
    "ensemble": "ensemble standard deviation (ddof=1 over the model's members)",
    "predictive": "predictive standard deviation (Gaussian process; not an ensemble's spread)",
}


def uncertainty_kind(settings: EngineSettings) -> str:
    """``"committee"`` for several model files, else the backend's own kind
    (``"ensemble"``, ``"predictive"``), ``""`` when it reports none."""
    if len(settings.members()) > 1:
        return "committee"
    return settings.spec.own_uncertainty


def describe_uncertainty(settings: EngineSettings) -> str:
    """A label for summaries, e.g. ``predictive standard deviation (...)``."""
    kind = uncertainty_kind(settings)
    return UNCERTAINTY_KINDS.get(kind, "standard deviation")
