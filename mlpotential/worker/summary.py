"""The summary file ``mlpotential.txt``: the model's statistics for the last
(main) geometry, as the AMS MLPotential engine writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from mlpotential.backends.keywords import EngineSettings
from mlpotential.backends.uncertainty import describe_uncertainty
from mlpotential.protocol.messages import Results
from mlpotential.protocol.pipe_directory import WORKER_SUMMARY


def summary_file(path: Path) -> Path:
    """``path`` itself, or ``path/mlpotential.txt`` when it is a directory."""
    return path / WORKER_SUMMARY if path.is_dir() else path


def write_summary(path: Path, settings: EngineSettings, atoms: Atoms, results: Results) -> None:
    """Write (replace) the summary for the geometry just solved. Energies in
    Hartree, forces in Hartree/Bohr."""
    lines = [
        "MLPotential engine: results for the last geometry",
        f"Backend                               {settings.backend}",
        f"Model                                 {settings.model}",
        f"Number of atoms                       {len(atoms)}",
        f"Chemical formula                      {atoms.get_chemical_formula()}",
        f"Energy (Hartree)                      {results.energy:.12f}",
        f"Energy standard deviation (Hartree)   {results.values['energyStdDev']:.12f}",
        f"Uncertainty                           {describe_uncertainty(settings)}",
    ]
    forces_std = results.values.get("forcesStdDev")
    if forces_std is not None:
        per_atom = np.linalg.norm(np.asarray(forces_std), axis=1)
        lines += [
            f"Max force standard deviation (Hartree/Bohr, per atom, norm)  {per_atom.max():.12f} "
            f"(atom {int(per_atom.argmax()) + 1})",
            f"Mean force standard deviation (Hartree/Bohr, per atom, norm) {per_atom.mean():.12f}",
        ]
    target = summary_file(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.replace(target)
