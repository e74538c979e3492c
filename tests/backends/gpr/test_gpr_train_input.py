"""Reading aenet-gpr's train.in: aenet-gpr 3.7.9's defaults, every shared
example input, warnings for unknown keywords, errors for unusable values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpotential.backends.gpr.train_input import RANGES, GprInput, TrainInputError, TrainInputWarning, parse_train_input

MINIMAL = "Train_file train/*.xsf\n"


def test_defaults_are_aenet_gpr_3_7_9s() -> None:
    from aenet_gpr.inout.input_parameter import InputParameters

    theirs = InputParameters()
    ours = parse_train_input(MINIMAL)
    pairs = {
        "file_format": "file_format",
        "scale": "scale",
        "weight": "weight",
        "noise": "noise",
        "noise_factor": "noisefactor",
        "fit_scale": "fit_scale",
        "fit_weight": "fit_weight",
        "prior_update": "prior_update",
        "filter": "filter",
        "filter_threshold": "filter_threshold",
        "batch_size": "train_batch_size",
        "get_variance": "get_variance",
        "train_write": "train_write",
        "test_write": "test_write",
        "additional_write": "additional_write",
        "train_model_save": "train_model_save",
        "disp_length": "disp_length",
        "num_copy": "num_copy",
    }
    for field, theirs_name in pairs.items():
        assert getattr(ours, field) == getattr(theirs, theirs_name), field
    soap = {
        "r_cut": "soap_r_cut",
        "n_max": "soap_n_max",
        "l_max": "soap_l_max",
        "sigma": "soap_sigma",
        "rbf": "soap_rbf",
        "centers": "soap_centers",
        "method": "soap_method",
        "n_jobs": "soap_n_jobs",
    }
    for field, theirs_name in soap.items():
        assert getattr(ours.soap, field) == getattr(theirs, theirs_name), field
    assert ours.descriptor == "cartesian" and theirs.descriptor == "cartesian coordinates"
    assert ours.noise_placement == "aenet"


def test_every_shared_train_in_is_read_without_warnings(shared_dir: Path, recwarn) -> None:
    files = sorted((shared_dir / "aenet-gpr-examples").rglob("train*.in"))
    assert len(files) >= 8
    for path in files:
        settings = parse_train_input(path.read_text(), str(path))
        assert settings.train_file and settings.test_file
    assert not [w for w in recwarn if issubclass(w.category, TrainInputWarning)]

    soap = parse_train_input((shared_dir / "aenet-gpr-examples" / "3_Li-EC" / "train_soap.in").read_text())
    assert soap.descriptor == "soap"
    assert (soap.soap.r_cut, soap.soap.n_max, soap.soap.l_max, soap.soap.n_jobs) == (5.0, 6, 4, 32)
    assert len(soap.soap.centers) == 8 and soap.soap.centers[0] == pytest.approx(
        (2.20113706670393, 2.328998192856251, 6.952547732109352)
    )
    assert (soap.additional_write, soap.disp_length, soap.num_copy, soap.batch_size) == (True, 0.05, 2, 10)
    h2 = parse_train_input((shared_dir / "aenet-gpr-examples" / "1_H2" / "train.in").read_text())
    assert (h2.fit_scale, h2.fit_weight, h2.filter) == (True, True, False)


def test_values_comments_and_repeats() -> None:
    text = """# comment
! also a comment
Train_file a/*.xsf
TEST_FILE b/*.xsf
scale 1.5
scale 2.5
Fit_Scale F
fit_weight .false.
batch_size 7
Num_copy 3
Disp_length 0.01
Descriptor soap
soap_rbf polynomial
Descriptor cartesian coordinates
noise_placement per_observation
random_seed 11
"""
    settings = parse_train_input(text)
    assert settings == GprInput(
        train_file="a/*.xsf",
        test_file="b/*.xsf",
        scale=2.5,
        fit_scale=False,
        fit_weight=False,
        batch_size=7,
        num_copy=3,
        disp_length=0.01,
        descriptor="cartesian",
        noise_placement="per_observation",
        random_seed=11,
        soap=settings.soap,
    )
    assert settings.soap.rbf == "polynomial"


def test_an_unknown_keyword_gets_a_warning_naming_it() -> None:
    with pytest.warns(TrainInputWarning, match=r"my.in:2: unknown keyword 'Frobnicate' ignored"):
        settings = parse_train_input(MINIMAL + "Frobnicate 3\n", "my.in")
    assert settings.train_file == "train/*.xsf"
    with pytest.warns(TrainInputWarning, match="mace_model"):
        parse_train_input(MINIMAL + "mace_model small\n")


@pytest.mark.parametrize(
    "line, message",
    [
        ("scale abc", r"x.in:2: scale 'abc' is not a number"),
        ("batch_size 2.5", r"x.in:2: batch_size '2.5' is not an integer"),
        ("fit_scale maybe", r"x.in:2: fit_scale 'maybe' is not a truth value"),
        (
            "Descriptor mace",
            r"x.in:2: Descriptor 'mace' is an aenet-gpr descriptor that mlpotential gpr does not provide",
        ),
        (
            "Descriptor fingerprint",
            r"Descriptor 'fingerprint' is not known; use one of: cartesian, soap, symmetry_functions",
        ),
        ("standardization True", r"x.in:2: standardization True \(standardised energies\) is not supported"),
        ("scale -1", r"scale must be positive"),
        ("batch_size 0", r"batch_size must be at least 1"),
        ("soap_centers [[1, 2]]", r"every soap_centers point needs three coordinates"),
        ("Num_copy", r"x.in:2: Num_copy has no value"),
        ("noise_placement sideways", r"noise_placement 'sideways': use aenet or per_observation"),
        ("sf_cutoff_function gauss", r"sf_cutoff_function 'gauss': use one of"),
    ],
)
def test_unusable_values_name_the_keyword_and_line(line: str, message: str) -> None:
    with pytest.raises(TrainInputError, match=message):
        parse_train_input(MINIMAL + line + "\n", "x.in")


def test_nothing_to_train_is_an_error() -> None:
    with pytest.raises(TrainInputError, match="neither Train_file nor Test_file"):
        parse_train_input("scale 0.4\n")
    with pytest.raises(TrainInputError, match="Test_file without Train_file"):
        parse_train_input("Test_file t/*.xsf\n")


@pytest.mark.parametrize("keyword", RANGES)
def test_every_number_is_finite_and_within_its_stated_range(keyword: str) -> None:
    allowed = RANGES[keyword]
    for value in ("nan", "inf", "-inf", "99999999999999999999", "-99999999999999999999"):
        with pytest.raises(TrainInputError) as error:
            parse_train_input(MINIMAL + f"{keyword} {value}\n", "x.in")
        assert str(error.value).startswith(f"x.in:2: {keyword} ")
        assert allowed.describe() in str(error.value)


def test_docs_list_every_range() -> None:
    rows = [
        line.lower()
        for line in (Path(__file__).resolve().parents[3] / "docs" / "gpr.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    for keyword, allowed in RANGES.items():
        assert any(row.startswith(f"| `{keyword}` | {allowed.describe().lower()} |") for row in rows), keyword


def test_soap_centers_keeps_its_first_value_and_finite_points() -> None:
    settings = parse_train_input(MINIMAL + "soap_centers [[1, 2, 3]]\nsoap_centers [[4, 5, 6]]\n")
    assert settings.soap.centers == ((1.0, 2.0, 3.0),)
    with pytest.raises(TrainInputError, match=r"x.in:2: soap_centers: z must be at least -1000000"):
        parse_train_input(MINIMAL + "soap_centers [[0, 0, 1e999]]\n", "x.in")
