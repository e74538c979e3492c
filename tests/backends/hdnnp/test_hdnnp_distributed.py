"""Training in several real processes (torch.distributed, gloo on CPU):
two ranks train the model one process trains (float64: the gradients are
summed in another order, so the two agree to rounding, not bit for bit),
only rank 0 writes the files, a failing rank ends the run with one line
naming it and leaves no process behind, and ``--committee`` writes members
that a committee engine serves through a real worker."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from ase.io import write

from mlpotential.atomistic.structures import DataSource
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
from mlpotential.backends.hdnnp.config import DescriptorSettings, Stage, TrainingConfig, load_config
from mlpotential.backends.hdnnp.model_file import load_model
from mlpotential.backends.hdnnp.network import NetworkShape
from mlpotential.backends.hdnnp.training import train
from mlpotential.cli import main as cli
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.emt_trained_models import emt_structures

FLOAT64_TOLERANCE = 1e-10
"""Largest parameter difference (float64) between one process and two: the
summation order of the gradients differs, each step rounds at 1e-16
relative, and a few dozen steps of Adam and L-BFGS keep that far below this."""


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hdnnp-distributed")
    write(folder / "emt.extxyz", emt_structures(14, seed=11))
    return folder


def write_config(folder: Path, results: str) -> Path:
    """A config whose model and report go to ``results``/."""
    content = {
        "data": ["emt.extxyz"],
        "seed": 5,
        "descriptor": {"cutoff": 4.0, "n_radial": 4},
        "network": {"hidden": [6]},
        "training": {
            "stages": [
                {"optimizer": "adam", "epochs": 4, "batch_size": 4, "learning_rate": 0.01},
                {"optimizer": "lbfgs", "epochs": 2, "learning_rate": 1.0},
            ],
            "dtype": "float64",
            "threads": 1,
            "progress": False,
        },
        "output": {"model": f"{results}/model.pt", "report": f"{results}/report.json", "parity_plot": None},
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_two_ranks_train_the_model_one_process_trains(data_folder: Path, capsys: pytest.CaptureFixture) -> None:
    config_path = write_config(data_folder, "two")
    assert cli(["train", str(config_path), "--nproc", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 rank(s)" in printed and "descriptors.rank0of2.sqlite" in printed

    single = train(
        dataclasses.replace(load_config(config_path), model_path=Path("one/model.pt"), report=Path("one/report.json"))
    )
    two = load_model(data_folder / "two/model.pt")
    for name, value in single.model.state_dict().items():
        np.testing.assert_allclose(two.state_dict()[name], value, rtol=0, atol=FLOAT64_TOLERANCE, err_msg=name)
    report = json.loads((data_folder / "two/report.json").read_text())
    assert report["ranks"] == 2 and single.report["ranks"] == 1
    for name, errors in single.errors.items():
        for key, value in errors.items():
            assert report["errors"][name][key] == pytest.approx(value, rel=1e-9), (name, key)
    # each rank kept its own structures' descriptors beside the model; rank 0 wrote the model
    stores = sorted(p.name for p in (data_folder / "two").glob("descriptors*.sqlite"))
    assert stores == ["descriptors.rank0of2.sqlite", "descriptors.rank1of2.sqlite"]
    assert report["descriptor_cache"]["misses"] == 14


def test_a_failing_rank_ends_the_run_with_one_line(data_folder: Path, capsys: pytest.CaptureFixture) -> None:
    config_path = write_config(data_folder, "failing")
    (data_folder / "failing").mkdir()
    (data_folder / "failing/descriptors.rank1of2.sqlite").write_text("not a database\n" * 100)
    assert cli(["train", str(config_path), "--nproc", "2", "--quiet"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("mlpotential train: error: rank 1 failed: descriptor store ")
    assert "not a usable SQLite file" in error[-1]
    assert not (data_folder / "failing/model.pt").exists()
    children = psutil.Process().children(recursive=True)
    # multiprocessing's resource tracker stays for the life of the test process
    assert [p for p in children if "resource_tracker" not in " ".join(p.cmdline())] == []


@pytest.mark.slow
def test_torchrun_starts_the_same_ranks(data_folder: Path) -> None:
    """``torchrun -m mlpotential train``: each process joins as the rank
    torchrun's variables say, and the model is --nproc's."""
    config_path = write_config(data_folder, "torchrun")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "mlpotential"]
    done = subprocess.run([*command, "train", str(config_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("2 rank(s)") == 1  # rank 0 alone reports
    assert cli(["train", str(write_config(data_folder, "nproc")), "--nproc", "2", "--quiet"]) == 0
    torchrun, nproc = load_model(data_folder / "torchrun/model.pt"), load_model(data_folder / "nproc/model.pt")
    for name, value in nproc.state_dict().items():
        assert torch.equal(torchrun.state_dict()[name], value), name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--nproc", "0"], "--nproc must be at least 1"),
        (["--committee", "1"], "--committee must be at least 2"),
        (["--bootstrap"], "--bootstrap needs --committee"),
    ],
)
def test_bad_options_are_refused(
    data_folder: Path, options: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_status:
        cli(["train", str(write_config(data_folder, "refused")), *options])
    assert exit_status.value.code == 2
    assert message in capsys.readouterr().err


def check_committee(data_folder: Path, name: str, nproc: str, capsys: pytest.CaptureFixture) -> None:
    """``--committee 2 --bootstrap`` writes two members on one split, prints
    their engine block, and a worker serves them as a committee: the
    members' mean energy and sample standard deviation."""
    config_path = write_config(data_folder, name)
    assert cli(["train", str(config_path), "--committee", "2", "--bootstrap", "--nproc", nproc]) == 0
    printed = capsys.readouterr().out
    members = [data_folder / f"{name}/model-{k}.pt" for k in range(2)]
    block = "\n".join(
        ["Engine MLPotential", "  Backend HDNNP", *(f"  ParameterFile {m}" for m in members), "EndEngine"]
    )
    assert block in printed
    reports = [json.loads((data_folder / f"{name}/report-{k}.json").read_text()) for k in range(2)]
    assert [r["seed"] for r in reports] == [5, 6] and all(r["bootstrap"] for r in reports)
    assert reports[0]["data"]["split"] == reports[1]["data"]["split"]
    # the descriptors were computed once, before the members started
    assert all(r["descriptor_cache"]["misses"] == 0 for r in reports)

    atoms = emt_structures(1, seed=99)[0]
    singles = []
    for member in members:
        alone = atoms.copy()
        alone.calc = HDNNPCalculator.from_file(member)
        singles.append(alone.get_potential_energy())
    keywords = {"Backend": "HDNNP", "ParameterFile": [str(m) for m in members], "NumThreads": "1"}
    with PipeEngine(keywords) as engine:
        atoms.calc = engine
        assert atoms.get_potential_energy() == pytest.approx(np.mean(singles), rel=1e-7)
        spread = engine.results["energy_std"]
    assert spread == pytest.approx(np.std(singles, ddof=1), rel=1e-5) and spread > 0


def test_committee_members_serve_as_a_committee_through_a_worker(
    data_folder: Path, capsys: pytest.CaptureFixture
) -> None:
    check_committee(data_folder, "committee", "1", capsys)


@pytest.mark.slow
def test_committee_members_train_in_parallel_processes(data_folder: Path, capsys: pytest.CaptureFixture) -> None:
    check_committee(data_folder, "parallel-committee", "2", capsys)


def copper_cells(tmp_path: Path) -> Path:
    """Cu32 cells (7.2 Angstrom) with a 6.5 Angstrom cutoff: each atom sees
    its 31 neighbours through about three images each."""
    write(tmp_path / "cells.extxyz", [a for a in emt_structures(12, seed=3) if len(a) == 32])
    return tmp_path


def store_config(folder: Path, store: str) -> TrainingConfig:
    return TrainingConfig(
        data=(DataSource("cells.extxyz"),),
        seed=2,
        descriptor=DescriptorSettings(cutoff=6.5, n_radial=4),
        network=NetworkShape((6,)),
        stages=(Stage(epochs=5, batch_size=2, learning_rate=0.01),),
        dtype="float64",
        progress=False,
        parity_plot=None,
        report=None,
        descriptor_store=Path(store),
        model_path=Path(f"{store}.pt"),
        base_dir=folder,
    )


def test_the_compact_store_is_smaller_and_trains_the_same_model(tmp_path: Path, monkeypatch) -> None:
    folder = copper_cells(tmp_path)
    compact = train(store_config(folder, "compact.sqlite"))
    from mlpotential.backends.hdnnp import training_descriptors

    # the store as it was: one float32 Jacobian per neighbour image, uncompressed
    monkeypatch.setattr(training_descriptors, "merge_images", lambda c, n, jacobian, _: (c, n, jacobian))
    monkeypatch.setattr(
        "mlpotential.backends.hdnnp.descriptor_store._pack_float32",
        lambda values: np.ascontiguousarray(values, dtype=np.float32).tobytes(),
    )
    per_image = train(store_config(folder, "per_image.sqlite"))

    ratio = per_image.report["descriptor_cache"]["bytes"] / compact.report["descriptor_cache"]["bytes"]
    assert ratio > 3
    # same float32 Jacobians summed in another order: the models agree to float32 rounding
    for name, value in compact.model.state_dict().items():
        np.testing.assert_allclose(value, per_image.model.state_dict()[name], rtol=0, atol=1e-5, err_msg=name)
    assert compact.errors["train"]["force_rmse"] == pytest.approx(per_image.errors["train"]["force_rmse"], rel=1e-5)


def test_the_store_defaults_to_the_model_folder_and_follows_store(
    data_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config_path = write_config(data_folder, "beside")
    content = yaml.safe_load(config_path.read_text())
    content["training"]["stages"] = [{"epochs": 1}]
    config_path.write_text(yaml.safe_dump(content))
    assert load_config(config_path).store_path() == data_folder / "beside/descriptors.sqlite"
    assert cli(["train", str(config_path), "--store", str(tmp_path / "elsewhere.sqlite")]) == 0
    printed = capsys.readouterr().out
    size = (tmp_path / "elsewhere.sqlite").stat().st_size
    assert f"descriptor store: {tmp_path / 'elsewhere.sqlite'} ({size / 1e6:.1f} MB)" in printed
    assert not (data_folder / "beside/descriptors.sqlite").exists()


def test_merged_image_pairs_give_the_per_image_forces() -> None:
    """The derivative the store keeps, dG_i/dr_m summed over images, gives
    the forces the per-image Jacobians give (float64, exact to rounding)."""
    from mlpotential.atomistic.neighbors import pair_vectors
    from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
    from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
    from mlpotential.backends.hdnnp.training_descriptors import merge_images

    atoms = emt_structures(1, seed=8)[0]
    functions = SymmetryFunctionSet(SymmetryFunctionParameters.default(["Cu"], cutoff=6.5))
    positions, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    neighbors = functions.neighbor_list(positions, cell, atoms.pbc)
    species = functions.species(atoms.get_chemical_symbols())
    _, jacobian = functions.with_pair_jacobian(pair_vectors(positions, cell, neighbors), neighbors, species)
    center, neighbor, merged = merge_images(neighbors.center, neighbors.neighbor, jacobian, len(atoms))
    assert len(center) <= len(atoms) * (len(atoms) - 1) < neighbors.n_pairs / 2

    slope = torch.randn(
        len(atoms), functions.n_features, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )

    def forces(c: torch.Tensor, n: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        along = torch.einsum("pf,pfc->pc", slope[c], j)
        return torch.zeros(len(atoms), 3, dtype=torch.float64).index_add(0, c, along).index_add(0, n, -along)

    expected = forces(neighbors.center, neighbors.neighbor, jacobian)
    torch.testing.assert_close(forces(center, neighbor, merged), expected, rtol=0, atol=1e-12)
