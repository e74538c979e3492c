"""Finding and checking the NeuroChem parameter files of the built-in ANI
models (mlpotential.backends.torchani.parameters, locate_model_files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpotential.backends.torchani import parameters as ap
from mlpotential.backends.torchani.factory import locate_model_files
from mlpotential.backends.user_config import update_config
from mlpotential.errors import BackendUnavailableError, KeywordError


@pytest.fixture
def zoo(shared_dir: Path) -> Path:
    return shared_dir / "ani-model-zoo"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TORCHANI_DATA_DIR, an empty user data dir and a HOME of our own (so
    torchani's default data folder is ours too). Returns that HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TORCHANI_DATA_DIR", raising=False)
    monkeypatch.setenv("MLPOTENTIAL_DATA_DIR", str(tmp_path / "user-data"))
    return home


def mirror(source: Path, target: Path, skip: set[str] = frozenset()) -> Path:
    """A tree of links to every file of ``source`` (cheap copy) minus ``skip``
    (paths relative to ``source``)."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_file() and relative.as_posix() not in skip:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).symlink_to(path)
    return target


def test_shared_zoo_is_complete_in_both_layouts(zoo: Path, ani_data_dir: Path) -> None:
    assert ap.missing_ani_files(zoo) == []
    # A torchani data dir holds the same files under Neurochem/.
    assert ap.neurochem_folder(ani_data_dir) == ani_data_dir / "Neurochem"
    assert ap.missing_ani_files(ani_data_dir) == []


def test_file_list_follows_every_reference(zoo: Path) -> None:
    present, missing = ap.model_files(zoo, "ANI-2x")
    assert missing == []
    names = {path.relative_to(zoo).as_posix() for path in present}
    # .info, constants, self energies, then 8 members x 7 elements x (1 nnf + 4 layers x 2 files).
    assert len(names) == 3 + 8 * 7 * 9
    assert "ani-2x_8x/train7/networks/ANN-Cl.nnf-l4.bparam" in names
    assert ap.model_elements(zoo / "ani-2x_8x" / "rHCNOSFCl-5.1R_16-3.5A_a8-4.params") == (
        "H",
        "C",
        "N",
        "O",
        "S",
        "F",
        "Cl",
    )


def test_missing_files_are_named(zoo: Path, tmp_path: Path) -> None:
    removed = {"ani-1x_8x/train3/networks/ANN-N.nnf-l2.wparam", "ani-1ccx_8x/sae_linfit.dat"}
    folder = mirror(zoo, tmp_path / "partial", skip=removed)
    assert sorted(ap.missing_ani_files(folder)) == sorted(removed)
    assert ap.missing_model_files(folder, "ANI-2x") == []
    assert ap.missing_model_files(folder, "ANI-1x") == ["ani-1x_8x/train3/networks/ANN-N.nnf-l2.wparam"]


def test_empty_folder_lacks_the_info_files(tmp_path: Path) -> None:
    assert ap.missing_ani_files(tmp_path) == ["ani-2x_8x.info", "ani-1ccx_8x.info", "ani-1x_8x.info"]


def test_malformed_info_file_is_reported(zoo: Path, tmp_path: Path) -> None:
    folder = mirror(zoo, tmp_path / "bad", skip={"ani-2x_8x.info"})
    (folder / "ani-2x_8x.info").write_text("only one line\n")
    (missing,) = ap.missing_model_files(folder, "ANI-2x")
    assert "unreadable" in missing and "ani-2x_8x.info" in missing
    with pytest.raises(KeywordError) as error:
        locate_model_files("ANI-2x", str(folder))
    assert error.value.keyword == "ParameterDir" and "ani-2x_8x.info" in error.value.message


def test_search_order(clean_environment: Path, zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = mirror(zoo, tmp_path / "installed")
    update_config(ani_parameters=str(installed))
    torchani_data = tmp_path / "torchani-data"
    (torchani_data / "Neurochem").mkdir(parents=True)
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(torchani_data))
    given = mirror(zoo, tmp_path / "given")

    locations = ap.parameter_locations("ANI-1x", str(given))
    assert [loc.source for loc in locations] == [
        ap.SOURCE_PARAMETER_DIR,
        ap.SOURCE_TORCHANI_DATA_DIR,
        ap.SOURCE_INSTALLED,
    ]
    assert [loc.complete for loc in locations] == [True, False, True]
    assert locate_model_files("ANI-1x", str(given)).folder == given
    # The empty $TORCHANI_DATA_DIR is passed over for the recorded folder.
    assert locate_model_files("ANI-1x").folder == installed

    # A complete $TORCHANI_DATA_DIR comes before the recorded folder.
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(mirror(zoo, tmp_path / "complete-data" / "Neurochem").parent))
    assert locate_model_files("ANI-1x").folder == tmp_path / "complete-data" / "Neurochem"


def test_torchani_default_folder_is_last(clean_environment: Path, zoo: Path) -> None:
    default = clean_environment / ".local" / "share" / "Torchani" / "Neurochem"
    mirror(zoo, default)
    (location,) = ap.parameter_locations("ANI-2x")
    assert (location.source, location.folder, location.complete) == (ap.SOURCE_TORCHANI_DOWNLOAD, default, True)
    assert locate_model_files("ANI-2x").info == default / "ani-2x_8x.info"


def test_folder_rule_matches_torchani(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from torchani.paths import neurochem_dir

    monkeypatch.setenv("TORCHANI_DATA_DIR", str(tmp_path / "data"))
    assert ap.torchani_neurochem_folder() == neurochem_dir()
    monkeypatch.delenv("TORCHANI_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ap.torchani_neurochem_folder() == neurochem_dir()


def test_incomplete_parameter_dir_names_the_files(zoo: Path, tmp_path: Path) -> None:
    folder = mirror(zoo, tmp_path / "partial", skip={"ani-2x_8x/train0/networks/ANN-S.nnf"})
    with pytest.raises(KeywordError) as error:
        locate_model_files("ANI-2x", str(folder))
    assert error.value.keyword == "ParameterDir"
    assert "ani-2x_8x/train0/networks/ANN-S.nnf missing" in error.value.message


def test_nothing_found_explains_every_place(clean_environment: Path) -> None:
    # torchani downloads only into an empty folder: one holding something else is not touched.
    default = clean_environment / ".local" / "share" / "Torchani" / "Neurochem"
    default.mkdir(parents=True)
    (default / "unrelated.txt").write_text("x")
    with pytest.raises(BackendUnavailableError) as error:
        locate_model_files("ANI-1ccx")
    message = error.value.message
    assert "ANI-1ccx parameters were not found" in message
    assert f"{ap.SOURCE_TORCHANI_DOWNLOAD}: {default} (lacks ani-1ccx_8x.info)" in message
    assert "not tried" in message and "mlpotential install --ani-parameters" in message
    assert sorted(path.name for path in default.iterdir()) == ["unrelated.txt"]


def test_describe_locations_for_the_installer(clean_environment: Path, zoo: Path) -> None:
    update_config(ani_parameters=str(zoo))
    text = ap.describe_locations(ap.parameter_locations())
    assert f"{ap.SOURCE_INSTALLED}: {zoo} (complete)" in text
    assert f"{ap.SOURCE_TORCHANI_DOWNLOAD}: " in text and "(folder absent)" in text
