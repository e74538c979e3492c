"""Training an HDNNP model on energies and forces (the Python API behind
``mlpotential train``).

>>> from mlpotential.backends.hdnnp.config import load_config
>>> from mlpotential.backends.hdnnp.training import train
>>> result = train(load_config("train.yaml"))
>>> result.errors["test"]            # {"energy_rmse": eV/atom, "force_rmse": eV/Angstrom, ...}

Forces are trained without differentiating through the symmetry functions
each epoch: the descriptors and their Jacobians with respect to the atom
positions are computed once (and kept in the descriptor store); the predicted
force is then F = -dE/dr = sum over atom pairs of (dE/dG_i . J_p) moved from
the neighbour to the centre, which costs one small contraction per batch.

The same code trains in one process and in several (``torch.distributed``,
see :mod:`.ranks` and :mod:`.sharding`): each rank holds its share of every
batch, and DistributedDataParallel sums the gradients.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mlpotential.atomistic.structures import DataError, Structure, load_structures, require_labels
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.backends.hdnnp.config import LossSettings, Stage, TrainingConfig
from mlpotential.backends.hdnnp.descriptor_store import DescriptorStore, StructureDescriptors
from mlpotential.backends.hdnnp.model_file import save_model
from mlpotential.backends.hdnnp.network import HDNNPModel, composition_matrix
from mlpotential.backends.hdnnp.ranks import Ranks, joined
from mlpotential.backends.hdnnp.sharding import GlobalBatch, Shards
from mlpotential.backends.hdnnp.training_descriptors import structure_descriptors


@dataclass
class TrainingResult:
    """What a training run produced: the model (float64, CPU), errors per
    set (``train``, ``validation``, ``test``: energy RMSE/MAE in eV/atom,
    force RMSE/MAE in eV/Angstrom), the report written to JSON, and paths."""

    model: HDNNPModel
    errors: dict[str, dict[str, float]]
    report: dict[str, Any]
    model_path: Path
    parity_plot: Path | None = None
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def train(
    config: TrainingConfig,
    structures: Sequence[Structure] | None = None,
    *,
    ranks: Ranks | None = None,
    initial_model: Path | None = None,
) -> TrainingResult:
    """Train a model as ``config`` says. ``structures`` replaces the config's
    ``data`` sources when given (the Python API for data already in memory).
    ``initial_model`` (a model file of the same elements, descriptors and
    network) warm-starts training from its weights, scaling and reference
    energies instead of the seed's fresh networks (active learning retrains
    this way).

    Started by torchrun (or ``mlpotential train --nproc``), each process
    trains its share and rank 0 writes the files; every rank returns the same
    result. ``ranks`` is the process group already joined (see
    :func:`.ranks.joined`); by default this call joins the one torchrun's
    variables describe, a world of one without them."""
    if ranks is not None:
        return _train(config, structures, ranks, initial_model)
    with joined(_training_device(config.device)) as joined_ranks:
        return _train(config, structures, joined_ranks, initial_model)


def _train(
    config: TrainingConfig, structures: Sequence[Structure] | None, ranks: Ranks, initial_model: Path | None
) -> TrainingResult:
    started = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = ranks.device(_training_device(config.device))
    dtype = torch.float64 if config.dtype == "float64" else torch.float32

    everything, split, parameters = _data(config, structures)
    samples = _bootstrap(split["train"], config.seed) if config.bootstrap else split["train"]

    # The batch order's generator: its first draw is the first Adam stage's
    # order, which also deals the samples to the ranks.
    generator = torch.Generator().manual_seed(config.seed)
    first_order = torch.randperm(len(samples), generator=generator)
    force_atoms = np.array([s.num_atoms if s.has_forces else 0 for s in everything])
    shards = Shards.of(samples, first_order, force_atoms, ranks.rank, ranks.size)
    mine = shards.structures(split["validation"], split["test"])

    descriptor_started = time.perf_counter()
    store_path = _store_path(config, ranks)
    with DescriptorStore(store_path) as store:
        local = structure_descriptors([everything[i] for i in mine], parameters, store, device, config.progress)
        counts = ranks.sum(torch.tensor([store.hits, store.misses, store.size_bytes], dtype=torch.float64))
    cache = {
        "hits": int(counts[0]),
        "misses": int(counts[1]),
        "path": str(store_path) if store_path else None,
        "bytes": int(counts[2]),
    }
    if ranks.distributed:
        cache["paths"] = ranks.gather(str(store_path) if store_path else None)
    descriptors = dict(zip(mine, local))
    descriptor_seconds = time.perf_counter() - descriptor_started

    symmetry_functions = SymmetryFunctionSet(parameters)
    species = {i: symmetry_functions.species(s.symbols) for i, s in enumerate(everything)}
    model = _initial_model(parameters, config, everything, samples, descriptors, species, shards, ranks)
    if initial_model is not None:
        _warm_start(model, initial_model)
    model = model.to(device, dtype)
    dataset = _Dataset(mine, [everything[i] for i in mine], local, [species[i] for i in mine], model, dtype, device)
    sets = {name: dataset.batch(shards.evaluation_set(ids)) for name, ids in split.items() if ids and name != "train"}
    sets = {"train": dataset.batch(shards.all_samples()), **sets}

    # Adam's constructor imports torch._dynamo the first time (seconds):
    # done before the clock starts so throughput measures training alone.
    importlib.import_module("torch._dynamo")

    fit_started = time.perf_counter()
    history = _fit(model, _Fitting(dataset, shards, sets, config, ranks, generator, first_order))
    fit_seconds = time.perf_counter() - fit_started

    errors, predictions = {}, {}
    for name, batch in sets.items():
        predictions[name] = _merged(ranks.gather(_prediction_arrays(model, batch)))
        errors[name] = _errors(predictions[name])
    model = model.to("cpu", torch.float64).eval()

    report = {
        "data": {
            "structures": len(everything),
            "with_forces": int(sum(s.has_forces for s in everything)),
            "energy_only": int(sum(not s.has_forces for s in everything)),
            "atoms": int(sum(s.num_atoms for s in everything)),
            "split": {name: len(ids) for name, ids in split.items()},
            "sources": [s.path for s in config.data] if structures is None else ["<in memory>"],
        },
        "descriptor": parameters.to_dict(),
        "network": {"hidden": list(config.network.hidden), "activation": config.network.activation},
        "loss": dataclasses.asdict(config.loss),
        "stages": [dataclasses.asdict(stage) for stage in config.stages],
        "seed": config.seed,
        "split_seed": config.split_seed if config.split_seed is not None else config.seed,
        "bootstrap": config.bootstrap,
        "ranks": ranks.size,
        "device": str(device),
        "dtype": config.dtype,
        "epochs": history["epochs"],
        "best_epoch": history["best_epoch"],
        "early_stopped": history["early_stopped"],
        "errors": errors,
        "descriptor_cache": cache,
        "seconds": {"descriptors": descriptor_seconds, "fit": fit_seconds, "total": time.perf_counter() - started},
        "throughput_structures_per_second": history["structures_seen"] / fit_seconds if fit_seconds > 0 else None,
    }
    model_path = config.resolve(config.model_path)
    plot_path = config.resolve(config.parity_plot)
    if ranks.is_main:
        _write(model, model_path, plot_path, config.resolve(config.report), report, predictions, errors)
    ranks.barrier()  # the files exist when any rank returns
    return TrainingResult(model, errors, report, model_path, plot_path, predictions)


def store_descriptors(config: TrainingConfig, structures: Sequence[Structure] | None = None) -> dict[str, Any]:
    """Compute the descriptors of all the data into the configured store
    (those not there yet), as training would; returns its hits, misses,
    path and size in bytes. Committee members then all read them."""
    everything, _, parameters = _data(config, structures)
    path = config.store_path()
    with DescriptorStore(path) as store:
        structure_descriptors(everything, parameters, store, _training_device(config.device), config.progress)
        return {"hits": store.hits, "misses": store.misses, "path": str(path), "bytes": store.size_bytes}


def _data(
    config: TrainingConfig, structures: Sequence[Structure] | None
) -> tuple[list[Structure], dict[str, list[int]], SymmetryFunctionParameters]:
    """All structures ([training pool..., given test set...]), the split
    (indices into them) and the descriptor of their elements."""
    if structures is None and not config.data:
        raise DataError("no training data given")
    train_pool = list(structures) if structures is not None else _load(config.data, config)
    test_pool = _load(config.test_data, config) if config.test_data else []
    require_labels([*train_pool, *test_pool], need_forces=False, purpose="HDNNP training")
    elements = {s for structure in [*train_pool, *test_pool] for s in structure.symbols}
    parameters = config.descriptor.build(elements)
    missing = elements - set(parameters.elements)
    if missing:
        raise DataError(
            f"the data contain element(s) {', '.join(sorted(missing))} that the descriptor does not list "
            f"({', '.join(parameters.elements)})"
        )
    return [*train_pool, *test_pool], _split(len(train_pool), len(test_pool), config), parameters


def _write(model, model_path, plot_path, report_path, report, predictions, errors) -> None:
    save_model(model, model_path, training={k: report[k] for k in ("data", "errors", "seed", "epochs", "stages")})
    if plot_path is not None:
        from mlpotential.backends.hdnnp.parity import parity_plot

        parity_plot(predictions, errors, plot_path)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _store_path(config: TrainingConfig, ranks: Ranks) -> Path | None:
    """The configured store; with several ranks, one file per rank beside it
    (each holds its rank's structures; SQLite files are not for many writers)."""
    path = config.store_path()
    if path is None or not ranks.distributed:
        return path
    return path.with_name(f"{path.stem}.rank{ranks.rank}of{ranks.size}{path.suffix}")


def _initial_model(
    parameters: SymmetryFunctionParameters,
    config: TrainingConfig,
    structures: Sequence[Structure],
    samples: Sequence[int],
    descriptors: dict[int, StructureDescriptors],
    species: dict[int, torch.Tensor],
    shards: Shards,
    ranks: Ranks,
) -> HDNNPModel:
    """Networks initialised with the seed (the same on every rank); the
    descriptor scaling fitted on the training samples of all ranks, the
    reference energies on all training samples (every rank knows them)."""
    torch.manual_seed(config.seed)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    model = HDNNPModel(parameters, config.network).to(dtype)
    _fit_scaling(model, shards.all_samples().mine.tolist(), descriptors, species, ranks)
    model.fit_reference_energies(
        composition_matrix([species[i] for i in samples], len(parameters.elements)),
        torch.tensor([structures[i].energy for i in samples], dtype=torch.float64),
    )
    return model


def _warm_start(model: HDNNPModel, path: Path) -> None:
    """Replace ``model``'s weights, scaling and reference energies by those
    of the model file ``path``, which must describe the same model."""
    from mlpotential.backends.hdnnp.model_file import load_model

    previous = load_model(path)
    if previous.descriptor != model.descriptor or previous.shape != model.shape:
        raise DataError(
            f"{path}: its elements, descriptors or network differ from this training's; cannot start from it"
        )
    dtype = next(model.parameters()).dtype
    model.load_state_dict({name: value.to(dtype) for name, value in previous.state_dict().items()})


def _fit_scaling(
    model: HDNNPModel,
    samples: Sequence[int],
    descriptors: dict[int, StructureDescriptors],
    species: dict[int, torch.Tensor],
    ranks: Ranks,
    minimum_std: float = 1e-6,
) -> None:
    """Descriptor mean and standard deviation of each element over the
    training samples of all ranks (float64, two passes); features that never
    vary get std 1 (they then carry no information but do no harm)."""
    n_elements, n_features = model.feature_mean.shape
    rows = torch.cat(
        [torch.zeros(0, n_features, dtype=torch.float64)] + [torch.tensor(descriptors[i].features) for i in samples]
    )
    element = torch.cat([torch.zeros(0, dtype=torch.long)] + [species[i] for i in samples])
    count = ranks.sum(
        torch.zeros(n_elements, dtype=torch.float64).index_add_(
            0, element, torch.ones(len(element), dtype=torch.float64)
        )
    )
    total = ranks.sum(torch.zeros(n_elements, n_features, dtype=torch.float64).index_add_(0, element, rows))
    mean = total / count.clamp(min=1)[:, None]
    squares = torch.zeros_like(total).index_add_(0, element, (rows - mean[element]) ** 2)
    std = (ranks.sum(squares) / count.clamp(min=1)[:, None]).sqrt()
    std = torch.where((std > minimum_std) & (count[:, None] > 1), std, torch.ones_like(std))
    with torch.no_grad():
        present = count > 0
        model.feature_mean[present] = mean[present].to(model.feature_mean)
        model.feature_std[present] = std[present].to(model.feature_std)


def _bootstrap(train_ids: list[int], seed: int) -> list[int]:
    """A resample of ``train_ids`` with replacement, as many, sorted."""
    drawn = np.random.default_rng([seed, 1]).integers(0, len(train_ids), len(train_ids))
    return sorted(train_ids[k] for k in drawn)


def _training_device(name: str) -> torch.device:
    from mlpotential.backends.runtime import torch_device

    return torch_device(name)


def _load(sources, config: TrainingConfig) -> list[Structure]:
    structures = []
    for source in sources:
        structures += load_structures(source, base=config.base_dir)
    return structures


def _split(n_pool: int, n_test_given: int, config: TrainingConfig) -> dict[str, list[int]]:
    """Indices into [pool..., given test...]: shuffled with the split seed;
    the test set is the given test data, else a fraction of the pool;
    validation is a fraction of the rest."""
    seed = config.seed if config.split_seed is None else config.split_seed
    order = np.random.default_rng(seed).permutation(n_pool).tolist()
    if n_test_given:
        test = list(range(n_pool, n_pool + n_test_given))
    else:
        n_test = int(round(config.test_fraction * n_pool))
        test, order = order[:n_test], order[n_test:]
    n_validation = int(round(config.validation_fraction * len(order)))
    validation, train_ids = order[:n_validation], order[n_validation:]
    if not train_ids:
        raise DataError(f"no structures left for training ({n_pool} in all); lower test/validation fractions")
    return {"train": sorted(train_ids), "validation": sorted(validation), "test": sorted(test)}


@dataclass
class _Batch:
    """Concatenated structures: atoms, their structure (batch-local), pairs
    (batch-local atom indices) with Jacobians, targets; and the counts of the
    whole batch (all ranks) that divide its loss."""

    structures: torch.Tensor
    features: torch.Tensor
    species: torch.Tensor
    atom_structure: torch.Tensor
    n_atoms: torch.Tensor
    target: torch.Tensor
    forces: torch.Tensor
    force_atoms: torch.Tensor
    center: torch.Tensor
    neighbor: torch.Tensor
    jacobian: torch.Tensor
    global_structures: int
    global_force_components: int


class _Dataset:
    """This rank's structures as flat tensors on the training device;
    targets are energies minus the fitted per-element reference energies
    (eV), so that float32 training loses nothing to large total energies."""

    def __init__(
        self,
        ids: Sequence[int],
        structures: Sequence[Structure],
        descriptors: Sequence[StructureDescriptors],
        species: Sequence[torch.Tensor],
        model: HDNNPModel,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.local = {structure_id: k for k, structure_id in enumerate(ids)}
        reference = model.reference_energy.detach().to("cpu", torch.float64)
        self.n_atoms = torch.tensor([s.num_atoms for s in structures], dtype=torch.long)
        self.atom_start = torch.cumsum(self.n_atoms, 0) - self.n_atoms
        n_features = model.feature_mean.shape[1]
        self.features = torch.cat(
            [torch.zeros(0, n_features, dtype=torch.float64)] + [torch.tensor(d.features) for d in descriptors]
        ).to(device, dtype)
        self.species = torch.cat([torch.zeros(0, dtype=torch.long), *species]).to(device)
        targets = [s.energy - float(reference[sp].sum()) for s, sp in zip(structures, species)]
        self.target = torch.tensor(targets, dtype=torch.float64).to(device, dtype)
        self.has_forces = torch.tensor([s.has_forces for s in structures], dtype=torch.bool)
        self.forces = torch.cat(
            [torch.zeros(0, 3)]
            + [torch.from_numpy(s.forces) if s.has_forces else torch.zeros(s.num_atoms, 3) for s in structures]
        ).to(device, dtype)
        n_pairs = [len(d.center) if s.has_forces else 0 for s, d in zip(structures, descriptors)]
        self.n_pairs = torch.tensor(n_pairs, dtype=torch.long)
        self.pair_start = torch.cumsum(self.n_pairs, 0) - self.n_pairs
        with_forces = [d for s, d in zip(structures, descriptors) if s.has_forces]
        if with_forces:
            self.center = torch.cat([torch.from_numpy(d.center.astype(np.int64)) for d in with_forces]).to(device)
            self.neighbor = torch.cat([torch.from_numpy(d.neighbor.astype(np.int64)) for d in with_forces]).to(device)
            # Stored (P, F, 3), used (P, 3, F): the force contraction is then a batched matrix-vector product.
            jacobian = torch.cat([torch.tensor(d.jacobian) for d in with_forces])
            self.jacobian = jacobian.transpose(1, 2).contiguous().to(device, dtype)
        else:
            self.center = torch.zeros(0, dtype=torch.long, device=device)
            self.neighbor = torch.zeros(0, dtype=torch.long, device=device)
            self.jacobian = torch.zeros((0, 3, n_features), dtype=dtype, device=device)
        self.device = device

    def batch(self, batch: GlobalBatch) -> _Batch:
        """This rank's part of ``batch`` gathered into one."""
        device = self.device
        structures = torch.tensor([self.local[i] for i in batch.mine.tolist()], dtype=torch.long)
        n_atoms = self.n_atoms[structures]
        atoms = _ranges(self.atom_start[structures], n_atoms)
        atom_structure = torch.repeat_interleave(torch.arange(len(structures)), n_atoms)
        batch_atom_start = torch.cumsum(n_atoms, 0) - n_atoms
        n_pairs = self.n_pairs[structures]
        pairs = _ranges(self.pair_start[structures], n_pairs)
        pair_offset = torch.repeat_interleave(batch_atom_start, n_pairs).to(device)
        pairs_d = pairs.to(device)
        atoms_d = atoms.to(device)
        return _Batch(
            structures=batch.mine,
            features=self.features.index_select(0, atoms_d),
            species=self.species.index_select(0, atoms_d),
            atom_structure=atom_structure.to(device),
            n_atoms=n_atoms.to(device, self.features.dtype),
            target=self.target.index_select(0, structures.to(device)),
            forces=self.forces.index_select(0, atoms_d),
            force_atoms=torch.repeat_interleave(self.has_forces[structures], n_atoms).to(device),
            center=self.center.index_select(0, pairs_d) + pair_offset,
            neighbor=self.neighbor.index_select(0, pairs_d) + pair_offset,
            jacobian=self.jacobian.index_select(0, pairs_d),
            global_structures=batch.structures,
            global_force_components=batch.force_components,
        )


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of arange(start, start + length) for each pair."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    run_start = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - run_start, lengths) + torch.arange(total)


def _predict(
    model: HDNNPModel, batch: _Batch, need_forces: bool, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Energies of the batch's structures relative to the reference energies
    (eV) and, if asked, forces (eV/Angstrom)."""
    features = batch.features.detach().requires_grad_(need_forces)
    # Without forces the caller's grad mode stands: training needs the graph
    # for the parameters even when a batch holds only energy-only structures.
    with torch.enable_grad() if need_forces else contextlib.nullcontext():
        atomic = model.network_energies(features, batch.species)
        energy = atomic.new_zeros(batch.n_atoms.shape[0]).index_add(0, batch.atom_structure, atomic)
        if not need_forces:
            return energy, None
        (slope,) = torch.autograd.grad(atomic.sum(), features, create_graph=create_graph)
    along = _PairContraction.apply(slope.index_select(0, batch.center), batch.jacobian)
    forces = torch.zeros_like(batch.forces).index_add(0, batch.center, along).index_add(0, batch.neighbor, -along)
    return energy, forces


class _PairContraction(torch.autograd.Function):
    """dE/dG_i . J_p for each pair p (eV/Angstrom, (P, 3)) from the gathered
    slopes (P, F) and the Jacobians (P, 3, F). The hand-written backward (three
    fused multiply-adds) is about twice as fast as batched matrix products of
    3x16 matrices; the loss needs only its first derivative."""

    @staticmethod
    def forward(ctx, slope: torch.Tensor, jacobian: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(jacobian)
        return torch.bmm(jacobian, slope.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (jacobian,) = ctx.saved_tensors
        slope_grad = jacobian[:, 0, :] * grad[:, 0:1]
        slope_grad.addcmul_(jacobian[:, 1, :], grad[:, 1:2])
        slope_grad.addcmul_(jacobian[:, 2, :], grad[:, 2:3])
        return slope_grad, None


def _loss(model: HDNNPModel, batch: _Batch, loss: LossSettings, create_graph: bool) -> torch.Tensor:
    """This rank's share of the batch's loss: energy_weight * mean((dE/atoms)^2)
    + force_weight * mean(dF^2), the means over the whole batch (all ranks)."""
    need_forces = loss.force_weight > 0 and bool(batch.force_atoms.any())
    energy, forces = _predict(model, batch, need_forces, create_graph)
    total = loss.energy_weight * (((energy - batch.target) / batch.n_atoms) ** 2).sum() / batch.global_structures
    if forces is not None:
        error = (forces - batch.forces)[batch.force_atoms]
        total = total + loss.force_weight * (error**2).sum() / batch.global_force_components
    return total


class _BatchLoss(nn.Module):
    """A batch's loss as a module's forward, the form DistributedDataParallel
    wraps. Every parameter enters the graph (times zero where the batch has
    no atom of its element), so that every rank sums every gradient (DDP
    would otherwise wait for the gradient of a network no atom of this rank
    used) and one process steps exactly as several do."""

    def __init__(self, model: HDNNPModel, loss: LossSettings) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: _Batch) -> torch.Tensor:
        everything = torch.stack([parameter.sum() for parameter in self.model.parameters()]).sum()
        return _loss(self.model, batch, self.loss, create_graph=True) + 0.0 * everything


@dataclass
class _Fitting:
    """What the optimisation loop needs besides the model."""

    dataset: _Dataset
    shards: Shards
    sets: dict[str, _Batch]
    config: TrainingConfig
    ranks: Ranks
    generator: torch.Generator
    first_order: torch.Tensor


def _fit(model: HDNNPModel, fitting: _Fitting) -> dict[str, Any]:
    config, ranks, generator = fitting.config, fitting.ranks, fitting.generator
    batch_loss = ranks.synchronised(_BatchLoss(model, config.loss))
    monitor = fitting.sets.get("validation", fitting.sets["train"])
    n_samples = len(fitting.shards.samples)
    best = (math.inf, copy.deepcopy(model.state_dict()), 0)
    epoch = 0
    seen = 0
    stopped = False
    first_order: torch.Tensor | None = fitting.first_order
    for number, stage in enumerate(config.stages, start=1):
        optimizer, scheduler = _optimizer(model, stage)
        batches = []
        if stage.optimizer == "adam":
            order = first_order if first_order is not None else torch.randperm(n_samples, generator=generator)
            first_order = None
            batches = [fitting.dataset.batch(b) for b in fitting.shards.batches(order, stage.batch_size)]
        waited = 0
        bar = tqdm(
            range(stage.epochs),
            desc=f"stage {number} {stage.optimizer}",
            disable=not (config.progress and ranks.is_main),
        )
        for _ in bar:
            epoch += 1
            model.train()
            if stage.optimizer == "adam":
                _adam_epoch(batch_loss, batches, optimizer, generator)
            else:
                optimizer.step(_full_batch_closure(batch_loss, optimizer, fitting.sets["train"], ranks))
            seen += n_samples
            model.eval()
            monitored = float(ranks.sum(_loss(model, monitor, config.loss, create_graph=False).detach()))
            if scheduler is not None:
                scheduler.step(monitored)
            if monitored < best[0]:
                best = (monitored, copy.deepcopy(model.state_dict()), epoch)
                waited = 0
            else:
                waited += 1
            bar.set_postfix(loss=f"{monitored:.3g}", best=f"{best[0]:.3g}", lr=f"{optimizer.param_groups[0]['lr']:.2g}")
            if not math.isfinite(monitored):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {monitored}); lower the learning rate"
                )
            if config.early_stopping_patience and waited >= config.early_stopping_patience:
                stopped = True
                break
        bar.close()
        if stopped:
            break
    model.load_state_dict(best[1])
    return {
        "epochs": epoch,
        "best_epoch": best[2],
        "best_loss": best[0],
        "structures_seen": seen,
        "early_stopped": stopped,
    }


def _optimizer(model: HDNNPModel, stage: Stage):
    parameters = [p for p in model.parameters() if p.requires_grad]
    if stage.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS(
            parameters, lr=stage.learning_rate, max_iter=1, history_size=20, line_search_fn="strong_wolfe"
        )
        return optimizer, None
    optimizer = torch.optim.Adam(parameters, lr=stage.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=stage.plateau_patience, min_lr=stage.min_learning_rate
    )
    return optimizer, scheduler


def _adam_epoch(
    batch_loss: nn.Module, batches: list[_Batch], optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> None:
    """One pass over the batches (fixed for the stage: gathering the
    Jacobians into fresh batches every epoch would cost more than the
    training) in a new order."""
    for k in torch.randperm(len(batches), generator=generator).tolist():
        optimizer.zero_grad()
        batch_loss(batches[k]).backward()
        optimizer.step()


def _full_batch_closure(batch_loss: nn.Module, optimizer, full: _Batch, ranks: Ranks) -> Callable[[], torch.Tensor]:
    """The closure L-BFGS re-evaluates: the loss over the whole training set
    (all ranks)."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = batch_loss(full)
        loss.backward()
        return ranks.sum(loss.detach())

    return closure


def _prediction_arrays(model: HDNNPModel, batch: _Batch) -> dict[str, np.ndarray]:
    """This rank's predictions of a set, per structure and per atom with forces."""
    energy, forces = _predict(model, batch, need_forces=bool(batch.force_atoms.any()), create_graph=False)
    atoms = batch.force_atoms.cpu()
    arrays = {
        "structures": batch.structures.numpy(),
        "force_structures": batch.structures[batch.atom_structure.cpu()][atoms].numpy(),
        "energy_per_atom_reference": (batch.target / batch.n_atoms).detach().cpu().double().numpy(),
        "energy_per_atom_predicted": (energy / batch.n_atoms).detach().cpu().double().numpy(),
        "forces_reference": batch.forces[batch.force_atoms].detach().cpu().double().numpy(),
        "forces_predicted": np.zeros((0, 3)),
    }
    if forces is not None:
        arrays["forces_predicted"] = forces[batch.force_atoms].detach().cpu().double().numpy()
    return arrays


def _merged(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The ranks' predictions of a set in the order of its structures (as one
    process lists them); forces flattened (3 x atoms with forces)."""
    joined = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    by_structure = np.argsort(joined["structures"], kind="stable")
    by_atom = np.argsort(joined["force_structures"], kind="stable")
    merged = {key: joined[key][by_structure] for key in ("energy_per_atom_reference", "energy_per_atom_predicted")}
    if len(by_atom):
        merged["forces_reference"] = joined["forces_reference"][by_atom].ravel()
        merged["forces_predicted"] = joined["forces_predicted"][by_atom].ravel()
    return merged


def _errors(predictions: dict[str, np.ndarray]) -> dict[str, float]:
    per_atom = predictions["energy_per_atom_predicted"] - predictions["energy_per_atom_reference"]
    result = {
        "structures": len(per_atom),
        "energy_rmse": float(np.sqrt(np.mean(per_atom**2))),
        "energy_mae": float(np.mean(np.abs(per_atom))),
    }
    if "forces_predicted" in predictions:
        error = predictions["forces_predicted"] - predictions["forces_reference"]
        result["force_rmse"] = float(np.sqrt(np.mean(error**2)))
        result["force_mae"] = float(np.mean(np.abs(error)))
    return result
