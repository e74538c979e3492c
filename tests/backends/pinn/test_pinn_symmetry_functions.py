"""PiNN's BPNN symmetry functions against DScribe's ACSF, an independent
implementation: G2 equal, PiNN's G3/G4 twice DScribe's G4/G5 (PiNN sums over
ordered neighbour pairs, DScribe over unordered ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from dscribe.descriptors import ACSF

from mlpotential.atomistic.neighbors import pinn_pairs
from mlpotential.backends.pinn.bpnn import BPNN, ordered_neighbour_couples
from mlpotential.backends.pinn.loader import load_potential
from mlpotential.backends.pinn.params import BPNNParams, SymmetryFunctionSpec
from tests.backends.pinn_reference import read_reference

SPECIES = [1, 6, 7, 8, 29]
STRUCTURES = [
    "CH3OH_perturbed_nonpbc",
    "H2O_dimer_nonpbc",
    "H2O_in_5A_box_interacting_with_images_pbc",
    "Cu1_primitive_fcc_pbc",
    "Cu32_sheared_triclinic_rattled_pbc",
    "Cu12_slab_with_CO_3D_pbc_unseen",
]


@pytest.fixture(scope="module")
def bpnn(pinn_reference_root: Path):
    torch.set_num_threads(1)
    return load_potential(pinn_reference_root / "bpnn" / "model").network


@pytest.fixture(scope="module")
def structures(pinn_reference_root: Path) -> dict[str, Atoms]:
    return {structure.name: structure.atoms for structure in read_reference(pinn_reference_root / "bpnn")}


def pinn_features(network, atoms: Atoms) -> list[np.ndarray]:
    periodic = bool(atoms.pbc.any())
    pairs = pinn_pairs(atoms.positions, network.cutoff, atoms.cell.array if periodic else None)
    blocks = network.symmetry_functions(
        torch.as_tensor(atoms.numbers),
        torch.as_tensor(pairs.centre),
        torch.as_tensor(pairs.neighbour),
        torch.as_tensor(pairs.diff),
    )
    return [block.numpy() for block in blocks]


@pytest.mark.parametrize("name", STRUCTURES)
def test_symmetry_functions_equal_dscribe_acsf(bpnn, structures: dict[str, Atoms], name: str) -> None:
    atoms = structures[name]
    periodic = bool(atoms.pbc.any())
    features = pinn_features(bpnn, atoms)
    for spec, ours in zip(bpnn.params.sf_spec, features):
        rows = atoms.numbers == spec.i if spec.i is not None else np.ones(len(atoms), dtype=bool)
        if spec.kind == "G2":
            acsf = ACSF(species=SPECIES, r_cut=bpnn.cutoff, g2_params=list(zip(spec.eta, spec.rs)), periodic=periodic)
            per_species = acsf.create(atoms).reshape(len(atoms), len(SPECIES), 1 + spec.size)
            expected = per_species[:, SPECIES.index(spec.j), 1:]  # column 0 is DScribe's G1
        else:
            assert spec.j is None and spec.k is None
            key = "g4_params" if spec.kind == "G3" else "g5_params"
            acsf = ACSF(
                species=SPECIES,
                r_cut=bpnn.cutoff,
                periodic=periodic,
                **{key: list(zip(spec.eta, spec.zeta, spec.lambd))},
            )
            output = acsf.create(atoms)[:, len(SPECIES) :]  # after the per-species G1 columns
            expected = 2.0 * output.reshape(len(atoms), -1, spec.size).sum(axis=1)  # all species pairs
        np.testing.assert_allclose(ours[rows], expected[rows], rtol=1e-10, atol=1e-12, err_msg=f"{name} {spec}")
    assert max(np.abs(block).max() for block in features) > 0.1


def test_ordered_couples_count_both_orders() -> None:
    centre = np.array([0, 0, 0, 2, 2, 3])
    first, second = ordered_neighbour_couples(centre, 4)
    couples = sorted(zip(first.tolist(), second.tolist()))
    assert couples == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)]


def test_species_filters_against_dscribe(structures: dict[str, Atoms]) -> None:
    """Entries restricted to centre/neighbour species. For j != k PiNN's
    ordered sum counts each unordered (H, C) couple once (only the order
    j = H, k = C matches), so it equals DScribe's (H, C) term; for j == k it
    is twice DScribe's."""
    specs = (
        SymmetryFunctionSpec("G2", 6, 1, None, eta=(1.5, 0.5), rs=(1.1, 2.0)),
        SymmetryFunctionSpec("G3", None, 1, 1, eta=(0.2, 0.05), lambd=(1.0, -1.0), zeta=(2.0, 1.0)),
        SymmetryFunctionSpec("G3", 8, 1, 6, eta=(0.1,), lambd=(1.0,), zeta=(4.0,)),
        SymmetryFunctionSpec("G4", 6, 1, 8, eta=(0.3,), lambd=(-1.0,), zeta=(1.0,)),
        SymmetryFunctionSpec("G4", None, 1, 1, eta=(0.05,), lambd=(1.0,), zeta=(2.0,)),
    )
    params = BPNNParams(sf_spec=specs, nn_spec=((1, (4,)),), rc=3.5)
    network = BPNN(params, {}, torch.float64, torch.device("cpu"))
    # DScribe orders species pairs (j <= k) by k, then j.
    pair_index = {(j, k): k * (k + 1) // 2 + j for k in range(len(SPECIES)) for j in range(k + 1)}
    for name in ("CH3OH_perturbed_nonpbc", "H3CNH2_perturbed_nonpbc", "Cu12_slab_with_CO_3D_pbc_unseen"):
        atoms = structures[name]
        periodic = bool(atoms.pbc.any())
        features = pinn_features(network, atoms)
        for spec, ours in zip(specs, features):
            rows = atoms.numbers == spec.i if spec.i is not None else np.ones(len(atoms), dtype=bool)
            if spec.kind == "G2":
                acsf = ACSF(species=SPECIES, r_cut=3.5, g2_params=list(zip(spec.eta, spec.rs)), periodic=periodic)
                expected = acsf.create(atoms).reshape(len(atoms), len(SPECIES), 1 + spec.size)[
                    :, SPECIES.index(spec.j), 1:
                ]
            else:
                key = "g4_params" if spec.kind == "G3" else "g5_params"
                params_list = list(zip(spec.eta, spec.zeta, spec.lambd))
                acsf = ACSF(species=SPECIES, r_cut=3.5, periodic=periodic, **{key: params_list})
                output = acsf.create(atoms)[:, len(SPECIES) :].reshape(len(atoms), -1, spec.size)
                j, k = sorted((SPECIES.index(spec.j), SPECIES.index(spec.k)))
                expected = output[:, pair_index[(j, k)]] * (2.0 if j == k else 1.0)
            np.testing.assert_allclose(ours[rows], expected[rows], rtol=1e-10, atol=1e-12, err_msg=f"{name} {spec}")
            assert not ours[~rows].any()
