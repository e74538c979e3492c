"""Helpers of the GPR tests: example data, aenet-gpr 3.7.9 (the reference)
and our command run side by side, comparisons, small fitted models."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AENET_OUTPUTS = (
    "energy_test_gpr",
    "force_test_gpr",
    "unc_e_test_gpr",
    "unc_f_test_gpr",
    "energy_test_reference",
    "force_test_reference",
)


def extract(archive: Path, target: Path) -> Path:
    """Extract a zip of XSF files without macOS metadata; returns the folder."""
    with zipfile.ZipFile(archive) as handle:
        members = [m for m in handle.namelist() if not m.startswith("__MACOSX/") and not Path(m).name.startswith("._")]
        handle.extractall(target, members)
    return target / Path(archive).stem


def run_aenet_gpr(workdir: Path, train_in: str, timeout: float = 900) -> dict[str, np.ndarray]:
    """Run aenet-gpr 3.7.9 (python -m aenet_gpr, one thread) on ``train_in``
    in ``workdir``; returns its output arrays by name."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "train.in").write_text(train_in)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "aenet_gpr", "train.in"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {name: np.load(workdir / f"{name}.npy") for name in AENET_OUTPUTS if (workdir / f"{name}.npy").exists()}


def run_ours(workdir: Path, train_in: str, *extra: str) -> subprocess.CompletedProcess:
    """Run ``mlpotential gpr train.in`` (one thread) in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "train.in").write_text(train_in)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "mlpotential", "gpr", "train.in", "--threads", "1", "--no-progress", *extra],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_emt_cu8(folder: Path, count: int, seed: int, displacement: float) -> Path:
    """``count`` periodic Cu8 cells (two cubic fcc cells side by side, a = 3.61
    Angstrom, shorter than the SOAP cutoff) with Gaussian displacements of
    standard deviation ``displacement`` (Angstrom), labelled by ASE's EMT (eV,
    eV/Angstrom), as XSF files ``folder/file_0000.xsf``, ...; returns ``folder``."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mlpotential.atomistic.xsf import write_xsf

    folder.mkdir(parents=True, exist_ok=True)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    rng = np.random.default_rng(seed)
    for number in range(count):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, displacement, atoms.positions.shape)
        atoms.calc = EMT()
        write_xsf(folder / f"file_{number:04d}.xsf", atoms, atoms.get_potential_energy(), atoms.get_forces())
    return folder


def load_outputs(workdir: Path) -> dict[str, np.ndarray]:
    return {name: np.load(workdir / f"{name}.npy") for name in AENET_OUTPUTS if (workdir / f"{name}.npy").exists()}


def max_relative(ours: np.ndarray, reference: np.ndarray) -> float:
    """max |ours - reference| / max |reference|."""
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


def elementwise_relative(ours: np.ndarray, reference: np.ndarray) -> float:
    """max over elements of |ours - reference| / |reference| (elements where
    the reference is exactly zero must agree exactly)."""
    reference = np.asarray(reference)
    scale = np.where(reference == 0, 1.0, np.abs(reference))
    return float(np.max(np.abs(ours - reference) / scale))


@dataclass
class SmallModel:
    """A fitted GPR saved to ``path`` with the structures it was trained on."""

    path: Path
    gp: object
    subset: object


def fit_small_model(files: list[Path], path: Path, **hyper) -> SmallModel:
    from mlpotential.atomistic.structures import read_structures
    from mlpotential.backends.gpr.dataset import split_by_composition
    from mlpotential.backends.gpr.descriptors import CartesianDescriptor
    from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters
    from mlpotential.backends.gpr.model_file import save_models

    (subset,) = split_by_composition(read_structures(files))
    gp = GaussianProcess(CartesianDescriptor(), subset.symbols, Hyperparameters(**hyper), batch_size=5)
    gp.set_training_data(subset.positions, subset.cells, subset.energies, subset.forces)
    gp.fit()
    save_models(path, [gp])
    return SmallModel(path, gp, subset)
