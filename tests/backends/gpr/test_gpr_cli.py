"""``mlpotential gpr train.in`` end to end: outputs and their names, the
saved model, augmented XSF files labelled with the GPR, and clear errors for
bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gpr_helpers import run_ours

from mlpotential.atomistic.xsf import read_xsf
from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings


def copy_files(source: Path, target: Path, count: int) -> Path:
    target.mkdir(parents=True)
    for file in sorted(source.glob("*.xsf"))[:count]:
        shutil.copy(file, target)
    return target


@pytest.fixture()
def li_ec_small(examples: Path, tmp_path: Path) -> tuple[Path, Path]:
    source = examples / "3_Li-EC"
    return (
        copy_files(source / "train_set_tutorial", tmp_path / "train", 4),
        copy_files(source / "test_set_tutorial", tmp_path / "test", 3),
    )


def test_train_test_augment_and_save(li_ec_small: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = li_ec_small
    text = (
        f"Train_file {train}/file_*.xsf\nTest_file {test}/file_*.xsf\nscale 3.0\nfit_scale False\nfit_weight False\n"
        "Train_model_save True\nTrain_write True\nTest_write True\nAdditional_write True\nNum_copy 2\n"
        "Disp_length 0.05\nrandom_seed 7\n"
    )
    done = run_ours(tmp_path / "run", text)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run"
    for name in (
        "energy_test_gpr",
        "force_test_gpr",
        "unc_e_test_gpr",
        "unc_f_test_gpr",
        "energy_test_reference",
        "force_test_reference",
        "energy_additional_gpr",
        "force_additional_gpr",
        "unc_e_additional_gpr",
        "unc_f_additional_gpr",
    ):
        assert (out / f"{name}.npy").is_file(), name
    assert np.load(out / "force_test_gpr.npy").shape == (3, 46, 3)
    assert len(list((out / "train_xsf").glob("*.xsf"))) == 4
    assert len(list((out / "test_xsf").glob("*.xsf"))) == 3
    augmented = sorted((out / "additional_xsf").glob("*.xsf"))
    assert len(augmented) == 8
    report = json.loads((out / "gpr_report.json").read_text())
    assert report["augmented_structures"] == 8 and report["random_seed"] == 7
    assert f"Saved the GPR model to {out / 'gpr_model.safetensors'}" in done.stdout

    # the saved model, served by Backend GPR, labels the augmented structures as the run did
    calculator = create_calculator(
        parse_settings({"Backend": "GPR", "ParameterFile": str(out / "gpr_model.safetensors")})
    )
    energies = np.load(out / "energy_additional_gpr.npy")
    parents = [read_xsf(f) for f in sorted(train.glob("*.xsf"))]
    displacements = []
    for number, path in enumerate(augmented):
        atoms = read_xsf(path)
        written = atoms.get_potential_energy()
        assert written == pytest.approx(energies[number], rel=1e-15)
        np.testing.assert_allclose(
            atoms.get_forces(), np.load(out / "force_additional_gpr.npy")[number], rtol=0, atol=1e-13
        )
        atoms.calc = calculator
        assert atoms.get_potential_energy() == pytest.approx(written, rel=1e-10)
        step = atoms.positions - parents[number // 2].positions
        np.testing.assert_allclose(step.mean(axis=0), 0.0, atol=1e-12)
        displacements.append(step)
    assert np.std(displacements) == pytest.approx(0.05, rel=0.1)
    # the test-set XSF files carry the GPR predictions
    predicted = read_xsf(out / "test_xsf" / "file_00001.xsf")
    assert predicted.get_potential_energy() == pytest.approx(np.load(out / "energy_test_gpr.npy")[1], rel=1e-15)


def test_an_unknown_keyword_is_reported_and_the_run_goes_on(li_ec_small: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = li_ec_small
    done = run_ours(tmp_path / "run", f"Train_file {train}/file_*.xsf\nscale 3.0\nfit_scale False\nfit_wieght False\n")
    assert done.returncode == 0, done.stderr
    assert "unknown keyword 'fit_wieght' ignored" in done.stderr


def bad_run(tmp_path: Path, train: Path, test_pattern: str) -> str:
    done = run_ours(
        tmp_path / "run",
        f"Train_file {train}/file_*.xsf\nTest_file {test_pattern}\nscale 3.0\nfit_scale False\nfit_weight False\n",
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_test_glob_that_matches_nothing_names_the_pattern(li_ec_small: tuple[Path, Path], tmp_path: Path) -> None:
    train, _ = li_ec_small
    message = bad_run(tmp_path, train, "nowhere/file_*.xsf")
    assert "Test_file 'nowhere/file_*.xsf' matches no file" in message


def test_an_xsf_with_fewer_atoms_than_primcoord_announces_names_the_file(
    li_ec_small: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = li_ec_small
    broken = test / "file_0001.xsf"
    broken.write_text("\n".join(broken.read_text().splitlines()[:-2]) + "\n")
    message = bad_run(tmp_path, train, f"{test}/file_*.xsf")
    assert str(broken) in message and "PRIMCOORD announces 46 atoms" in message


def test_a_missing_energy_line_names_the_file(li_ec_small: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = li_ec_small
    broken = test / "file_0002.xsf"
    broken.write_text("\n".join(broken.read_text().splitlines()[1:]) + "\n")
    message = bad_run(tmp_path, train, f"{test}/file_*.xsf")
    assert f"{broken}: no total energy" in message


def test_a_composition_without_a_model_names_the_file(li_ec_small: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = li_ec_small
    lines = (test / "file_0000.xsf").read_text().splitlines()
    count_line = lines.index("PRIMCOORD") + 1
    lines[count_line] = " 45 1"
    del lines[count_line + 1]  # one lithium fewer: another composition
    (test / "file_0000.xsf").write_text("\n".join(lines) + "\n")
    message = bad_run(tmp_path, train, f"{test}/file_*.xsf")
    assert f"{test / 'file_0000.xsf'}: no training structure has this composition" in message
