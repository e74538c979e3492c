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
from dataclasses import dataclass, replace

import numpy as np
import torch

from mlpotential.backends.gpr.closed_form import CartesianPredictor
from mlpotential.backends.gpr.descriptors import Descriptor
from mlpotential.backends.gpr.kernel import (
    KernelBlocks,
    assemble,
    block_size,
    cartesian_blocks,
    descriptor_blocks,
    force_block_view,
    store_upper,
)


class IllConditionedError(ValueError):
    """The covariance matrix is not positive definite even with jitter."""


@dataclass
class Hyperparameters:
    """Kernel ``scale`` (descriptor length units; Angstrom for Cartesian),
    ``weight`` (eV, the prior standard deviation of an energy), ``noise``
    (force noise, eV/Angstrom; the energy noise is ``noise * noise_factor`` eV),
    ``noise_placement`` ``aenet`` or ``per_observation`` (see
    :meth:`GaussianProcess._noise_diagonal`)."""

    scale: float = 0.4
    weight: float = 1.0
    noise: float = 1e-6
    noise_factor: float = 0.5
    noise_placement: str = "aenet"


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
        self.train_energies: np.ndarray | None = None
        self.train_forces: np.ndarray | None = None
        self.jitter_added = 0.0
        self._features: tuple[torch.Tensor, torch.Tensor] | None = None
        self._targets: torch.Tensor | None = None
        self._factor: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None
        self._closed_form: CartesianPredictor | None = None
        self._variance_ready: bool | None = None
        self._fitted_with: Hyperparameters | None = None
        species = descriptor.center_species(self.symbols)
        self._center_mask = None
        if species is not None:
            species = species.to(self.device)
            self._center_mask = (species[:, None] == species[None, :]).to(torch.float64)

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

    def _blocks(self, first, second, ff_out: torch.Tensor | None = None) -> KernelBlocks:
        """Kernel blocks of two batches of features; ``ff_out``: where to
        compute the Cartesian force-force block."""
        scale, weight = self.hyper.scale, self.hyper.weight
        if self.descriptor.cartesian:
            return cartesian_blocks(first[0], second[0], scale, weight, ff_out)
        return descriptor_blocks(first[0], first[1], second[0], second[1], scale, weight, self._center_mask)

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
        self.train_energies = np.asarray(energies, dtype=np.float64)
        self.train_forces = np.asarray(forces, dtype=np.float64)
        energies_t = torch.as_tensor(self.train_energies, device=self.device)
        forces_t = torch.as_tensor(self.train_forces, device=self.device)
        self._targets = torch.cat((energies_t.reshape(-1), forces_t.reshape(-1)))
        self._features = self._structure_features(self.train_positions, self.train_cells)

    def _noisy_covariance(self) -> torch.Tensor:
        """The training covariance plus the noise, in aenet-gpr's layout
        (energies first, then forces), built block by block as the lower
        triangle of a column-major (M, M) matrix (``storage.mT``, see
        :func:`store_upper`): what a lower Cholesky factorisation reads, in
        the layout LAPACK factorises in place. Entries above the diagonal are
        undefined."""
        n = self.num_train
        size = self.num_observations
        storage = torch.empty((size, size), dtype=torch.float64, device=self.device)
        step = block_size(self.batch_size, self._pair_bytes())
        for rows in _batches(n, step):
            first = self._take(self._features, rows)
            for cols in _batches(n, step):
                if cols.start >= rows.start:
                    # Cartesian force blocks are exactly symmetric: computed where they are stored
                    ff_out = force_block_view(storage, rows, cols, n, self.dim) if self.descriptor.cartesian else None
                    store_upper(storage, self._blocks(first, self._take(self._features, cols), ff_out), rows, cols, n)
        matrix = storage.mT
        matrix.diagonal().add_(self._noise_diagonal())
        return matrix

    def _index(self, rows: slice, n: int, dim: int) -> torch.Tensor:
        """Matrix indices of the energies and forces of structures ``rows``."""
        energies = torch.arange(rows.start, rows.stop, device=self.device)
        forces = torch.arange(n + rows.start * dim, n + rows.stop * dim, device=self.device)
        return torch.cat((energies, forces))

    def fit(self) -> None:
        """Factorise the covariance, fit the constant prior, solve for the
        weights."""
        n = self.num_train
        factor, self.jitter_added = self._factorize()
        self._factor = factor
        self._closed_form = None
        self._variance_ready = None
        unit = torch.zeros_like(self._targets)
        unit[:n] = 1.0
        if self.fixed_prior is None:
            # the constant m maximising the likelihood: (u' K^-1 y) / (u' K^-1 u)
            kinv_u = cholesky_solve(factor, unit[:, None])[:, 0]
            self.prior_constant = float(kinv_u @ self._targets / (kinv_u @ unit))
        residual = self._targets - self.prior_constant * unit
        self._alpha = cholesky_solve(factor, residual[:, None])[:, 0]
        self._fitted_with = replace(self.hyper)

    def is_fitted(self) -> bool:
        """Whether the model is fitted with its current hyperparameters."""
        return self._fitted_with == self.hyper

    def ensure_fitted(self) -> None:
        """Fit unless the model is fitted with its current hyperparameters."""
        if not self.is_fitted():
            self.fit()

    def _factorize(self) -> tuple[torch.Tensor, float]:
        """The lower Cholesky factor of the noisy covariance (column-major,
        computed in place, zero above the diagonal) and the jitter added to
        its diagonal: none, or when the matrix is not numerically positive
        definite, aenet-gpr's remedy, about 4 machine epsilons of the trace."""
        matrix = self._noisy_covariance()
        trace = torch.sum(matrix.diagonal())
        info = torch.zeros((), dtype=torch.int32, device=self.device)
        torch.linalg.cholesky_ex(matrix, out=(matrix, info))
        if int(info) == 0:
            return matrix, 0.0
        eps = torch.finfo(torch.float64).eps
        jitter = trace * (1 / (1 / (4.0 * eps) - 1))
        matrix = self._noisy_covariance()  # the failed factorisation overwrote it
        matrix.diagonal().add_(jitter)
        torch.linalg.cholesky_ex(matrix, out=(matrix, info))
        if int(info) != 0:
            raise IllConditionedError(
                f"the covariance of the {self.num_train} training structures ({self.describe()}) is not "
                "positive definite even with jitter: near-duplicate structures? "
                "(try 'Filter True' or a larger noise)"
            )
        return matrix, float(jitter)

    def _noise_diagonal(self) -> torch.Tensor:
        """Noise variances for the diagonal. ``per_observation``: energy
        noise on the energies, force noise on the forces. ``aenet``: aenet-gpr
        3.7.9 adds the per-structure vector [energy, D x force] repeated n
        times along the diagonal of its energies-first matrix, so the energy
        noise lands on every (1 + D)-th entry; with noise 1e-6 the
        covariance is so ill-conditioned that this choice shows in the
        predictions, so it is kept for agreement."""
        n, dim = self.num_train, self.dim
        energy_sd = torch.tensor(self.hyper.noise, dtype=torch.float64, device=self.device) * self.hyper.noise_factor
        force_sd = torch.tensor(self.hyper.noise, dtype=torch.float64, device=self.device)
        if self.hyper.noise_placement == "aenet":
            per_structure = torch.cat((energy_sd.reshape(1), force_sd.expand(dim)))
            return (per_structure.expand(n, 1 + dim).reshape(-1)) ** 2
        return torch.cat((energy_sd.expand(n), force_sd.expand(n * dim))) ** 2

    def log_marginal_likelihood(self) -> float:
        """log p(y | hyperparameters) of the fitted model."""
        n = self.num_train
        residual = self._targets.clone()
        residual[:n] -= self.prior_constant
        log_det_half = torch.log(self._cholesky().diagonal()).sum()
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
        force_variance: bool = True,
    ) -> Prediction:
        """Energies, forces and (``variance``) their standard deviations for
        structures (n, N, 3) Angstrom of this model's composition; with
        ``force_variance`` False only the energy's (forces_std is None).
        ``progress(k)`` is called after each batch of k structures.

        Batches follow aenet-gpr's partition (``batch_size``). With the
        closed-form predictor, consecutive batches are evaluated together; a
        batch holding a structure whose closed-form result is dominated by
        rounding (see :class:`CartesianPredictor`) is recomputed with the
        direct formulas."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        count = positions.shape[0]
        force_variance = variance and force_variance
        energies = np.empty(count)
        forces = np.empty((count, self.num_atoms, 3))
        energy_std = np.empty(count) if variance else None
        forces_std = np.empty((count, self.num_atoms, 3)) if force_variance else None

        def store(rows: slice, result) -> None:
            energies[rows] = result[0].cpu().numpy()
            forces[rows] = result[1].cpu().numpy().reshape(-1, self.num_atoms, 3)
            if variance:
                energy_std[rows] = result[2].cpu().numpy()
            if force_variance:
                forces_std[rows] = result[3].cpu().numpy().reshape(-1, self.num_atoms, 3)

        def direct(rows: slice) -> None:
            batch_cells = None if cells is None else np.asarray(cells)[rows]
            features = self._structure_features(positions[rows], batch_cells)
            store(rows, self._predict_direct(features, variance, force_variance))

        batches = even_batches(count, block_size(self.batch_size, self._pair_bytes()))
        closed_form = self.closed_form_predictor(variance) if self.descriptor.cartesian else None
        if closed_form is None:
            for rows in batches:
                direct(rows)
                if progress is not None:
                    progress(rows.stop - rows.start)
            return Prediction(energies, forces, energy_std, forces_std)

        for group in _grouped(batches, closed_form.batch_size(variance, force_variance, self.batch_size)):
            rows = slice(group[0].start, group[-1].stop)
            x = self.descriptor.coordinates(positions[rows]).to(self.device)
            result = closed_form.predict(x, variance, force_variance)
            store(rows, result)
            sensitive = result[4].cpu().numpy()
            for batch in group:
                if sensitive[batch.start - rows.start : batch.stop - rows.start].any():
                    direct(batch)
            if progress is not None:
                progress(rows.stop - rows.start)
        return Prediction(energies, forces, energy_std, forces_std)

    def prepare(self, variance: bool = True) -> None:
        """Do now the one-time work of predictions (for the Cartesian
        descriptor with ``variance``: the inverse Cholesky factor), so that it
        counts as part of building the model rather than of its first use."""
        if self.descriptor.cartesian:
            self.closed_form_predictor(variance)

    def closed_form_predictor(self, variance: bool = True) -> CartesianPredictor | None:
        """The fast Cartesian predictor (built once after a fit), or None when
        ``variance`` is asked for and its explicit inverse of the Cholesky
        factor is not accurate enough (then the direct formulas serve)."""
        if self._closed_form is None:
            self._closed_form = CartesianPredictor(
                self._alpha, self._features[0], self.hyper.scale, self.hyper.weight, self.prior_constant
            )
            self._variance_ready = None
        if variance and self._variance_ready is None:
            # W is built in the factor's storage: the factor is recomputed
            # (the same arithmetic, the same result) if the direct formulas need it
            factor, self._factor = self._cholesky(), None
            self._variance_ready = self._closed_form.prepare_variance(factor, self._probe_columns())
        if variance and not self._variance_ready:
            return None
        return self._closed_form

    def _probe_columns(self) -> torch.Tensor:
        """Kernel columns (M, 8) of training observations: the energy and
        three force components of the first and the last training structure
        (to measure how accurately the explicit inverse applies)."""
        n, dim = self.num_train, self.dim
        ends = slice(0, n, max(n - 1, 1))
        chosen = self._take(self._features, ends)
        rows = torch.cat(
            [
                assemble(self._blocks(self._take(chosen, slice(i, i + 1)), self._features))
                for i in range(chosen[0].shape[0])
            ]
        )
        picks = [0, 1, 2, 3]
        picks += [1 + dim + p for p in picks] if rows.shape[0] > 1 + dim else []
        return rows[picks].T.contiguous()

    def _predict_direct(self, features, variance: bool, force_variance: bool = True):
        """Any descriptor, in aenet-gpr's arithmetic: the kernel rows of the
        batch against all training observations, mean = rows @ weights,
        variance = k(x, x) - rows K^-1 rows'."""
        n, dim = self.num_train, self.dim
        count = features[0].shape[0]
        cross = torch.empty((count * (1 + dim), self.num_observations), dtype=torch.float64, device=self.device)
        step = block_size(self.batch_size, self._pair_bytes())
        for cols in _batches(n, step):
            block = assemble(self._blocks(features, self._take(self._features, cols)))
            cross[:, self._index(cols, n, dim)] = block
        mean = torch.matmul(cross, self._alpha)
        energy = mean[:count] + self.prior_constant
        force = mean[count:].reshape(count, dim)
        if not variance:
            return energy, force
        if not force_variance:
            cross = cross[:count]
        explained = torch.matmul(cross, cholesky_solve(self._cholesky(), cross.T)).diagonal()
        prior_var = torch.empty(cross.shape[0], dtype=torch.float64, device=self.device)
        for i in range(count):
            single = self._take(features, slice(i, i + 1))
            blocks = self._blocks(single, single)
            prior_var[i] = blocks.ee[0, 0]
            if force_variance:
                prior_var[count + i * dim : count + (i + 1) * dim] = blocks.ff[0, 0].diagonal()
        std = (prior_var - explained).clamp_min(0).sqrt()
        return energy, force, std[:count], std[count:].reshape(count, dim) if force_variance else None

    def _cholesky(self) -> torch.Tensor:
        """The Cholesky factor, recomputed if the closed-form predictor
        took its storage."""
        if self._alpha is None:
            raise RuntimeError("the model is not fitted")
        if self._factor is None:
            self._factor, _ = self._factorize()
        return self._factor


def cholesky_solve(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """K^-1 rhs for rhs (M, k) and the lower Cholesky factor of K, by two
    triangular solves: the two of LAPACK's potrs, bit for bit, without the
    copy of the (M, M) factor that torch.cholesky_solve makes."""
    half = torch.linalg.solve_triangular(factor, rhs, upper=False)
    return torch.linalg.solve_triangular(factor.mT, half, upper=True)


def _grouped(batches: list[slice], size: int) -> Iterator[list[slice]]:
    """Consecutive batches joined into groups of at most ``size`` structures
    (a batch larger than ``size`` forms a group of its own)."""
    group: list[slice] = []
    for batch in batches:
        if group and batch.stop - group[0].start > size:
            yield group
            group = []
        group.append(batch)
    if group:
        yield group


def even_batches(count: int, size: int) -> list[slice]:
    """Split ``count`` items into nearly equal batches of about ``size``: a
    remainder of at least half a batch becomes a batch of its own, a smaller
    one is spread over the others (the batching of aenet-gpr, kept so that
    the same batches give the same rounding)."""
    if count == 0:
        return []
    full, remainder = divmod(count, size)
    number = full
    if remainder and (remainder >= size // 2 or full == 0):
        number += 1
    number = max(number, 1)
    base, extra = divmod(count, number)
    slices, start = [], 0
    for index in range(number):
        stop = start + base + (1 if index < extra else 0)
        slices.append(slice(start, stop))
        start = stop
    return slices
