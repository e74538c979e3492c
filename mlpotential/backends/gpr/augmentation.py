"""Data augmentation: random displacements of training structures, to be
labelled by the GPR (the GPR-ANN indirect force training of aenet-gpr).

Each coordinate moves by a normal deviate of standard deviation
``disp_length`` (Angstrom); the mean displacement of each axis is removed so
the structure is not translated as a whole.
"""

from __future__ import annotations

import numpy as np

from mlpotential.backends.gpr.dataset import StructureSubset


def displaced_copies(
    subset: StructureSubset, num_copy: int, disp_length: float, rng: np.random.Generator
) -> StructureSubset:
    """``num_copy`` displaced copies of every structure of ``subset``, copies
    of one structure consecutive, in the order of the subset. Energies and
    forces are left empty (the GPR labels them). ``indices`` point at the
    parent structure's place in the subset."""
    count, num_atoms = len(subset), subset.num_atoms
    displacement = rng.normal(0.0, disp_length, size=(count, num_copy, num_atoms, 3))
    displacement -= displacement.mean(axis=2, keepdims=True)
    positions = (subset.positions[:, None] + displacement).reshape(count * num_copy, num_atoms, 3)
    cells = None if subset.cells is None else np.repeat(subset.cells, num_copy, axis=0)
    parents = np.repeat(np.arange(count), num_copy)
    return StructureSubset(
        symbols=subset.symbols,
        periodic=subset.periodic,
        positions=positions,
        cells=cells,
        energies=None,
        forces=None,
        sources=[f"{subset.sources[i]} (copy {j + 1})" for i in range(count) for j in range(num_copy)]
        if subset.sources
        else [],
        indices=parents,
    )
