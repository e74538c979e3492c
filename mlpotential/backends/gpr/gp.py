"""Gaussian-process regression on energies and forces of structures of one
composition (the method of aenet-gpr: Yeu et al., npj Comput. Mater. 11, 156
(2025)).

Observations are the energies of the n training structures followed by
their forces (D = 3 * atoms each); the covariance is the squared-exponential
kernel of :mod:`mlpotential.backends.gpr.kernel` plus a diagonal noise
(``noise * noise_factor`` on energies, ``noise`` on forces, as standard
deviations). The prior mean is a constant energy (zero forces) chosen to
maximise the marginal likelihood. Everything is float64 torch on the chosen
device; kernel matrices are built in blocks of at most ``batch_size``
structures. Energies eV, forces eV/Angstrom, uncertainties are standard
deviations in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mlpotential.backends.gpr.descriptors import Descriptor
from mlpotential.backends.gpr.kernel import (
    BLOCK_MEMORY_BYTES,
    KernelBlocks,
    assemble,
    block_size,
    cartesian_blocks,
    descriptor_blocks,
)


class IllConditionedError(ValueError):
    """The covariance matrix is not positive definite even with jitter."""


@dataclass
class Hyperparameters:
    """Kernel ``scale`` (descriptor length units; Angstrom for Cartesian),
    ``weight`` (eV, the prior standard deviation of an energy), ``noise``
    (force noise, eV/Angstrom; the energy noise is ``noise * noise_factor`` eV)."""

    scale: float = 0.4
    weight: float = 1.0
    noise: float = 1e-6
    noise_factor: float = 0.5


@dataclass
class Prediction:
    """Predicted energies (n,) eV and forces (n, N, 3) eV/Angstrom, with
    their predictive standard deviations when asked for."""

    energies: np.ndarray
    forces: np.ndarray
    energy_std: np.ndarray | None = None
    forces_std: np.ndarray | None = None


def _batches(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


class GaussianProcess:
    """A GPR surrogate for one composition (ordered elements, periodicity)."""

    def __init__(
        self,
        descriptor: Descriptor,
        symbols: tuple[str, ...],
        hyperparameters: Hyperparameters,
        batch_size: int = 5,
        device: torch.device | str = "cpu",
        prior_constant: float | None = None,
    ) -> None:
        """``prior_constant`` None: fitted to the data on every ``fit``."""
        self.descriptor = descriptor
        self.symbols = tuple(symbols)
        self.hyper = hyperparameters
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.fixed_prior = prior_constant
        self.prior_constant = 0.0 if prior_constant is None else prior_constant
        self.train_positions: np.ndarray | None = None
        self.train_cells: np.ndarray | None = None
        self.jitter_added = 0.0
        self._features: tuple[torch.Tensor, torch.Tensor] | None = None
        self._targets: torch.Tensor | None = None
        self._factor: torch.Tensor | None = None
        self._inverse_factor: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None
        self._projected: torch.Tensor | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def num_atoms(self) -> int:
        return len(self.symbols)

    @property
    def dim(self) -> int:
        return 3 * self.num_atoms

    @property
    def num_train(self) -> int:
        return 0 if self.train_positions is None else self.train_positions.shape[0]

    @property
    def num_observations(self) -> int:
        return self.num_train * (1 + self.dim)

    # ------------------------------------------------------------- features
    def _structure_features(self, positions: np.ndarray, cells: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.descriptor.cartesian:
            coordinates = self.descriptor.coordinates(positions).to(self.device)
            return coordinates, coordinates
        features, jacobian = self.descriptor.features(self.symbols, positions, cells)
        return features.to(self.device), jacobian.to(self.device)

    def _pair_bytes(self) -> int:
        """Bytes of the largest temporary per structure pair of a kernel block."""
        if self.descriptor.cartesian:
            return 8 * self.dim * self.dim
        return 2 * self.descriptor.feature_bytes_per_structure(self.num_atoms)

    def _blocks(self, first, second) -> KernelBlocks:
        scale, weight = self.hyper.scale, self.hyper.weight
        if self.descriptor.cartesian:
            return cartesian_blocks(first[0], second[0], scale, weight)
        return descriptor_blocks(first[0], first[1], second[0], second[1], scale, weight)

    @staticmethod
    def _take(features: tuple[torch.Tensor, torch.Tensor], rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        return features[0][rows], features[1][rows]

    # ------------------------------------------------------------- training
    def set_training_data(
        self, positions: np.ndarray, cells: np.ndarray | None, energies: np.ndarray, forces: np.ndarray
    ) -> None:
        """Store training structures (n, N, 3) Angstrom with energies (n,) eV
        and forces (n, N, 3) eV/Angstrom, and compute their descriptors."""
        self.train_positions = np.asarray(positions, dtype=np.float64)
        self.train_cells = None if cells is None else np.asarray(cells, dtype=np.float64)
        energies = torch.as_tensor(np.asarray(energies, dtype=np.float64), device=self.device)
        forces = torch.as_tensor(np.asarray(forces, dtype=np.float64), device=self.device)
        self._targets = torch.cat((energies.reshape(-1), forces.reshape(-1)))
        self._features = self._structure_features(self.train_positions, self.train_cells)

    def covariance(self) -> torch.Tensor:
        """The training covariance matrix without noise, built block by block
        (aenet-gpr's layout: energies first, then forces)."""
        n, dim = self.num_train, self.dim
        size = n * (1 + dim)
        matrix = torch.empty((size, size), dtype=torch.float64, device=self.device)
        step = block_size(self.batch_size, self._pair_bytes())
        for rows in _batches(n, step):
            row_index = self._index(rows, n, dim)
            first = self._take(self._features, rows)
            for cols in _batches(n, step):
                if cols.start < rows.start:
                    continue
                col_index = self._index(cols, n, dim)
                block = assemble(self._blocks(first, self._take(self._features, cols)))
                matrix[row_index[:, None], col_index] = block
                if cols.start != rows.start:
                    matrix[col_index[:, None], row_index] = block.T
        return matrix

    def _index(self, rows: slice, n: int, dim: int) -> torch.Tensor:
        """Matrix indices of the energies and forces of structures ``rows``."""
        energies = torch.arange(rows.start, rows.stop, device=self.device)
        forces = torch.arange(n + rows.start * dim, n + rows.stop * dim, device=self.device)
        return torch.cat((energies, forces))

    def fit(self) -> None:
        """Factorise the covariance (adding aenet-gpr's jitter when it is not
        numerically positive definite), fit the constant prior, solve for the
        weights."""
        n = self.num_train
        matrix = self.covariance()
        energy_noise = (self.hyper.noise * self.hyper.noise_factor) ** 2
        matrix.diagonal()[:n] += energy_noise
        matrix.diagonal()[n:] += self.hyper.noise**2
        factor, info = torch.linalg.cholesky_ex(matrix)
        self.jitter_added = 0.0
        if int(info) != 0:
            # aenet-gpr's remedy: a jitter of about 4 machine epsilons of the trace
            eps = torch.finfo(torch.float64).eps
            jitter = matrix.diagonal().sum() / (1 / (4.0 * eps) - 1)
            matrix.diagonal().add_(jitter)
            self.jitter_added = float(jitter)
            factor, info = torch.linalg.cholesky_ex(matrix)
            if int(info) != 0:
                raise IllConditionedError(
                    f"the covariance of the {n} training structures ({self.describe()}) is not positive definite "
                    "even with jitter: near-duplicate structures? (try 'Filter True' or a larger noise)"
                )
        del matrix
        self._factor = factor
        self._inverse_factor = None
        self._projected = None
        unit = torch.zeros_like(self._targets)
        unit[:n] = 1.0
        if self.fixed_prior is None:
            # the constant m maximising the likelihood: (u' K^-1 y) / (u' K^-1 u)
            kinv_u = torch.cholesky_solve(unit[:, None], factor)[:, 0]
            self.prior_constant = float(kinv_u @ self._targets / (kinv_u @ unit))
        residual = self._targets - self.prior_constant * unit
        self._alpha = torch.cholesky_solve(residual[:, None], factor)[:, 0]

    def log_marginal_likelihood(self) -> float:
        """log p(y | hyperparameters) of the fitted model."""
        n = self.num_train
        residual = self._targets.clone()
        residual[:n] -= self.prior_constant
        log_det_half = torch.log(self._factor.diagonal()).sum()
        size = residual.shape[0]
        return float(-0.5 * residual @ self._alpha - log_det_half - 0.5 * size * math.log(2 * math.pi))

    def data_fit_term(self) -> float:
        """(y - m)' K^-1 (y - m) of the fitted model."""
        n = self.num_train
        residual = self._targets.clone()
        residual[:n] -= self.prior_constant
        return float(residual @ self._alpha)

    def describe(self) -> str:
        return f"{len(self.symbols)} atoms, {self.descriptor.kind} descriptor"

    # ------------------------------------------------------------ prediction
    def predict(
        self,
        positions: np.ndarray,
        cells: np.ndarray | None = None,
        variance: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Prediction:
        """Energies, forces and (``variance``) their standard deviations for
        structures (n, N, 3) Angstrom of this model's composition.
        ``progress(k)`` is called after each batch of k structures."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        count = positions.shape[0]
        energies = np.empty(count)
        forces = np.empty((count, self.num_atoms, 3))
        energy_std = np.empty(count) if variance else None
        forces_std = np.empty((count, self.num_atoms, 3)) if variance else None
        for rows in _batches(count, self._prediction_batch(variance)):
            batch_cells = None if cells is None else np.asarray(cells)[rows]
            features = self._structure_features(positions[rows], batch_cells)
            if self.descriptor.cartesian:
                result = self._predict_cartesian(features[0], variance)
            else:
                result = self._predict_general(features, variance)
            energies[rows] = result[0].cpu().numpy()
            forces[rows] = result[1].cpu().numpy().reshape(-1, self.num_atoms, 3)
            if variance:
                energy_std[rows] = result[2].cpu().numpy()
                forces_std[rows] = result[3].cpu().numpy().reshape(-1, self.num_atoms, 3)
            if progress is not None:
                progress(rows.stop - rows.start)
        return Prediction(energies, forces, energy_std, forces_std)

    def _prediction_batch(self, variance: bool) -> int:
        if self.descriptor.cartesian:
            # the largest temporaries are (batch, n + D, M) for the variance and (batch, n, D) for the mean
            per_structure = 8 * ((self.num_train + self.dim) * self.num_observations if variance else self.num_train * self.dim)
            return max(1, min(max(self.batch_size, 64), BLOCK_MEMORY_BYTES // max(per_structure, 1)))
        return block_size(self.batch_size, self._pair_bytes())

    def _predict_cartesian(self, x: torch.Tensor, variance: bool):
        """Closed forms for Cartesian coordinates ``x`` (B, D): the kernel
        rows of a structure against training structure y only depend on
        d = x - X_y, so the mean costs O(n D) per structure and the variance
        O(M n D) with W = L^-T, the transposed inverse Cholesky factor
        (M = n (1 + D) observations)."""
        n, dim = self.num_train, self.dim
        l2 = self.hyper.scale**2
        train_x = self._features[0]
        d = x[:, None, :] - train_x[None, :, :]  # (B, n, D)
        k = self.hyper.weight**2 * torch.exp(-(d * d).sum(-1) / (2 * l2))  # (B, n)
        alpha_e = self._alpha[:n]
        alpha_f = self._alpha[n:].reshape(n, dim)
        d_dot_af = torch.einsum("bnd,nd->bn", d, alpha_f)
        energy = self.prior_constant + k @ alpha_e - (k * d_dot_af).sum(1) / l2
        force = torch.einsum("bn,bnd->bd", k * (alpha_e[None, :] - d_dot_af / l2) / l2, d)
        force += (k / l2) @ alpha_f
        if not variance:
            return energy, force
        # v = L^-1 c for each kernel column c of a predicted quantity; with
        # W_E, W_F the energy and force rows of W and g_y = W_F[y]^T d_y:
        #   v_E   = W_E^T k - sum_y k_y/l2 g_y
        #   v_F,i = sum_y k_y/l2 (d_yi W_E[y] + W_F[y, i] - d_yi/l2 g_y)
        w_e, w_f = self._inverse_rows()
        g = torch.einsum("bd,ydm->bym", x, w_f) - self._projected_train()[None]  # (B, n, M)
        k_l2 = k / l2
        v_e = k @ w_e - torch.einsum("by,bym->bm", k_l2, g)
        v_f = torch.matmul((k_l2[..., None] * d).transpose(1, 2), w_e)  # (B, D, M)
        v_f += (k_l2 @ w_f.reshape(n, -1)).reshape(v_f.shape)
        v_f -= torch.matmul((k_l2[..., None] * d / l2).transpose(1, 2), g)
        w2 = self.hyper.weight**2
        var_e = w2 - (v_e * v_e).sum(-1)
        var_f = w2 / l2 - (v_f * v_f).sum(-1)
        return energy, force, var_e.clamp_min(0).sqrt(), var_f.clamp_min(0).sqrt()

    def _inverse_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W = L^-T split into energy rows (n, M) and force rows (n, D, M)."""
        w = self.inverse_factor()
        n = self.num_train
        return w[:n], w[n:].view(n, self.dim, -1)

    def _projected_train(self) -> torch.Tensor:
        """(n, M): W_F[y]^T X_y for each training structure y."""
        if self._projected is None:
            _, w_f = self._inverse_rows()
            self._projected = torch.einsum("yd,ydm->ym", self._features[0], w_f)
        return self._projected

    def inverse_factor(self) -> torch.Tensor:
        """W = L^-T (upper triangular), computed once, column block by column
        block of L^-1 (whose leading rows are zero); the Cholesky factor is
        then released, since predictions need only W and the weights."""
        if self._inverse_factor is None:
            factor = self._cholesky()
            size = factor.shape[0]
            inverse = torch.zeros((size, size), dtype=torch.float64, device=self.device)
            step = max(1, BLOCK_MEMORY_BYTES // (8 * size))
            for start in range(0, size, step):
                stop = min(start + step, size)
                rhs = torch.zeros((size - start, stop - start), dtype=torch.float64, device=self.device)
                rhs[: stop - start].fill_diagonal_(1.0)
                block = torch.linalg.solve_triangular(factor[start:, start:], rhs, upper=False)
                inverse[start:stop, start:] = block.T
            self._inverse_factor = inverse
            self._projected = None
            self._factor = None
        return self._inverse_factor

    def _predict_general(self, features, variance: bool):
        """Any descriptor: kernel rows against the training set in blocks,
        variance by a triangular solve."""
        n, dim = self.num_train, self.dim
        count = features[0].shape[0]
        cross = torch.empty((count * (1 + dim), self.num_observations), dtype=torch.float64, device=self.device)
        step = block_size(self.batch_size, self._pair_bytes())
        for cols in _batches(n, step):
            block = assemble(self._blocks(features, self._take(self._features, cols)))
            cross[:, self._index(cols, n, dim)] = block
        mean = cross @ self._alpha
        energy = mean[:count] + self.prior_constant
        force = mean[count:].reshape(count, dim)
        if not variance:
            return energy, force
        solved = torch.linalg.solve_triangular(self._cholesky(), cross.T, upper=False)
        explained = (solved * solved).sum(0)
        prior_var = torch.empty(count * (1 + dim), dtype=torch.float64, device=self.device)
        for i in range(count):
            single = self._take(features, slice(i, i + 1))
            blocks = self._blocks(single, single)
            prior_var[i] = blocks.ee[0, 0]
            prior_var[count + i * dim : count + (i + 1) * dim] = blocks.ff[0, 0].diagonal()
        std = (prior_var - explained).clamp_min(0).sqrt()
        return energy, force, std[:count], std[count:].reshape(count, dim)

    def _cholesky(self) -> torch.Tensor:
        if self._factor is None:
            raise RuntimeError("the Cholesky factor was released; refit the model")
        return self._factor
