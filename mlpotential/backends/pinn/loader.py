"""Load a PiNN model directory (``params.yml`` + TensorFlow checkpoint) into
a :class:`~mlpotential.backends.pinn.potential.PinnPotential`."""

from __future__ import annotations

from pathlib import Path

import torch

from mlpotential.backends.pinn.bpnn import load_bpnn
from mlpotential.backends.pinn.checkpoint import Checkpoint, latest_checkpoint
from mlpotential.backends.pinn.params import BPNNParams, PinnParams, read_params
from mlpotential.backends.pinn.pinet import load_pinet
from mlpotential.backends.pinn.potential import PinnPotential
from mlpotential.units import ENERGY_UNIT_TO_EV

# e_unit values this close (relative) to a named unit are that unit.
_UNIT_MATCH = 1e-7


def named_energy_unit(e_unit: float) -> str | None:
    """The energy unit whose size in eV is PiNN's ``e_unit`` (``1.0`` is
    eV), or None when e_unit is no unit the engine names."""
    for name, size in ENERGY_UNIT_TO_EV.items():
        if abs(e_unit - size) <= _UNIT_MATCH * size:
            return name
    return None


def load_potential(
    model_dir: Path,
    params: PinnParams | None = None,
    energy_to_ev: float | None = None,
    distance_to_angstrom: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> PinnPotential:
    """Build the potential stored in ``model_dir`` (``params``: its
    already-read params.yml, read here when None).

    ``energy_to_ev`` replaces PiNN's ``e_unit`` (None keeps it: PiNN's own
    output is e_unit times the label-unit energy, taken as eV).
    Raises :class:`~mlpotential.backends.pinn.params.ParamsError`,
    :class:`~mlpotential.backends.pinn.checkpoint.CheckpointError` or
    :class:`~mlpotential.backends.pinn.variables.WeightsError`, each naming
    the file at fault.
    """
    device = device or torch.device("cpu")
    params = params or read_params(model_dir)
    checkpoint = Checkpoint(latest_checkpoint(model_dir))
    if isinstance(params.network, BPNNParams):
        network = load_bpnn(params.network, checkpoint, dtype, device)
    else:
        network = load_pinet(params.network, checkpoint, dtype, device)
    factor = params.energy.e_unit if energy_to_ev is None else energy_to_ev
    return PinnPotential(network, params.energy, factor, distance_to_angstrom, dtype, device)
