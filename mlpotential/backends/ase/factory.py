"""Backend ``ASE``: ASE's own EMT and Lennard-Jones calculators with their
default parameters. No machine learning: it checks an installation and lets
the pipe be tested without torch."""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import AUTO, EngineSettings
from mlpotential.errors import KeywordError


def create_calculator(settings: EngineSettings) -> Calculator:
    """EMT (eV, Angstrom) or LennardJones (ASE's defaults: sigma 1, epsilon 1)."""
    for keyword, value in (("MLEnergyUnit", settings.ml_energy_unit), ("MLDistanceUnit", settings.ml_distance_unit)):
        if value != AUTO:
            raise KeywordError(keyword, f"{keyword} is fixed for Backend ASE (eV, angstrom); leave it Auto")
    if settings.model == "EMT":
        from ase.calculators.emt import EMT

        return EMT()
    from ase.calculators.lj import LennardJones

    return LennardJones()
