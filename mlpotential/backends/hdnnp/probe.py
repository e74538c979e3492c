"""The installation probe of Backend HDNNP (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlpotential.backends.probing import (
    ProbeFailure,
    copper_cluster,
    force_matches_energy_slope,
    our_calculator,
    require_finite,
    require_module,
)


def probe() -> str:
    """An untrained HDNNP for copper (default symmetry functions, one hidden
    layer of 4) written with the HDNNP model-file writer and evaluated through
    our HDNNP backend on a 13-atom cluster: forces must be the slope of the
    energy."""
    require_module("mlpotential.backends.hdnnp.network")
    import torch

    from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
    from mlpotential.backends.hdnnp.model_file import save_model
    from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape

    torch.manual_seed(0)
    model = HDNNPModel(SymmetryFunctionParameters.default(["Cu"], cutoff=4.0), NetworkShape((4,)))
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = save_model(model, Path(folder) / "probe-model.pt")
        atoms = copper_cluster()
        atoms.calc = our_calculator({"Backend": "HDNNP", "ParameterFile": str(path)})
        energy = atoms.get_potential_energy()
        mismatch = force_matches_energy_slope(atoms)
    require_finite("HDNNP", energy, atoms.get_forces())
    if mismatch > 1e-5:
        raise ProbeFailure(f"HDNNP forces differ from the energy slope by {mismatch:.1e} eV/Angstrom")
    return f"untrained HDNNP on Cu13: forces equal the energy slope to {mismatch:.0e} eV/Angstrom"
