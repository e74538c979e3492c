"""The engine's uncertainty at every step: the energy standard deviation
and the largest per-atom force deviation (the norm of an atom's force
standard deviations, largest over the atoms: the number DP-GEN's selection
uses), in eV and eV/Angstrom, with what kind of deviation it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.uncertainty import describe_uncertainty
from mlpotential.errors import KeywordError

UNCERTAINTY_COLUMNS = ["energy_std_ev", "max_force_std_ev_per_angstrom"]


def largest_force_deviation(forces_std: np.ndarray) -> float:
    """The largest over the atoms of the norm of an atom's force standard
    deviations ([nAtoms, 3], eV/Angstrom): DP-GEN's selection number."""
    return float(np.linalg.norm(np.asarray(forces_std, dtype=np.float64), axis=1).max())


def step_uncertainty(results: Mapping[str, Any]) -> list[float]:
    """[energy std (eV), largest per-atom force deviation (eV/Angstrom, NaN
    when the engine gives no force deviations)]."""
    forces_std = results.get("forces_std")
    largest = largest_force_deviation(forces_std) if forces_std is not None else np.nan
    return [float(results["energy_std"]), largest]


def uncertainty_label(engine: Mapping[str, Any]) -> str:
    """What the engine's standard deviations are (a committee's, an
    ensemble's, a Gaussian process's predictive one)."""
    try:
        return describe_uncertainty(parse_settings(dict(engine), check_files=False))
    except KeywordError:  # checked when the job was read; not ours to judge here
        return "standard deviation"


@dataclass
class UncertaintyTrack:
    """The per-step values of a run, summarised at its end."""

    label: str
    energy_std: list[float] = field(default_factory=list)
    max_force_std: list[float] = field(default_factory=list)

    def add(self, values: list[float]) -> None:
        self.energy_std.append(values[0])
        self.max_force_std.append(values[1])

    def summary(self) -> dict[str, Any]:
        energy = np.array(self.energy_std)
        forces = np.array(self.max_force_std)
        found = {"uncertainty": self.label}
        if len(energy):
            found |= {"energy_std_ev_mean": float(energy.mean()), "energy_std_ev_max": float(energy.max())}
        if len(forces) and np.isfinite(forces).all():
            found |= {
                "max_force_std_ev_per_angstrom_mean": float(forces.mean()),
                "max_force_std_ev_per_angstrom_max": float(forces.max()),
                "max_force_std_step": int(forces.argmax()),
            }
        return found
