"""The installation probe of Backend MACE (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mlpotential.backends.probing import ProbeFailure, force_matches_energy_slope, our_calculator, water


def probe() -> str:
    """A tiny untrained MACE model (H, O; one interaction, 8 scalar channels)
    built with MACE's own modules, saved as MACE saves models and evaluated
    through our MACE backend on a distorted water molecule: forces must be
    the slope of the energy."""
    import torch

    from mlpotential.backends.mace.calculator import import_mace

    import_mace()
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.MACE(
        r_max=4.0,
        num_bessel=4,
        num_polynomial_cutoff=5,
        max_ell=1,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=1,
        num_elements=2,
        hidden_irreps=o3.Irreps("8x0e"),
        MLP_irreps=o3.Irreps("4x0e"),
        atomic_energies=np.array([-1.0, -2.0]),
        avg_num_neighbors=2.0,
        atomic_numbers=[1, 8],
        correlation=2,
        gate=torch.nn.functional.silu,
    ).to(torch.float64)
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = Path(folder) / "probe.model"
        torch.save(model, path)
        atoms = water()
        atoms.rattle(0.05, seed=1)
        atoms.calc = our_calculator({"Backend": "MACE", "ParameterFile": str(path)})
        mismatch = force_matches_energy_slope(atoms)
    if mismatch > 1e-6:
        raise ProbeFailure(f"MACE forces differ from the energy slope by {mismatch:.1e} eV/Angstrom")
    return f"untrained MACE on H2O: forces equal the energy slope to {mismatch:.0e} eV/Angstrom"
