"""Tiny real models trained on the fly, for the SchNetPack and sGDML backend
tests: EMT energies and forces of a Cu4Ag2 cluster (eV, Angstrom), an sGDML
model trained with ``GDMLTrain`` and a SchNet model trained with SchNetPack's
own training loop (AtomisticTask + Lightning Trainer + ModelCheckpoint),
each saved the way a user of that library saves it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.optimize import BFGS

CLUSTER_SYMBOLS = "Cu4Ag2"
"""Cu square with Ag above and below: two elements, so atom order matters."""


def emt_minimum() -> Atoms:
    """The EMT minimum of the Cu4Ag2 octahedron (converged to 1e-4 eV/Angstrom)."""
    half_diagonal = 1.8
    positions = half_diagonal * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    atoms = Atoms(CLUSTER_SYMBOLS, positions=positions)
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=1e-4)
    atoms.calc = None
    return atoms


def displaced(atoms: Atoms, rng: np.random.Generator, scale: float = 0.08) -> Atoms:
    """A copy of ``atoms`` with Gaussian displacements (std ``scale`` Angstrom)."""
    moved = atoms.copy()
    moved.positions += rng.normal(scale=scale, size=moved.positions.shape)
    return moved


def emt_labelled(atoms: Atoms) -> Atoms:
    """A copy carrying its EMT energy (eV) and forces (eV/Angstrom)."""
    labelled = atoms.copy()
    labelled.calc = EMT()
    energy, forces = labelled.get_potential_energy(), labelled.get_forces()
    labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces)
    return labelled


def emt_samples(count: int, seed: int, scale: float = 0.08) -> list[Atoms]:
    """``count`` displaced clusters around the EMT minimum, EMT-labelled."""
    minimum = emt_minimum()
    rng = np.random.default_rng(seed)
    return [emt_labelled(displaced(minimum, rng, scale)) for _ in range(count)]


@dataclass(frozen=True)
class TrainedModel:
    """A model file and what it was trained on."""

    path: Path
    energy_unit: str
    samples: int


def sgdml_dataset(samples: list[Atoms], energy_factor: float = 1.0, energy_unit: str = "eV") -> dict[str, np.ndarray]:
    """An sGDML dataset (``type 'd'``) of ``samples``; energies and forces in
    eV times ``energy_factor``, recorded as ``energy_unit``."""
    from sgdml.utils.io import dataset_md5

    import mlpotential.backends.sgdml.calculator  # noqa: F401  (imports sgdml without its logging side effect)

    dataset = {
        "type": np.array("d"),
        "name": np.array("Cu4Ag2-EMT"),
        "theory": np.array("EMT"),
        "z": samples[0].numbers.copy(),
        "R": np.array([atoms.positions for atoms in samples]),
        "E": np.array([atoms.get_potential_energy() for atoms in samples]) * energy_factor,
        "F": np.array([atoms.get_forces() for atoms in samples]) * energy_factor,
        "r_unit": np.array("Ang"),
        "e_unit": np.array(energy_unit),
    }
    dataset["md5"] = np.array(dataset_md5(dataset))
    return dataset


def train_sgdml(
    path: Path,
    samples: list[Atoms],
    n_train: int = 100,
    n_valid: int = 50,
    sig: int = 10,
    energy_factor: float = 1.0,
    energy_unit: str = "eV",
) -> TrainedModel:
    """Train an sGDML model (symmetric, with energies) with GDMLTrain on one
    process and save it with np.savez_compressed, as ``sgdml all`` does."""
    from sgdml.train import GDMLTrain

    import mlpotential.backends.sgdml.calculator  # noqa: F401  (imports sgdml without its logging side effect)

    np.random.seed(0)  # GDMLTrain samples the training points with numpy's global generator
    dataset = sgdml_dataset(samples, energy_factor, energy_unit)
    trainer = GDMLTrain(max_processes=1)
    task = trainer.create_task(dataset, n_train, dataset, n_valid, sig=sig, use_sym=True, use_E=True)
    model = trainer.train(task)
    np.savez_compressed(path, **model)
    return TrainedModel(path, energy_unit, n_train)


def train_schnet(
    directory: Path, samples: list[Atoms], epochs: int = 15, cutoff: float = 4.0, seed: int = 0
) -> TrainedModel:
    """Train a tiny SchNet on ``samples`` (eV, Angstrom) with SchNetPack's
    Lightning task and keep its ``best_inference_model`` (torch.save of the
    whole model)."""
    import pytorch_lightning as pl
    import torch
    import torchmetrics

    from mlpotential.backends.schnetpack.compat import import_schnetpack

    spk = import_schnetpack()
    from schnetpack import transform

    pl.seed_everything(seed, verbose=False)
    database = spk.data.ASEAtomsData.create(
        str(directory / "cluster.db"), distance_unit="Ang", property_unit_dict={"energy": "eV", "forces": "eV/Ang"}
    )
    database.add_systems(
        [{"energy": np.array([atoms.get_potential_energy()]), "forces": atoms.get_forces()} for atoms in samples],
        [Atoms(atoms.numbers, atoms.positions) for atoms in samples],
    )
    n_val = len(samples) // 5
    data = spk.data.AtomsDataModule(
        str(directory / "cluster.db"),
        batch_size=16,
        num_train=len(samples) - n_val,
        num_val=n_val,
        split_file=str(directory / "split.npz"),
        transforms=[
            transform.ASENeighborList(cutoff=cutoff),
            transform.RemoveOffsets("energy", remove_mean=True, remove_atomrefs=False),
            transform.CastTo32(),
        ],
        num_workers=0,
        pin_memory=False,
    )
    representation = spk.representation.SchNet(
        n_atom_basis=16,
        n_interactions=2,
        radial_basis=spk.nn.GaussianRBF(n_rbf=12, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=16, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
        postprocessors=[transform.CastTo64(), transform.AddOffsets("energy", add_mean=True, add_atomrefs=False)],
    )
    outputs = [
        spk.task.ModelOutput(
            name="energy",
            loss_fn=torch.nn.MSELoss(),
            loss_weight=0.1,
            metrics={"MAE": torchmetrics.MeanAbsoluteError()},
        ),
        spk.task.ModelOutput(
            name="forces",
            loss_fn=torch.nn.MSELoss(),
            loss_weight=0.9,
            metrics={"MAE": torchmetrics.MeanAbsoluteError()},
        ),
    ]
    task = spk.task.AtomisticTask(
        model=model, outputs=outputs, optimizer_cls=torch.optim.AdamW, optimizer_args={"lr": 5e-3}
    )
    model_path = directory / "best_inference_model"
    checkpoint = spk.train.ModelCheckpoint(
        model_path=str(model_path), save_top_k=1, monitor="val_loss", dirpath=str(directory / "checkpoints")
    )
    trainer = pl.Trainer(
        callbacks=[checkpoint],
        default_root_dir=str(directory),
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=data)
    return TrainedModel(model_path, "eV", len(samples) - n_val)


def damaged_copy(source: Path, target: Path) -> Path:
    """``source`` (a zip archive: .npz or PyTorch file) with 8 bytes in the
    middle of its largest member inverted; the zip directory stays intact, so
    only the members' checksums can tell. Returns ``target``."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + member.compress_size // 2
    data[start : start + 8] = bytes(byte ^ 0xFF for byte in data[start : start + 8])
    target.write_bytes(bytes(data))
    return target


def truncated_copy(source: Path, target: Path) -> Path:
    """The first half of ``source``. Returns ``target``."""
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


def emt_structures(count: int, seed: int) -> list[Atoms]:
    """Displaced Cu bulk cells and (111) slabs with EMT energies and forces."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(count):
        if k % 2 == 0:
            atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True).repeat((2, 2, 2))
        else:
            atoms = fcc111("Cu", size=(2, 2, 3), a=3.61, vacuum=5.0)
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        labelled = emt_labelled(atoms)
        labelled.info.clear()
        structures.append(labelled)
    return structures
