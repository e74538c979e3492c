"""The GeometryOptimization task: ASE's optimisers stepped one by one and
stopped by AMS's convergence criteria (energy change, gradients, step; the
stress energy per atom when the lattice is optimised too).

Converged when all hold, energies in Hartree and lengths in Angstrom:

* the energy changed by less than ``Energy`` times the number of atoms;
* the largest gradient component is below ``Gradients`` and their RMS below 2/3 of it;
* the largest Cartesian step is below ``Step`` and the RMS step below 2/3 of it;
* with OptimizeLattice, the largest stress component times the volume per
  atom is below ``StressEnergyPerAtom``.

As in AMS, the step criteria are not checked once the largest and RMS
gradients are 10 times below their thresholds; then the energy change is
not checked either, so a geometry that starts at a minimum converges at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE, LBFGS
from ase.optimize.optimize import Optimizer

from mlpotential.driver.job import Convergence, OptimizationSettings
from mlpotential.units import HARTREE_TO_EV

AUTO_LBFGS_ATOMS = 300
"""Auto chooses L-BFGS from this many atoms on: BFGS keeps a (3N)^2 Hessian."""

_ASE_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "Quasi-Newton": BFGS,
    "BFGS": BFGS,
    "L-BFGS": LBFGS,
    "LBFGS": LBFGS,
    "FIRE": FIRE,
}


def optimizer_name(method: str, atom_count: int) -> str:
    """The method that runs for ``method`` (Auto resolved)."""
    if method == "Auto":
        return "L-BFGS" if atom_count >= AUTO_LBFGS_ATOMS else "Quasi-Newton"
    return method


@dataclass
class ConvergenceCheck:
    """The AMS criteria for one step: each quantity (Hartree, Angstrom) and
    whether it is below its threshold."""

    energy_change: float
    max_gradient: float
    rms_gradient: float
    max_step: float
    rms_step: float
    stress_energy_per_atom: float | None

    def converged(self, thresholds: Convergence, atom_count: int) -> bool:
        gradients_met = self.max_gradient < thresholds.gradients and self.rms_gradient < 2 / 3 * thresholds.gradients
        lattice_met = self.stress_energy_per_atom is None or (
            self.stress_energy_per_atom < thresholds.stress_energy_per_atom
        )
        if not (gradients_met and lattice_met):
            return False
        far_below = self.max_gradient < thresholds.gradients / 10 and self.rms_gradient < thresholds.gradients / 15
        energy_met = abs(self.energy_change) < thresholds.energy * atom_count
        steps_met = self.max_step < thresholds.step and self.rms_step < 2 / 3 * thresholds.step
        return far_below or (energy_met and steps_met)


def _check(atoms: Atoms, previous: tuple[float, np.ndarray] | None, lattice: bool) -> ConvergenceCheck:
    """The criteria's quantities now; ``previous`` is the last step's energy
    (Hartree) and positions (Angstrom), None at the start (no change known)."""
    energy = atoms.get_potential_energy() / HARTREE_TO_EV
    gradients = atoms.get_forces() / HARTREE_TO_EV  # Hartree/Angstrom (the sign does not matter here)
    if previous is None:
        change, step = np.inf, np.full(3, np.inf)
    else:
        change, step = energy - previous[0], atoms.positions - previous[1]
    stress = None
    if lattice:
        stress = float(np.abs(atoms.get_stress(voigt=False)).max() * atoms.get_volume() / len(atoms) / HARTREE_TO_EV)
    return ConvergenceCheck(
        energy_change=float(change),
        max_gradient=float(np.abs(gradients).max()),
        rms_gradient=float(np.sqrt((gradients**2).mean())),
        max_step=float(np.abs(step).max()),
        rms_step=float(np.sqrt((step**2).mean())),
        stress_energy_per_atom=stress,
    )


def optimize(
    atoms: Atoms, settings: OptimizationSettings, record: Callable[[int, ConvergenceCheck], None]
) -> dict[str, object]:
    """Optimise ``atoms`` (its calculator attached) in place; ``record`` is
    called after every step, the start included. Returns the summary's details."""
    method = optimizer_name(settings.method, len(atoms))
    target = FrechetCellFilter(atoms) if settings.optimize_lattice else atoms
    optimizer = _ASE_OPTIMIZERS[method](target, logfile=None)
    previous: tuple[float, np.ndarray] | None = None
    converged = False
    check = None
    # fmax=0: ASE's own test never passes; the AMS criteria decide.
    for _ in optimizer.irun(fmax=0.0, steps=settings.max_iterations):
        check = _check(atoms, previous, settings.optimize_lattice)
        record(optimizer.nsteps, check)
        if check.converged(settings.convergence, len(atoms)):
            converged = True
            break
        previous = (atoms.get_potential_energy() / HARTREE_TO_EV, atoms.positions.copy())
    details: dict[str, object] = {
        "converged": converged,
        "steps": optimizer.nsteps,
        "method": method,
        "optimizer": type(optimizer).__name__ + (" with FrechetCellFilter" if settings.optimize_lattice else ""),
        "convergence_thresholds": vars(settings.convergence),
    }
    if check is not None:  # JSON has no infinity: unknown before the first step
        details["last_step_criteria"] = {key: None if value == np.inf else value for key, value in vars(check).items()}
    return details
