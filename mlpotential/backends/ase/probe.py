"""The installation probe of Backend ASE (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

from mlpotential.backends.probing import our_calculator, require_finite, water


def probe() -> str:
    """ASE's EMT through our ASE backend, on a water molecule."""
    atoms = water()
    atoms.calc = our_calculator({"Backend": "ASE", "Model": "EMT"})
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    require_finite("EMT", energy, forces)
    return f"EMT energy of H2O: {energy:.4f} eV"
