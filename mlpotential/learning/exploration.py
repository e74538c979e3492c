"""Exploration: MD with the current committee, through our own worker (so
any backend that serves a committee can explore), recording each step's
uncertainty: the per-atom energy standard deviation (eV/atom), the largest
per-atom force deviation (eV/Angstrom) and the smallest interatomic
distance (Angstrom).

A run stops at its first failed frame (beyond the upper trust level, or
atoms too close): what follows would be dynamics on a model that is not
trusted there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.md.bussi import Bussi
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.neighborlist import neighbor_list

from mlpotential.driver.engine import DriverEngine
from mlpotential.driver.uncertainty import largest_force_deviation
from mlpotential.learning.config import ExploreSettings
from mlpotential.learning.selection import FAILED, Criteria, FrameUncertainty, classify_trajectory

DISTANCE_SEARCH = 3.0
"""Angstrom: the smallest interatomic distance is looked for up to here (or
up to the minimum distance criterion, if larger); beyond it, it is reported
as this value."""


def committee_engine(model_files: Sequence[str], threads: int = 1) -> DriverEngine:
    """A worker serving the HDNNP committee of ``model_files``, asked for
    the committee's force deviation with every calculation (MD asks only
    for forces)."""
    return DriverEngine(committee_keywords(model_files, threads), also=["forces_std"])


def committee_keywords(model_files: Sequence[str], threads: int = 1) -> dict[str, object]:
    """Engine keywords serving the HDNNP committee of ``model_files`` on
    ``threads`` threads."""
    return {
        "Backend": "HDNNP",
        "Model": "Custom",
        "ParameterFile": [str(path) for path in model_files],
        "NumThreads": str(threads),
    }


def frame_uncertainty(atoms: Atoms, results: dict, min_distance: float) -> FrameUncertainty:
    """The uncertainty measures of one frame from the committee's results
    (``energy_std`` eV, ``forces_std`` eV/Angstrom)."""
    forces_std = np.asarray(results["forces_std"], dtype=np.float64).reshape(len(atoms), 3)
    search = max(DISTANCE_SEARCH, min_distance)
    distances = neighbor_list("d", atoms, search) if len(atoms) > 1 else np.zeros(0)
    return FrameUncertainty(
        energy_std_per_atom=float(results["energy_std"]) / len(atoms),
        max_force_std=largest_force_deviation(forces_std),
        min_distance=float(distances.min()) if len(distances) else search,
    )


@dataclass
class Exploration:
    """One MD run: its settings, each recorded step's uncertainty and
    geometry, and the committee's energy (eV) and forces (eV/Angstrom)
    there (kept to measure the committee's error on frames it never saw)."""

    temperature: float
    replica: int
    start: str
    steps: int
    uncertainties: list[FrameUncertainty] = field(default_factory=list)
    frames: list[Atoms] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        """Ran all its steps without a failed frame."""
        return len(self.frames) == self.steps + 1 and FAILED not in self.classes

    @property
    def name(self) -> str:
        return f"{self.temperature:g} K replica {self.replica}"


def explore(
    engine: DriverEngine,
    start: Atoms,
    start_name: str,
    temperature: float,
    replica: int,
    settings: ExploreSettings,
    criteria: Criteria,
    rng: np.random.Generator,
) -> Exploration:
    """Run one MD exploration from ``start`` on ``engine`` (from
    :func:`committee_engine`), stopping at the first failed frame."""
    atoms = start.copy()
    atoms.calc = engine
    thermalize_momenta(atoms, temperature, rng=rng)
    timestep = settings.timestep * units.fs
    if settings.thermostat == "langevin":
        dynamics = Langevin(
            atoms, timestep, temperature_K=temperature, friction=settings.friction / units.fs, fixcm=False, rng=rng
        )
    else:
        dynamics = Bussi(atoms, timestep, temperature_K=temperature, taut=settings.taut * units.fs, rng=rng)
    run = Exploration(temperature, replica, start_name, settings.steps)
    for _ in dynamics.irun(settings.steps):  # yields at the start and after every step
        atoms.get_forces()
        uncertainty = frame_uncertainty(atoms, engine.results, criteria.min_distance)
        frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frame.info["committee_energy"] = float(engine.results["energy"])
        frame.arrays["committee_forces"] = np.array(engine.results["forces"])
        run.uncertainties.append(uncertainty)
        run.frames.append(frame)
        if criteria.classify(uncertainty) == FAILED:
            break
    run.classes = classify_trajectory(run.uncertainties, criteria)
    return run
