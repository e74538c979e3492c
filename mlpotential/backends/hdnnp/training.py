"""Training an HDNNP model on energies and forces (the Python API behind
``mlpotential train``).

>>> from mlpotential.backends.hdnnp.config import load_config
>>> from mlpotential.backends.hdnnp.training import train
>>> result = train(load_config("train.yaml"))
>>> result.errors["test"]            # {"energy_rmse": eV/atom, "force_rmse": eV/Angstrom, ...}

Forces are trained without differentiating through the symmetry functions
each epoch: the descriptors and their Jacobians with respect to the pair
vectors are computed once (and kept in the descriptor store); the predicted
force is then F = -dE/dr = sum over pairs of (dE/dG_i . J_p) moved from the
neighbour to the centre, which costs one small contraction per batch.
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
from tqdm import tqdm

from mlpotential.atomistic.neighbors import pair_vectors
from mlpotential.atomistic.structures import DataError, Structure, load_structures, require_labels
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.backends.hdnnp.config import Stage, TrainingConfig
from mlpotential.backends.hdnnp.descriptor_store import DescriptorStore, StructureDescriptors, structure_key
from mlpotential.backends.hdnnp.model_file import save_model
from mlpotential.backends.hdnnp.network import HDNNPModel, composition_matrix


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
    config: TrainingConfig, structures: Sequence[Structure] | None = None, initial_model: Path | None = None
) -> TrainingResult:
    """Train a model as ``config`` says. ``structures`` replaces the config's
    ``data`` sources when given (the Python API for data already in memory).
    ``initial_model`` (a model file of the same elements, descriptors and
    network) warm-starts training from its weights and scaling instead of
    the seed's fresh networks (active learning retrains this way)."""
    started = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = _training_device(config.device)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32

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
    split = _split(len(train_pool), len(test_pool), config)
    everything = [*train_pool, *test_pool]

    descriptor_started = time.perf_counter()
    store_path = config.resolve(config.descriptor_store)
    with DescriptorStore(store_path) as store:
        descriptors = _descriptors(everything, parameters, store, device, config.progress)
        cache = {"hits": store.hits, "misses": store.misses, "path": str(store_path) if store_path else None}
    descriptor_seconds = time.perf_counter() - descriptor_started

    model = _initial_model(parameters, config, everything, descriptors, split["train"], dtype)
    if initial_model is not None:
        _warm_start(model, initial_model)
    species = [model.symmetry_functions.species(s.symbols) for s in everything]
    model = model.to(device)
    dataset = _Dataset(everything, descriptors, species, model, dtype, device)
    sets = {name: dataset.batch(torch.as_tensor(ids, dtype=torch.long)) for name, ids in split.items() if ids}

    # Adam's constructor imports torch._dynamo the first time (seconds):
    # done before the clock starts so throughput measures training alone.
    importlib.import_module("torch._dynamo")

    fit_started = time.perf_counter()
    history = _fit(model, dataset, sets, config)
    fit_seconds = time.perf_counter() - fit_started

    errors, predictions = {}, {}
    for name, batch in sets.items():
        energy, forces = _predict(model, batch, need_forces=bool(batch.force_atoms.any()), create_graph=False)
        errors[name] = _errors(batch, energy, forces)
        predictions[name] = _prediction_arrays(batch, energy, forces)
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
    save_model(model, model_path, training={k: report[k] for k in ("data", "errors", "seed", "epochs", "stages")})
    plot_path = config.resolve(config.parity_plot)
    if plot_path is not None:
        from mlpotential.backends.hdnnp.parity import parity_plot

        parity_plot(predictions, errors, plot_path)
    report_path = config.resolve(config.report)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return TrainingResult(model, errors, report, model_path, plot_path, predictions)


def _initial_model(
    parameters: SymmetryFunctionParameters,
    config: TrainingConfig,
    structures: Sequence[Structure],
    descriptors: Sequence[StructureDescriptors],
    train_ids: Sequence[int],
    dtype: torch.dtype,
) -> HDNNPModel:
    """Networks initialised with the seed; descriptor scaling and reference
    energies fitted on the training set."""
    torch.manual_seed(config.seed)
    model = HDNNPModel(parameters, config.network).to(dtype)
    species = [model.symmetry_functions.species(structures[i].symbols) for i in train_ids]
    model.fit_scaling(
        torch.cat([torch.tensor(descriptors[i].features) for i in train_ids]).to(dtype), torch.cat(species)
    )
    model.fit_reference_energies(
        composition_matrix(species, len(parameters.elements)),
        torch.tensor([structures[i].energy for i in train_ids], dtype=torch.float64),
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


def _training_device(name: str) -> torch.device:
    from mlpotential.backends.runtime import torch_device

    return torch_device(name)


def _load(sources, config: TrainingConfig) -> list[Structure]:
    structures = []
    for source in sources:
        structures += load_structures(source, base=config.base_dir)
    return structures


def _split(n_pool: int, n_test_given: int, config: TrainingConfig) -> dict[str, list[int]]:
    """Indices into [pool..., given test...]: shuffled with the seed; the test
    set is the given test data, else a fraction of the pool; validation is a
    fraction of the rest."""
    order = np.random.default_rng(config.seed).permutation(n_pool).tolist()
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


def _descriptors(
    structures: Sequence[Structure],
    parameters: SymmetryFunctionParameters,
    store: DescriptorStore,
    device: torch.device,
    progress: bool,
) -> list[StructureDescriptors]:
    symmetry_functions = SymmetryFunctionSet(parameters)
    results = []
    for structure in tqdm(structures, desc="descriptors", disable=not progress, unit="structure"):
        key = structure_key(structure.to_atoms(), parameters)
        stored = store.get(key, need_jacobian=structure.has_forces)
        if stored is None:
            stored = _compute(structure, symmetry_functions, device)
            store.put(key, stored)
        results.append(stored)
    store.commit()
    return results


def _compute(
    structure: Structure, symmetry_functions: SymmetryFunctionSet, device: torch.device
) -> StructureDescriptors:
    positions = torch.tensor(structure.positions, dtype=torch.float64, device=device)
    cell = torch.tensor(structure.cell, dtype=torch.float64, device=device)
    species = symmetry_functions.species(structure.symbols, device=device)
    neighbors = symmetry_functions.neighbor_list(positions, cell, structure.pbc)
    vectors = pair_vectors(positions, cell, neighbors)
    jacobian = None
    if structure.has_forces:
        features, jacobian = symmetry_functions.with_pair_jacobian(vectors, neighbors, species)
        jacobian = jacobian.cpu().numpy()
    else:
        with torch.no_grad():
            features = symmetry_functions.from_pair_vectors(vectors, neighbors, species)
    return StructureDescriptors(
        features=features.cpu().numpy(),
        center=neighbors.center.cpu().numpy().astype(np.int32),
        neighbor=neighbors.neighbor.cpu().numpy().astype(np.int32),
        jacobian=jacobian,
    )


@dataclass
class _Batch:
    """Concatenated structures: atoms, their structure (batch-local), pairs
    (batch-local atom indices) with Jacobians, targets."""

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


class _Dataset:
    """All structures as flat tensors on the training device; targets are
    energies minus the fitted per-element reference energies (eV), so that
    float32 training loses nothing to large total energies."""

    def __init__(
        self,
        structures: Sequence[Structure],
        descriptors: Sequence[StructureDescriptors],
        species: Sequence[torch.Tensor],
        model: HDNNPModel,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        reference = model.reference_energy.detach().to("cpu", torch.float64)
        self.n_atoms = torch.tensor([s.num_atoms for s in structures], dtype=torch.long)
        self.atom_start = torch.cumsum(self.n_atoms, 0) - self.n_atoms
        self.features = torch.cat([torch.tensor(d.features) for d in descriptors]).to(device, dtype)
        self.species = torch.cat(list(species)).to(device)
        targets = [s.energy - float(reference[sp].sum()) for s, sp in zip(structures, species)]
        self.target = torch.tensor(targets, dtype=torch.float64).to(device, dtype)
        self.has_forces = torch.tensor([s.has_forces for s in structures])
        self.forces = torch.cat(
            [torch.from_numpy(s.forces) if s.has_forces else torch.zeros(s.num_atoms, 3) for s in structures]
        ).to(device, dtype)
        n_pairs = [len(d.center) if s.has_forces else 0 for s, d in zip(structures, descriptors)]
        self.n_pairs = torch.tensor(n_pairs, dtype=torch.long)
        self.pair_start = torch.cumsum(self.n_pairs, 0) - self.n_pairs
        with_forces = [d for s, d in zip(structures, descriptors) if s.has_forces]
        n_features = self.features.shape[1]
        if with_forces:
            self.center = torch.cat([torch.from_numpy(d.center.astype(np.int64)) for d in with_forces]).to(device)
            self.neighbor = torch.cat([torch.from_numpy(d.neighbor.astype(np.int64)) for d in with_forces]).to(device)
            # Stored (P, 3, F): the force contraction is then a batched matrix-vector product.
            jacobian = torch.cat([torch.tensor(d.jacobian) for d in with_forces])
            self.jacobian = jacobian.transpose(1, 2).contiguous().to(device, dtype)
        else:
            self.center = torch.zeros(0, dtype=torch.long, device=device)
            self.neighbor = torch.zeros(0, dtype=torch.long, device=device)
            self.jacobian = torch.zeros((0, 3, n_features), dtype=dtype, device=device)
        self.device = device

    def batch(self, structures: torch.Tensor) -> _Batch:
        device = self.device
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
            structures=structures,
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


def _full_batch_closure(model, optimizer, full, config) -> Callable[[], torch.Tensor]:
    """The closure L-BFGS re-evaluates: the loss over the whole training set."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _loss(model, full, config, create_graph=True)
        loss.backward()
        return loss

    return closure


def _loss(model: HDNNPModel, batch: _Batch, config: TrainingConfig, create_graph: bool) -> torch.Tensor:
    need_forces = config.loss.force_weight > 0 and bool(batch.force_atoms.any())
    energy, forces = _predict(model, batch, need_forces, create_graph)
    loss = config.loss.energy_weight * (((energy - batch.target) / batch.n_atoms) ** 2).mean()
    if forces is not None:
        error = (forces - batch.forces)[batch.force_atoms]
        loss = loss + config.loss.force_weight * (error**2).mean()
    return loss


def _fit(model: HDNNPModel, dataset: _Dataset, sets: dict[str, _Batch], config: TrainingConfig) -> dict[str, Any]:
    train_ids = sets["train"].structures
    monitor = sets.get("validation", sets["train"])
    generator = torch.Generator().manual_seed(config.seed)
    best = (math.inf, copy.deepcopy(model.state_dict()), 0)
    epoch = 0
    seen = 0
    stopped = False
    for number, stage in enumerate(config.stages, start=1):
        optimizer, scheduler = _optimizer(model, stage)
        batches = _batches(dataset, train_ids, stage.batch_size, generator) if stage.optimizer == "adam" else []
        waited = 0
        bar = tqdm(range(stage.epochs), desc=f"stage {number} {stage.optimizer}", disable=not config.progress)
        for _ in bar:
            epoch += 1
            model.train()
            if stage.optimizer == "adam":
                seen += _adam_epoch(model, batches, optimizer, config, generator)
            else:
                optimizer.step(_full_batch_closure(model, optimizer, sets["train"], config))
                seen += len(train_ids)
            model.eval()
            monitored = _loss(model, monitor, config, create_graph=False).item()
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


def _batches(dataset: _Dataset, train_ids: torch.Tensor, size: int | None, generator: torch.Generator) -> list[_Batch]:
    """The training structures shuffled once and cut into fixed batches,
    gathered once: an epoch then only reorders them (copying the Jacobians
    into fresh batches every epoch would cost more than the training)."""
    order = train_ids[torch.randperm(len(train_ids), generator=generator)]
    size = size or len(order)
    return [dataset.batch(order[start : start + size]) for start in range(0, len(order), size)]


def _adam_epoch(
    model: HDNNPModel,
    batches: list[_Batch],
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
    generator: torch.Generator,
) -> int:
    seen = 0
    for k in torch.randperm(len(batches), generator=generator).tolist():
        optimizer.zero_grad()
        _loss(model, batches[k], config, create_graph=True).backward()
        optimizer.step()
        seen += len(batches[k].structures)
    return seen


def _errors(batch: _Batch, energy: torch.Tensor, forces: torch.Tensor | None) -> dict[str, float]:
    per_atom = ((energy - batch.target) / batch.n_atoms).detach().double()
    result = {
        "structures": int(batch.n_atoms.shape[0]),
        "energy_rmse": float(per_atom.pow(2).mean().sqrt()),
        "energy_mae": float(per_atom.abs().mean()),
    }
    if forces is not None and bool(batch.force_atoms.any()):
        error = (forces - batch.forces)[batch.force_atoms].detach().double()
        result["force_rmse"] = float(error.pow(2).mean().sqrt())
        result["force_mae"] = float(error.abs().mean())
    return result


def _prediction_arrays(batch: _Batch, energy: torch.Tensor, forces: torch.Tensor | None) -> dict[str, np.ndarray]:
    arrays = {
        "energy_per_atom_reference": (batch.target / batch.n_atoms).detach().cpu().double().numpy(),
        "energy_per_atom_predicted": (energy / batch.n_atoms).detach().cpu().double().numpy(),
    }
    if forces is not None and bool(batch.force_atoms.any()):
        arrays["forces_reference"] = batch.forces[batch.force_atoms].detach().cpu().double().numpy().ravel()
        arrays["forces_predicted"] = forces[batch.force_atoms].detach().cpu().double().numpy().ravel()
    return arrays
