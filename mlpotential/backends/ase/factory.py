"""The ASE backend's factory: engine settings -> ASE calculator (see the package docstring)."""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import EngineSettings


def create_calculator(settings: EngineSettings) -> Calculator:
    """EMT (eV, Angstrom) or LennardJones (ASE's defaults: sigma 1, epsilon 1)."""
    if settings.model == "EMT":
        from mlpotential.backends.ase.calculator import CheckedEMT

        return CheckedEMT()
    from ase.calculators.lj import LennardJones

    return LennardJones()
