"""The three steps of ``mlpotential gpr``: train, test, augment.

Outputs (in the output directory), named and filled as aenet-gpr 3.7.9
names and fills them: ``energy_test_gpr.npy``, ``force_test_gpr.npy``,
``unc_e_test_gpr.npy``, ``unc_f_test_gpr.npy``, ``energy_test_reference.npy``,
``force_test_reference.npy``; ``*_additional_gpr.npy`` and
``additional_xsf/`` for augmentation; ``train_xsf/`` and ``test_xsf/`` when
asked. Ours: ``energy_std_{test,additional}_gpr.npy``, the model file
(``Train_model_save``) and ``gpr_report.json``. Energies eV, forces
eV/Angstrom; ``unc_f`` and ``energy_std`` are predictive standard deviations
in those units, ``unc_e`` is aenet-gpr's energy one divided by the kernel
weight (a ratio; equal to ``energy_std`` in eV when the weight is 1).
"""

from __future__ import annotations

import glob
import json
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mlpotential.atomistic.structures import DataError, read_structures, require_labels
from mlpotential.atomistic.xsf import write_xsf
from mlpotential.backends.gpr.augmentation import displaced_copies
from mlpotential.backends.gpr.dataset import StructureSubset, split_by_composition
from mlpotential.backends.gpr.descriptors import (
    CartesianDescriptor,
    Descriptor,
    SoapDescriptor,
    SymmetryFunctionDescriptor,
)
from mlpotential.backends.gpr.fitting import filter_near_duplicates, fit_hyperparameters
from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters, Prediction
from mlpotential.backends.gpr.model_file import save_models
from mlpotential.backends.gpr.train_input import GprInput

Log = Callable[[str], None]


@dataclass
class StepReport:
    """Wall time (s), CPU time of the process (s, all threads: robust to
    other load on the machine) and peak resident memory of the process (GB)
    after a step."""

    seconds: float
    cpu_seconds: float
    peak_memory_gb: float

    @staticmethod
    def clock() -> tuple[float, float]:
        """The start of a step for :meth:`since`: (wall, CPU) seconds."""
        return time.perf_counter(), time.process_time()

    @classmethod
    def since(cls, start: tuple[float, float]) -> StepReport:
        """The report of a step that began at ``start`` (:meth:`clock`)."""
        return cls(time.perf_counter() - start[0], time.process_time() - start[1], _peak_memory_gb())


@dataclass
class GprReport:
    """What a run did, for the printed report and gpr_report.json."""

    train_structures: int = 0
    models: list[dict] = field(default_factory=list)
    removed_by_filter: list[str] = field(default_factory=list)
    test_structures: int = 0
    energy_mae: float | None = None
    force_norm_mae: float | None = None
    force_component_mae: float | None = None
    mean_energy_std: float | None = None
    augmented_structures: int = 0
    random_seed: int | None = None
    files: list[str] = field(default_factory=list)
    steps: dict[str, StepReport] = field(default_factory=dict)


def _peak_memory_gb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _progress(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="structure", disable=not enabled or None, leave=False)


def resolve_files(pattern: str, keyword: str, base_dir: Path, source: str) -> list[Path]:
    """The sorted files a glob pattern matches (relative to ``base_dir``);
    a pattern matching nothing raises :class:`DataError` naming it."""
    full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
    matches = sorted(Path(p) for p in glob.glob(full) if Path(p).is_file())
    if not matches:
        raise DataError(f"{source}: {keyword} {pattern!r} matches no file (looked in {base_dir})")
    return matches


def make_descriptor(settings: GprInput, subset: StructureSubset) -> Descriptor:
    if settings.descriptor == "soap":
        return SoapDescriptor(settings.soap, subset.symbols, subset.periodic)
    if settings.descriptor == "symmetry_functions":
        return SymmetryFunctionDescriptor.for_elements(subset.symbols, settings.symmetry_functions)
    return CartesianDescriptor()


def train_models(settings: GprInput, subsets: list[StructureSubset], device: str, log: Log) -> list[GaussianProcess]:
    """One fitted GPR per subset, hyperparameters fitted as asked. The
    one-time work of fast predictions with uncertainties (the inverse factor
    of the Cartesian predictor) is left to the first such prediction: a run
    that saves the model and predicts nothing does not need it."""
    models = []
    for subset in subsets:
        log(f"Model for {subset.label}: {len(subset)} training structures")
        gp = GaussianProcess(
            make_descriptor(settings, subset),
            subset.symbols,
            Hyperparameters(
                settings.scale, settings.weight, settings.noise, settings.noise_factor, settings.noise_placement
            ),
            batch_size=settings.batch_size,
            device=device,
            prior_constant=None if settings.prior_update else 0.0,
        )
        gp.set_training_data(subset.positions, subset.cells, subset.energies, subset.forces)
        fit_hyperparameters(gp, settings.fit_scale, settings.fit_weight, log=log)
        log(
            f"  scale {gp.hyper.scale:.6g}, weight {gp.hyper.weight:.6g}, noise {gp.hyper.noise:g}, "
            f"prior energy {gp.prior_constant:.10g} eV"
            + (f", jitter {gp.jitter_added:.3g} added" if gp.jitter_added else "")
        )
        models.append(gp)
    return models


def _model_for(models: dict, subset: StructureSubset, purpose: str) -> GaussianProcess:
    model = models.get((subset.symbols, subset.periodic))
    if model is None:
        known = "; ".join(gp_label(gp) for gp in models.values())
        raise DataError(
            f"{subset.sources[0]}: no training structure has this composition ({subset.label}, "
            f"{'periodic' if subset.periodic else 'molecule'}), so {purpose} cannot use it; trained: {known}"
        )
    return model


def gp_label(gp: GaussianProcess) -> str:
    from ase import Atoms

    return f"{Atoms(gp.symbols).get_chemical_formula()} ({gp.num_atoms} atoms)"


@dataclass
class Predictions:
    """Predictions for a list of structures, in its order: energies (n,) eV,
    forces (n, Nmax, 3) eV/Angstrom (padded with NaN where a structure has
    fewer atoms than the largest), their predictive standard deviations (eV,
    eV/Angstrom; None without variance) and the kernel weight (eV) of the
    model that predicted each structure (n,)."""

    energies: np.ndarray
    forces: np.ndarray
    energy_std: np.ndarray | None
    forces_std: np.ndarray | None
    weights: np.ndarray

    def uncertainty_files(self, step: str) -> dict[str, np.ndarray]:
        """The uncertainty files of ``step`` (``test``, ``additional``):
        aenet-gpr 3.7.9's, under its names (``unc_e``: sigma_E divided by
        the kernel weight, a ratio; ``unc_f``: sigma_F in eV/Angstrom), and
        ours, sigma_E in eV (``energy_std``)."""
        return {
            f"unc_e_{step}_gpr.npy": self.energy_std / self.weights,
            f"unc_f_{step}_gpr.npy": self.forces_std,
            f"energy_std_{step}_gpr.npy": self.energy_std,
        }


def _predict_all(
    models: dict, subsets: list[StructureSubset], count: int, variance: bool, show: bool, description: str, purpose: str
) -> Predictions:
    """Predictions for structures split into subsets, in the original order."""
    max_atoms = max(s.num_atoms for s in subsets)
    result = Predictions(
        energies=np.full(count, np.nan),
        forces=np.full((count, max_atoms, 3), np.nan),
        energy_std=np.full(count, np.nan) if variance else None,
        forces_std=np.full((count, max_atoms, 3), np.nan) if variance else None,
        weights=np.full(count, np.nan),
    )
    with _progress(count, description, show) as bar:
        for subset in subsets:
            gp = _model_for(models, subset, purpose)
            batch: Prediction = gp.predict(subset.positions, subset.cells, variance=variance, progress=bar.update)
            result.energies[subset.indices] = batch.energies
            result.forces[subset.indices, : subset.num_atoms] = batch.forces
            result.weights[subset.indices] = gp.hyper.weight
            if variance:
                result.energy_std[subset.indices] = batch.energy_std
                result.forces_std[subset.indices, : subset.num_atoms] = batch.forces_std
    return result


def _write_structures(directory: Path, structures, energies, forces) -> None:
    """aenet XSF files file_00000.xsf, ... of (symbols, positions, cell)
    with energies (eV) and forces (eV/Angstrom)."""
    from ase import Atoms

    directory.mkdir(parents=True, exist_ok=True)
    for number, (symbols, positions, cell) in enumerate(structures):
        atoms = Atoms(symbols, positions=positions, cell=cell, pbc=cell is not None)
        write_xsf(directory / f"file_{number:05d}.xsf", atoms, float(energies[number]), forces[number][: len(symbols)])


def run(
    settings: GprInput, base_dir: Path, output_dir: Path, log: Log = print, show_progress: bool = True
) -> GprReport:
    """Train (and save), test and augment as ``settings`` say. Raises
    :class:`DataError` for unusable data, naming the file."""
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    report = GprReport()
    device = settings.device

    # ---- train
    start = StepReport.clock()
    train_files = resolve_files(settings.train_file, "Train_file", base_dir, settings.source)
    training = read_structures(train_files, settings.file_format)
    require_labels(training, need_forces=True, purpose="training")
    subsets = split_by_composition(training)
    if settings.filter:
        kept = []
        for subset in subsets:
            subset, removed = filter_near_duplicates(subset, settings.filter_threshold)
            report.removed_by_filter += removed
            kept.append(subset)
        subsets = kept
        if report.removed_by_filter:
            removed = report.removed_by_filter
            log(f"Filter removed {len(removed)} near-duplicate structures: {', '.join(removed)}")
    report.train_structures = sum(len(s) for s in subsets)
    log(f"Read {len(training)} training structures from {settings.train_file}: {len(subsets)} composition(s)")
    fitted = train_models(settings, subsets, device, log)
    models = {(gp.symbols, gp.train_cells is not None): gp for gp in fitted}
    report.models = [
        {
            "composition": gp_label(gp),
            "structures": gp.num_train,
            "scale": gp.hyper.scale,
            "weight": gp.hyper.weight,
            "noise": gp.hyper.noise,
            "prior_energy_eV": gp.prior_constant,
            "descriptor": gp.descriptor.kind,
        }
        for gp in fitted
    ]
    if settings.train_model_save:
        model_path = output_dir / settings.model_file
        save_models(model_path, fitted)
        report.files.append(str(model_path))
        log(f"Saved the GPR model to {model_path} (use it with: Backend GPR, ParameterFile {model_path})")
    if settings.train_write:
        ordered = [
            (s.symbols, s.positions[i], None if s.cells is None else s.cells[i]) for s in subsets for i in range(len(s))
        ]
        energies = np.concatenate([s.energies for s in subsets])
        forces = [s.forces[i] for s in subsets for i in range(len(s))]
        _write_structures(output_dir / "train_xsf", ordered, energies, forces)
        report.files.append(str(output_dir / "train_xsf"))
    report.steps["train"] = StepReport.since(start)

    # ---- test
    if settings.test_file is not None:
        start = StepReport.clock()
        test_files = resolve_files(settings.test_file, "Test_file", base_dir, settings.source)
        tests = read_structures(test_files, settings.file_format)
        require_labels(tests, need_forces=True, purpose="the test (reference values)")
        test_subsets = split_by_composition(tests)
        predicted = _predict_all(
            models, test_subsets, len(tests), settings.get_variance, show_progress, "test", "the test"
        )
        energies, forces = predicted.energies, predicted.forces
        max_atoms = forces.shape[1]
        reference_energies = np.array([s.energy for s in tests])
        reference_forces = np.full((len(tests), max_atoms, 3), np.nan)
        for number, structure in enumerate(tests):
            reference_forces[number, : len(structure.symbols)] = structure.forces
        report.test_structures = len(tests)
        report.energy_mae = float(np.mean(np.abs(energies - reference_energies)))
        norm_error = np.abs(np.linalg.norm(forces, axis=2) - np.linalg.norm(reference_forces, axis=2))
        report.force_norm_mae = float(np.nanmean(norm_error))
        report.force_component_mae = float(np.nanmean(np.abs(forces - reference_forces)))
        outputs = {
            "energy_test_reference.npy": reference_energies,
            "force_test_reference.npy": reference_forces,
            "energy_test_gpr.npy": energies,
            "force_test_gpr.npy": forces,
        }
        if settings.get_variance:
            report.mean_energy_std = float(np.mean(predicted.energy_std))
            outputs.update(predicted.uncertainty_files("test"))
        for name, array in outputs.items():
            np.save(output_dir / name, array)
            report.files.append(str(output_dir / name))
        if settings.test_write:
            ordered = [(s.symbols, s.positions, s.cell if s.periodic else None) for s in tests]
            _write_structures(output_dir / "test_xsf", ordered, energies, forces)
            report.files.append(str(output_dir / "test_xsf"))
        report.steps["test"] = StepReport.since(start)

    # ---- augment
    if settings.additional_write:
        start = StepReport.clock()
        seed = (
            settings.random_seed if settings.random_seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        )
        report.random_seed = seed
        rng = np.random.default_rng(seed)
        copies = [displaced_copies(s, settings.num_copy, settings.disp_length, rng) for s in subsets]
        offset = 0
        for subset in copies:
            subset.indices = np.arange(offset, offset + len(subset))
            offset += len(subset)
        predicted = _predict_all(
            models, copies, offset, settings.get_variance, show_progress, "augmentation", "augmentation"
        )
        energies, forces = predicted.energies, predicted.forces
        outputs = {"energy_additional_gpr.npy": energies, "force_additional_gpr.npy": forces}
        if settings.get_variance:
            outputs.update(predicted.uncertainty_files("additional"))
        for name, array in outputs.items():
            np.save(output_dir / name, array)
            report.files.append(str(output_dir / name))
        ordered = [
            (s.symbols, s.positions[i], None if s.cells is None else s.cells[i]) for s in copies for i in range(len(s))
        ]
        _write_structures(output_dir / "additional_xsf", ordered, energies, forces)
        report.files.append(str(output_dir / "additional_xsf"))
        report.augmented_structures = offset
        report.steps["augmentation"] = StepReport.since(start)

    (output_dir / "gpr_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def format_report(report: GprReport) -> str:
    """The human-readable summary printed at the end of a run."""
    lines = ["", "Summary", "-------"]
    lines.append(f"training structures: {report.train_structures} in {len(report.models)} model(s)")
    for model in report.models:
        lines.append(
            f"  {model['composition']}: {model['structures']} structures, {model['descriptor']}, "
            f"scale {model['scale']:.6g}, weight {model['weight']:.6g}, prior {model['prior_energy_eV']:.10g} eV"
        )
    if report.test_structures:
        lines.append(f"test structures: {report.test_structures}")
        lines.append(f"  energy MAE                  {report.energy_mae:.6g} eV")
        lines.append(f"  force MAE (norms, aenet-gpr) {report.force_norm_mae:.6g} eV/Angstrom")
        lines.append(f"  force MAE (components)      {report.force_component_mae:.6g} eV/Angstrom")
        if report.mean_energy_std is not None:
            lines.append(f"  mean energy uncertainty     {report.mean_energy_std:.6g} eV")
    if report.augmented_structures:
        lines.append(f"augmented structures: {report.augmented_structures} (random seed {report.random_seed})")
    lines.append("step            time (s)   CPU time (s)   peak memory (GB)")
    for name, step in report.steps.items():
        lines.append(f"  {name:<13} {step.seconds:9.3f}   {step.cpu_seconds:12.3f}   {step.peak_memory_gb:9.3f}")
    return "\n".join(lines)
