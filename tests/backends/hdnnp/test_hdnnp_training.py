"""Training: learns EMT energies and forces, is reproducible with its seed,
reuses stored descriptors, accepts energy-only data (aenet XSF without
forces) next to force data, runs L-BFGS, and `mlpotential train CONFIG`
works end to end with clear errors for bad configs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase.io import write

from mlpotential.atomistic.structures import DataSource
from mlpotential.atomistic.xsf import write_xsf
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
from mlpotential.backends.hdnnp.config import ConfigError, DescriptorSettings, Stage, TrainingConfig, load_config
from mlpotential.backends.hdnnp.training import train
from mlpotential.cli import main as cli
from mlpotential.errors import BackendUnavailableError
from tests.backends.emt_trained_models import emt_structures


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hdnnp-training")
    write(folder / "emt.extxyz", emt_structures(30, seed=1))
    return folder


def quick_config(folder: Path, **changes) -> TrainingConfig:
    config = TrainingConfig(
        data=(DataSource("emt.extxyz"),),
        seed=3,
        descriptor=DescriptorSettings(cutoff=4.5, n_radial=5),
        stages=(Stage(epochs=25, learning_rate=0.01, batch_size=8),),
        progress=False,
        parity_plot=None,
        report=None,
        descriptor_store=None,
        model_path=Path("model.pt"),
        base_dir=folder,
    )
    return dataclasses.replace(config, **changes)


def test_training_learns_and_is_reproducible(data_folder: Path) -> None:
    first = train(quick_config(data_folder, model_path=Path("first.pt")))
    second = train(quick_config(data_folder, model_path=Path("second.pt")))
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name
    assert first.errors == second.errors

    # better than the best constant per-atom energy and than zero forces
    train_set = first.predictions["train"]
    baseline_energy = np.std(train_set["energy_per_atom_reference"])
    baseline_forces = np.sqrt(np.mean(train_set["forces_reference"] ** 2))
    assert first.errors["train"]["energy_rmse"] < 0.5 * baseline_energy
    assert first.errors["train"]["force_rmse"] < 0.6 * baseline_forces
    assert set(first.errors) == {"train", "validation", "test"}
    assert first.report["data"]["split"] == {"train": 24, "validation": 3, "test": 3}

    # a different seed gives a different split and model
    other = train(quick_config(data_folder, seed=4, model_path=Path("other.pt")))
    assert other.errors != first.errors


def test_second_run_reads_stored_descriptors(data_folder: Path) -> None:
    config = quick_config(data_folder, descriptor_store=Path("store.sqlite"), stages=(Stage(epochs=3),))
    cold = train(config)
    warm = train(config)
    cache = cold.report["descriptor_cache"]
    assert {k: cache[k] for k in ("hits", "misses", "path")} == {
        "hits": 0,
        "misses": 30,
        "path": str(data_folder / "store.sqlite"),
    }
    assert cache["bytes"] == (data_folder / "store.sqlite").stat().st_size
    assert warm.report["descriptor_cache"]["hits"] == 30 and warm.report["descriptor_cache"]["misses"] == 0
    assert warm.errors == cold.errors
    # another descriptor is another key
    changed = train(dataclasses.replace(config, descriptor=DescriptorSettings(cutoff=4.0, n_radial=5)))
    assert changed.report["descriptor_cache"]["misses"] == 30


def test_energy_only_xsf_data_train_alongside_forces(data_folder: Path, tmp_path: Path) -> None:
    xsf_folder = tmp_path / "energy_only"
    xsf_folder.mkdir()
    for k, atoms in enumerate(emt_structures(10, seed=9)):
        write_xsf(xsf_folder / f"s{k:02d}.xsf", atoms, with_forces=False)
        last_line = (xsf_folder / f"s{k:02d}.xsf").read_text().splitlines()[-1]
        assert len(last_line.split()) == 4
    write(tmp_path / "emt.extxyz", emt_structures(20, seed=1))
    config = quick_config(
        tmp_path,
        data=(
            DataSource("emt.extxyz"),
            DataSource(str(xsf_folder)),
            DataSource("emt.extxyz", energy_only=True, index=":5"),
        ),
        test_fraction=0.0,
        validation_fraction=0.0,
        stages=(Stage(epochs=5, batch_size=6),),
    )
    result = train(config)
    assert result.report["data"]["with_forces"] == 20
    assert result.report["data"]["energy_only"] == 15
    # forces are compared only on structures that have them
    atoms_with_forces = sum(len(a) for a in emt_structures(20, seed=1))
    assert result.predictions["train"]["forces_reference"].shape == (3 * atoms_with_forces,)
    assert result.predictions["train"]["energy_per_atom_reference"].shape == (35,)


def test_a_batch_of_only_energy_only_structures_trains(tmp_path: Path) -> None:
    """GPR-ANN data: most structures energy-only, so whole mini-batches have no forces."""
    write(tmp_path / "emt.extxyz", emt_structures(12, seed=4))
    config = quick_config(
        tmp_path,
        data=(DataSource("emt.extxyz", index=":2"), DataSource("emt.extxyz", energy_only=True, index="2:")),
        test_fraction=0.0,
        validation_fraction=0.0,
        stages=(Stage(epochs=3, batch_size=1),),
    )
    result = train(config)
    assert result.report["data"]["energy_only"] == 10


def test_lbfgs_stage_lowers_the_loss(data_folder: Path) -> None:
    adam_only = train(quick_config(data_folder, stages=(Stage(epochs=5, batch_size=8),), early_stopping_patience=0))
    with_lbfgs = train(
        quick_config(
            data_folder,
            stages=(Stage(epochs=5, batch_size=8), Stage(optimizer="lbfgs", epochs=15, learning_rate=1.0)),
            early_stopping_patience=0,
        )
    )
    assert with_lbfgs.report["epochs"] == 20
    assert with_lbfgs.errors["train"]["force_rmse"] < adam_only.errors["train"]["force_rmse"]


def test_aenet_example_zip_trains(shared_dir: Path, tmp_path: Path) -> None:
    config = quick_config(
        tmp_path,
        data=(DataSource(str(shared_dir / "aenet-gpr-examples/1_H2/train_set.zip")),),
        test_data=(DataSource(str(shared_dir / "aenet-gpr-examples/1_H2/test_set.zip")),),
        validation_fraction=0.0,
        descriptor=DescriptorSettings(cutoff=4.0, n_radial=6),
        stages=(Stage(epochs=10, batch_size=None),),
    )
    result = train(config)
    assert result.report["data"]["split"] == {"train": 7, "validation": 0, "test": 200}
    assert result.model.elements == ("H",)


def test_cuda_device_is_refused_without_cuda(data_folder: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        train(quick_config(data_folder, device="cuda"))


def write_config(folder: Path, content: dict) -> Path:
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_cli_trains_from_a_yaml_config(data_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "emt.extxyz", emt_structures(16, seed=2))
    config = write_config(
        tmp_path,
        {
            "data": ["data/emt.extxyz"],
            "seed": 1,
            "descriptor": {"cutoff": 4.5, "n_radial": 4},
            "network": {"hidden": [8, 8], "activation": "tanh"},
            "training": {"stages": [{"optimizer": "adam", "epochs": 5, "batch_size": 4}], "progress": False},
            "output": {"model": "out/cu.pt", "parity_plot": "out/parity.png", "report": "out/report.json"},
        },
    )
    assert cli(["train", str(config), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "E RMSE" in printed and "out/cu.pt" in printed
    assert (tmp_path / "out/parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["network"] == {"hidden": [8, 8], "activation": "tanh"}
    assert report["descriptor_cache"]["misses"] == 16
    atoms = emt_structures(1, seed=5)[0]
    atoms.calc = HDNNPCalculator.from_file(tmp_path / "out/cu.pt")
    assert np.isfinite(atoms.get_potential_energy())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"data": ["x.extxyz"], "netwrk": {}}, "unknown key.*netwrk"),
        ({"data": ["x.extxyz"], "training": {"stages": [{"optimiser": "adam"}]}}, r"training.stages\[0\].optimiser"),
        ({"data": ["x.extxyz"], "training": {"stages": [{"optimizer": "sgd"}]}}, "adam or lbfgs"),
        ({"seed": 1}, "'data' is required"),
        ({"data": [{"file": "x"}]}, "path"),
        ({"data": ["x.extxyz"], "split": {"test_fraction": 1.5}}, "test_fraction"),
    ],
)
def test_bad_configs_are_explained(tmp_path: Path, content: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, content))


def test_cli_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, {"data": ["missing.extxyz"], "training": {"progress": False}})
    assert cli(["train", str(config)]) == 2
    error = capsys.readouterr().err
    assert "mlpotential train: error" in error and "missing.extxyz" in error


def test_config_errors_name_the_line_and_come_before_the_data(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("data: [missing.extxyz]\ndescriptor:\n  n_radial: 4\n  cutoff: 1e300\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}, line 4: descriptor.cutoff must be positive and at most 30 Angstrom, not '1e300'"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Stage(epochs=0), "epochs must be at least 1"),
        (lambda: Stage(learning_rate=float("nan")), "learning_rate must be positive"),
        (lambda: DescriptorSettings(cutoff=float("inf")), "cutoff must be positive and at most 30 Angstrom"),
        (lambda: TrainingConfig(data=(), seed=-1), "seed must be at least 0"),
        (lambda: TrainingConfig(data=(), threads=0), "threads must be at least 1 and at most 4096"),
    ],
)
def test_the_python_api_gets_the_same_checks(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
