"""``mlpotential gpr`` against aenet-gpr 3.7.9 run on the same train.in
(hyperparameter fitting off: Cartesian, scale 0.4, weight 1.0): test-set
energies and forces to 1e-6 relative, uncertainties to 1e-4 relative."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from gpr_helpers import (
    elementwise_relative,
    extract,
    load_outputs,
    max_relative,
    run_aenet_gpr,
    run_ours,
    write_emt_cu8,
)

FIT_OFF = "fit_scale False\nfit_weight False\n"


def train_in(train: Path, test: Path, extra: str = "") -> str:
    return (
        f"Train_file {train}/file_*.xsf\nTest_file {test}/file_*.xsf\nFile_format xsf\nDescriptor cart\n"
        f"scale 0.4\nweight 1.0\nFilter False\n{FIT_OFF}{extra}"
    )


def assert_agree(ours: dict, reference: dict) -> None:
    for name in ("energy_test_reference", "force_test_reference"):
        np.testing.assert_array_equal(ours[name], reference[name])
    assert max_relative(ours["energy_test_gpr"], reference["energy_test_gpr"]) <= 1e-6
    assert max_relative(ours["force_test_gpr"], reference["force_test_gpr"]) <= 1e-6
    assert elementwise_relative(ours["unc_e_test_gpr"], reference["unc_e_test_gpr"]) <= 1e-4
    assert max_relative(ours["unc_f_test_gpr"], reference["unc_f_test_gpr"]) <= 1e-4


def maes(outputs: dict) -> tuple[float, float]:
    """aenet-gpr's energy MAE and force MAE (MAE of force norms)."""
    energy = np.mean(np.abs(outputs["energy_test_gpr"] - outputs["energy_test_reference"]))
    norms = np.linalg.norm(outputs["force_test_gpr"], axis=2) - np.linalg.norm(outputs["force_test_reference"], axis=2)
    return float(energy), float(np.mean(np.abs(norms)))


def test_h2_agrees_with_aenet_gpr_and_with_the_shared_train_out(
    examples: Path, shared_dir: Path, tmp_path: Path
) -> None:
    text = train_in(examples / "1_H2" / "train_set", examples / "1_H2" / "test_set")
    reference = run_aenet_gpr(tmp_path / "aenet", text)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    ours = load_outputs(tmp_path / "ours")
    assert_agree(ours, reference)

    # the shared train.out was written by an older aenet-gpr with these settings
    train_out = (shared_dir / "aenet-gpr-examples" / "1_H2" / "train.out").read_text()
    saved_energy = float(re.search(r"GPR energy MAE \(eV\): (\S+)", train_out).group(1))
    saved_force = float(re.search(r"GPR force MAE \(eV/Ang\): (\S+)", train_out).group(1))
    energy_mae, force_mae = maes(ours)
    assert energy_mae == pytest.approx(saved_energy, rel=0.03)
    assert force_mae == pytest.approx(saved_force, rel=0.03)
    assert f"energy MAE                  {energy_mae:.6g} eV" in done.stdout


def test_li_ec_subset_agrees_with_aenet_gpr_through_the_closed_form_predictor(examples: Path, tmp_path: Path) -> None:
    """Eight periodic 46-atom training structures, six test structures: a
    well-conditioned covariance, predicted by the closed forms (not aenet-gpr's
    arithmetic), still agreeing to the stated tolerances."""
    source = examples / "3_Li-EC"
    for name, count in (("train_set_tutorial", 8), ("test_set_tutorial", 6)):
        (tmp_path / name).mkdir()
        for file in sorted((source / name).glob("*.xsf"))[:count]:
            shutil.copy(file, tmp_path / name)
    text = train_in(tmp_path / "train_set_tutorial", tmp_path / "test_set_tutorial", "scale 3.0\nbatch_size 4\n")
    reference = run_aenet_gpr(tmp_path / "aenet", text)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    assert_agree(load_outputs(tmp_path / "ours"), reference)


@pytest.mark.slow
def test_full_li_ec_agrees_with_aenet_gpr(shared_dir: Path, tmp_path: Path) -> None:
    """The full 3_Li-EC sets (100 training, 300 test structures of 46 atoms):
    aenet-gpr 3.7.9 takes about 9 minutes and 4.6 GB here (energy MAE 0.1369
    eV, force MAE 0.4575 eV/Angstrom)."""
    source = shared_dir / "aenet-gpr-examples" / "3_Li-EC"
    train = extract(source / "train_set.zip", tmp_path / "data")
    test = extract(source / "test_set.zip", tmp_path / "data")
    text = train_in(train, test, "data_process batch\nbatch_size 25\n")
    reference = run_aenet_gpr(tmp_path / "aenet", text, timeout=3600)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    ours = load_outputs(tmp_path / "ours")
    assert_agree(ours, reference)
    energy_mae, force_mae = maes(ours)
    assert energy_mae == pytest.approx(0.1369, abs=5e-4)
    assert force_mae == pytest.approx(0.4575, abs=5e-4)


def test_soap_at_fixed_centres_agrees_with_aenet_gpr(examples: Path, shared_dir: Path, tmp_path: Path) -> None:
    """The general-descriptor path: DScribe SOAP at the eight fixed centres of
    the shared train_soap.in (scale 2.0), four training and four test
    structures (aenet-gpr 3.7.9 fails on a batch of one SOAP structure)."""
    source = examples / "3_Li-EC"
    for name in ("train_set_tutorial", "test_set_tutorial"):
        (tmp_path / name).mkdir()
        for file in sorted((source / name).glob("*.xsf"))[:4]:
            shutil.copy(file, tmp_path / name)
    soap_in = (shared_dir / "aenet-gpr-examples" / "3_Li-EC" / "train_soap.in").read_text()
    centers = next(line for line in soap_in.splitlines() if line.startswith("soap_centers"))
    text = (
        f"Train_file {tmp_path}/train_set_tutorial/file_*.xsf\nTest_file {tmp_path}/test_set_tutorial/file_*.xsf\n"
        f"Descriptor soap\nsoap_r_cut 5.0\nsoap_n_max 6\nsoap_l_max 4\n{centers}\nsoap_n_jobs 1\n"
        f"scale 2.0\nweight 1.0\nbatch_size 2\n{FIT_OFF}"
    )
    reference = run_aenet_gpr(tmp_path / "aenet", text)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    assert_agree(load_outputs(tmp_path / "ours"), reference)


def test_soap_on_a_periodic_cu8_cell_agrees_with_aenet_gpr_to_rounding(tmp_path: Path) -> None:
    """SOAP at the atoms of periodic Cu8 cells (EMT labels, displacements of
    0.02 Angstrom: nearby spectra), fitting off, the centres held still in
    the Jacobians as aenet-gpr holds them (``soap_attach False``). Squared
    feature distances taken from differences, as aenet-gpr takes them, keep
    the predictions within rounding of aenet-gpr's; |a|^2 + |b|^2 - 2ab lost
    digits that the noise term amplified (forces 5e-6 relative off)."""
    train = write_emt_cu8(tmp_path / "train", 6, seed=11, displacement=0.02)
    test = write_emt_cu8(tmp_path / "test", 4, seed=12, displacement=0.02)
    text = (
        f"Train_file {train}/file_*.xsf\nTest_file {test}/file_*.xsf\nDescriptor soap\nsoap_r_cut 5.0\n"
        f"soap_n_max 6\nsoap_l_max 4\nsoap_attach False\nscale 0.4\nweight 1.0\nbatch_size 2\n{FIT_OFF}"
    )
    reference = run_aenet_gpr(tmp_path / "aenet", text)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    ours = load_outputs(tmp_path / "ours")
    for name in ("energy_test_gpr", "force_test_gpr"):
        assert max_relative(ours[name], reference[name]) <= 1e-8, name
    for name in ("unc_e_test_gpr", "unc_f_test_gpr"):
        assert max_relative(ours[name], reference[name]) <= 1e-7, name


def test_energy_uncertainty_files_hold_what_aenet_gpr_writes_with_a_weight_other_than_one(
    examples: Path, tmp_path: Path
) -> None:
    """aenet-gpr 3.7.9 writes sigma_E / weight to unc_e_*.npy: so do we under
    its names, and sigma_E in eV to energy_std_*.npy (weight 2.0 here)."""
    source = examples / "3_Li-EC"
    for name, count in (("train_set_tutorial", 6), ("test_set_tutorial", 4)):
        (tmp_path / name).mkdir()
        for file in sorted((source / name).glob("*.xsf"))[:count]:
            shutil.copy(file, tmp_path / name)
    text = train_in(tmp_path / "train_set_tutorial", tmp_path / "test_set_tutorial", "scale 3.0\nbatch_size 3\n")
    text = text.replace("weight 1.0", "weight 2.0") + "Additional_write True\nNum_copy 1\nrandom_seed 3\n"
    reference = run_aenet_gpr(tmp_path / "aenet", text)
    done = run_ours(tmp_path / "ours", text)
    assert done.returncode == 0, done.stderr
    ours = tmp_path / "ours"
    assert elementwise_relative(np.load(ours / "unc_e_test_gpr.npy"), reference["unc_e_test_gpr"]) <= 1e-4
    assert max_relative(np.load(ours / "unc_f_test_gpr.npy"), reference["unc_f_test_gpr"]) <= 1e-4
    for step in ("test", "additional"):
        np.testing.assert_allclose(
            np.load(ours / f"energy_std_{step}_gpr.npy"), 2.0 * np.load(ours / f"unc_e_{step}_gpr.npy"), rtol=1e-15
        )
