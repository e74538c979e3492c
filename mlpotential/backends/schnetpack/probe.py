"""The installation probe of Backend SchNetPack (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

from mlpotential.backends.probing import ProbeFailure, require_finite, water


def probe() -> str:
    """An untrained SchNet (8 features, one interaction) on a water molecule,
    imported with our SchNetPack backend's compatibility shim."""
    import torch

    from mlpotential.backends.schnetpack.compat import import_schnetpack

    spk = import_schnetpack()
    from schnetpack.transform import MatScipyNeighborList

    torch.manual_seed(0)
    cutoff = 3.0
    model = spk.model.NeuralNetworkPotential(
        representation=spk.representation.SchNet(
            n_atom_basis=8,
            n_interactions=1,
            radial_basis=spk.nn.GaussianRBF(n_rbf=8, cutoff=cutoff),
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
        ),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=8, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )
    converter = spk.interfaces.AtomsConverter(neighbor_list=MatScipyNeighborList(cutoff=cutoff), dtype=torch.float32)
    results = model(converter(water()))
    energy, forces = results["energy"].detach().numpy(), results["forces"].detach().numpy()
    require_finite("SchNet", energy, forces)
    if forces.shape != (3, 3):
        raise ProbeFailure(f"SchNet forces have shape {forces.shape}, expected (3, 3)")
    return "untrained SchNet (8 features, 1 interaction) on H2O: finite energy and forces"
