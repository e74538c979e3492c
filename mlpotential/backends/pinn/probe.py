"""The installation probe of Backend PiNN (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

from mlpotential.backends.probing import ProbeFailure, force_matches_energy_slope, require_finite, require_module, water


def probe() -> str:
    """A tiny PiNet with random weights (H, O), assembled in memory by the
    same loader as a PiNN model directory and evaluated through our PiNN
    backend's ASE calculator on a slightly distorted water molecule: every
    force component must be the slope of the energy."""
    require_module("mlpotential.backends.pinn.random_model")
    from mlpotential.backends.pinn.calculator import PinnCalculator
    from mlpotential.backends.pinn.random_model import random_pinet_potential

    atoms = water()
    atoms.rattle(0.05, seed=1)  # no component of the forces is zero by symmetry
    atoms.calc = PinnCalculator(random_pinet_potential(elements=(1, 8), seed=0))
    energy = atoms.get_potential_energy()
    require_finite("PiNN", energy, atoms.get_forces())
    mismatch = max(force_matches_energy_slope(atoms, atom, axis) for atom in range(len(atoms)) for axis in range(3))
    if mismatch > 1e-5:
        raise ProbeFailure(f"PiNN forces differ from the energy slope by {mismatch:.1e} eV/Angstrom")
    return f"random-weight PiNet on H2O: forces equal the energy slope to {mismatch:.0e} eV/Angstrom"
