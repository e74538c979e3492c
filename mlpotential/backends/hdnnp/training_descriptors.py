"""The descriptors training reads: symmetry functions of each structure and,
for structures trained on forces, their derivatives in the compact form the
descriptor store keeps.

The closed form gives one Jacobian per neighbour pair, J_p = dG[centre_p] /
d d_p (F x 3, 1/Angstrom). Training needs only dG_i/dr_m for each atom m
other than i (the derivative with respect to r_i itself is minus their sum,
which the force contraction adds at the centre), so every pair of one centre
and one atom is summed over that atom's periodic images (in float64, before
the store rounds it to float32), and pairs of an atom with its own images,
which cancel, are left out. In a cell smaller than the cutoff sphere every
atom appears through many images: 200 Cu32 cells (cutoff 6.5 Angstrom, about
98 neighbours per atom, 31 distinct ones) keep a third of the pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from mlpotential.atomistic.neighbors import pair_vectors
from mlpotential.atomistic.structures import Structure
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.backends.hdnnp.descriptor_store import DescriptorStore, StructureDescriptors, structure_key


def structure_descriptors(
    structures: Sequence[Structure],
    parameters: SymmetryFunctionParameters,
    store: DescriptorStore,
    device: torch.device,
    progress: bool,
) -> list[StructureDescriptors]:
    """The descriptors of ``structures`` (with atom-pair Jacobians for those
    with forces), read from ``store`` or computed and added to it."""
    symmetry_functions = SymmetryFunctionSet(parameters)
    results = []
    for structure in tqdm(structures, desc="descriptors", disable=not progress, unit="structure"):
        key = structure_key(structure.to_atoms(), parameters)
        stored = store.get(key, need_jacobian=structure.has_forces)
        if stored is None:
            stored = compute_descriptors(structure, symmetry_functions, device)
            store.put(key, stored)
        results.append(stored)
    store.commit()
    return results


def compute_descriptors(
    structure: Structure, symmetry_functions: SymmetryFunctionSet, device: torch.device
) -> StructureDescriptors:
    """One structure's descriptors; its Jacobians merged per atom pair
    (:func:`merge_images`) when it has forces."""
    positions = torch.tensor(structure.positions, dtype=torch.float64, device=device)
    cell = torch.tensor(structure.cell, dtype=torch.float64, device=device)
    species = symmetry_functions.species(structure.symbols, device=device)
    neighbors = symmetry_functions.neighbor_list(positions, cell, structure.pbc)
    vectors = pair_vectors(positions, cell, neighbors)
    if not structure.has_forces:
        with torch.no_grad():
            features = symmetry_functions.from_pair_vectors(vectors, neighbors, species)
        empty = np.zeros(0, dtype=np.int32)
        return StructureDescriptors(features.cpu().numpy(), empty, empty, None)
    features, jacobian = symmetry_functions.with_pair_jacobian(vectors, neighbors, species)
    center, neighbor, merged = merge_images(neighbors.center, neighbors.neighbor, jacobian, structure.num_atoms)
    return StructureDescriptors(
        features=features.cpu().numpy(),
        center=center.cpu().numpy().astype(np.int32),
        neighbor=neighbor.cpu().numpy().astype(np.int32),
        jacobian=merged.cpu().numpy(),
    )


def merge_images(
    center: torch.Tensor, neighbor: torch.Tensor, jacobian: torch.Tensor, n_atoms: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pair Jacobians (P, F, 3) summed over the images of each (centre,
    atom) pair, pairs of an atom with itself left out: the (centre, atom)
    pairs in centre-major order and their Jacobians, in float64.

    The forces training computes from them are those of the per-pair
    Jacobians: a pair of an atom with its own image adds J_p at the centre
    and takes it away again at the neighbour, the same atom.
    """
    distinct = center != neighbor
    key = center[distinct] * n_atoms + neighbor[distinct]
    keys, slot = torch.unique(key, sorted=True, return_inverse=True)
    merged = jacobian.new_zeros((len(keys), *jacobian.shape[1:])).index_add_(0, slot, jacobian[distinct])
    return keys // n_atoms, keys % n_atoms, merged
