"""The kernel blocks against automatic differentiation of the energy kernel
(an independent route to the same derivatives) and against aenet-gpr's own
kernel code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpotential.backends.gpr.kernel import assemble, cartesian_blocks, descriptor_blocks

SCALE, WEIGHT = 0.7, 1.3


def toy_descriptor(positions: torch.Tensor) -> torch.Tensor:
    """A smooth per-atom descriptor (N, 2): Gaussian neighbour densities of
    two widths (Angstrom^-2)."""
    distance_sq = ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(-1)
    off_diagonal = 1.0 - torch.eye(positions.shape[0], dtype=positions.dtype)
    return torch.stack([(torch.exp(-eta * distance_sq) * off_diagonal).sum(1) for eta in (0.3, 1.1)], dim=1)


def toy_features(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (C, F) and Jacobian (C, 3N, F) of the toy descriptor."""
    jacobian = torch.autograd.functional.jacobian(toy_descriptor, positions)  # (C, F, N, 3)
    num_atoms = positions.shape[0]
    return toy_descriptor(positions), jacobian.permute(0, 2, 3, 1).reshape(num_atoms, 3 * num_atoms, -1)


def energy_kernel(r1: torch.Tensor, r2: torch.Tensor, descriptor, mask=None) -> torch.Tensor:
    f1, f2 = descriptor(r1), descriptor(r2)
    sq = ((f1[:, None, :] - f2[None, :, :]) ** 2).sum(-1)
    k = WEIGHT**2 * torch.exp(-sq / (2 * SCALE**2))
    return (k if mask is None else k * mask).sum()


def autograd_blocks(r1: torch.Tensor, r2: torch.Tensor, descriptor, mask=None):
    """ee, cov(F1, E2) = -dk/dr1, cov(E1, F2) = -dk/dr2, cov(F1, F2) =
    d2k/dr1 dr2, by automatic differentiation."""

    def k(a, b):
        return energy_kernel(a.reshape(-1, 3), b.reshape(-1, 3), descriptor, mask)

    x1, x2 = r1.reshape(-1), r2.reshape(-1)
    ee = k(x1, x2)
    grad1, grad2 = torch.autograd.functional.jacobian(k, (x1, x2))
    hessian = torch.autograd.functional.hessian(k, (x1, x2))
    return ee, -grad1, -grad2, hessian[0][1]


def random_positions(seed: int, count: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, 3), generator=generator, dtype=torch.float64) * 2.5


def test_cartesian_blocks_are_the_derivatives_of_the_energy_kernel() -> None:
    r1, r2 = random_positions(1), random_positions(2)
    blocks = cartesian_blocks(r1.reshape(1, -1), r2.reshape(1, -1), SCALE, WEIGHT)
    ee, fe, ef, ff = autograd_blocks(r1, r2, lambda r: r.reshape(1, -1))
    torch.testing.assert_close(blocks.ee[0, 0], ee, rtol=1e-13, atol=0)
    torch.testing.assert_close(blocks.fe[0, 0], fe, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(blocks.ef[0, 0], ef, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(blocks.ff[0, 0], ff, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("masked", [False, True])
def test_descriptor_blocks_are_the_derivatives_of_the_energy_kernel(masked: bool) -> None:
    r1, r2 = random_positions(3), random_positions(4)
    mask = None
    if masked:  # atoms 0, 1 of one element, 2, 3 of another
        species = torch.tensor([0, 0, 1, 1])
        mask = (species[:, None] == species[None, :]).to(torch.float64)
    (f1, j1), (f2, j2) = toy_features(r1), toy_features(r2)
    blocks = descriptor_blocks(f1[None], j1[None], f2[None], j2[None], SCALE, WEIGHT, mask)
    ee, fe, ef, ff = autograd_blocks(r1, r2, toy_descriptor, mask)
    torch.testing.assert_close(blocks.ee[0, 0], ee, rtol=1e-12, atol=0)
    torch.testing.assert_close(blocks.fe[0, 0], fe, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(blocks.ef[0, 0], ef, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(blocks.ff[0, 0], ff, rtol=1e-10, atol=1e-13)


def test_general_blocks_reduce_to_the_cartesian_ones_for_the_identity_jacobian() -> None:
    x1 = random_positions(5).reshape(1, -1).repeat(2, 1) + torch.tensor([[0.0], [0.1]], dtype=torch.float64)
    x2 = random_positions(6).reshape(1, -1).repeat(3, 1) * torch.tensor([[1.0], [1.05], [0.97]], dtype=torch.float64)
    eye = torch.eye(x1.shape[1], dtype=torch.float64)
    general = descriptor_blocks(
        x1[:, None], eye.expand(2, 1, -1, -1), x2[:, None], eye.expand(3, 1, -1, -1), SCALE, WEIGHT
    )
    torch.testing.assert_close(
        assemble(general), assemble(cartesian_blocks(x1, x2, SCALE, WEIGHT)), rtol=1e-11, atol=1e-12
    )


def test_assembled_matrices_equal_aenet_gprs_kernel() -> None:
    """aenet-gpr's FPKernel on the same features: Cartesian bitwise, a
    general descriptor to rounding."""
    from aenet_gpr.src.pytorch_kernel import FPKernel

    structures = [random_positions(seed) for seed in range(10, 15)]
    num_atoms = structures[0].shape[0]
    params = dict(scale=torch.tensor(SCALE, dtype=torch.float64), weight=torch.tensor(WEIGHT, dtype=torch.float64))
    kernel = FPKernel(species=["H"] * num_atoms, pbc=False, Natom=num_atoms, Nmask=3 * num_atoms)
    kernel.set_params(params)

    x = torch.stack([r.reshape(-1) for r in structures])
    identity = torch.eye(3 * num_atoms, dtype=torch.float64).reshape(num_atoms, 3, 3 * num_atoms)
    theirs = kernel.kernel_matrix_batch(x[:, None], identity.expand(5, 1, -1, -1, -1), batch_size=2)
    assert torch.equal(assemble(cartesian_blocks(x, x, SCALE, WEIGHT)), theirs)

    features = [toy_features(r) for r in structures]
    fp = torch.stack([f for f, _ in features])
    jac = torch.stack([j for _, j in features])
    theirs = kernel.kernel_matrix_batch(fp, jac.reshape(5, num_atoms, num_atoms, 3, -1), batch_size=2)
    ours = assemble(descriptor_blocks(fp, jac, fp, jac, SCALE, WEIGHT))
    torch.testing.assert_close(ours, theirs, rtol=1e-11, atol=1e-13)
    assert np.allclose(ours.numpy(), ours.numpy().T, rtol=0, atol=1e-13)
