"""``mlpotential install --ani-parameters``: check, copy, record; folders
and archives; incomplete or unsafe input refused with a clear message."""

from __future__ import annotations

import filecmp
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlpotential.backends import user_config
from mlpotential.backends.torchani import parameters as ani_parameters
from mlpotential.commands.install import main
from mlpotential.installer.ani_install import FOLDER_NAME


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("MLPOTENTIAL_DATA_DIR", str(folder))
    monkeypatch.delenv("TORCHANI_DATA_DIR", raising=False)
    return folder


@pytest.fixture(scope="module")
def zoo(shared_dir: Path) -> Path:
    return shared_dir / "ani-model-zoo"


def _zoo_files(zoo: Path) -> list[Path]:
    return sorted(path.relative_to(zoo) for path in zoo.rglob("*") if path.is_file())


def _linked_copy(zoo: Path, target: Path, leave_out: set[Path] = frozenset()) -> Path:
    """The zoo as a tree of symbolic links (no 76 MB copy), minus ``leave_out``."""
    for relative in _zoo_files(zoo):
        if relative in leave_out:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).symlink_to(zoo / relative)
    return target


def _assert_installed(data_dir: Path, zoo: Path) -> Path:
    destination = data_dir / FOLDER_NAME
    assert ani_parameters.missing_ani_files(destination) == []
    assert user_config.read_config()[ani_parameters.CONFIG_KEY] == str(destination)
    copied = sorted(path.relative_to(destination) for path in destination.rglob("*") if path.is_file())
    assert "LICENSE" in {str(path) for path in copied}
    for relative in copied:
        assert filecmp.cmp(zoo / relative, destination / relative, shallow=False), relative
    return destination


def test_folder_is_checked_copied_and_recorded_where_torchani_looks(
    data_dir: Path, zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--ani-parameters", str(zoo)]) == 0
    destination = _assert_installed(data_dir, zoo)
    out = capsys.readouterr().out
    assert str(destination) in out and "Recorded in" in out
    # Every file the three models need was copied: those named by the .info
    # files and the network files, nothing of the training logs.
    needed = {
        path.relative_to(zoo)
        for model in ani_parameters.ANI_INFO_FILES
        for path in ani_parameters.model_files(zoo, model)[0]
    }
    copied = {path.relative_to(destination) for path in destination.rglob("*") if path.is_file()}
    assert copied == needed | {Path("LICENSE"), Path("README.md")}
    (location,) = [loc for loc in ani_parameters.parameter_locations() if loc.source == ani_parameters.SOURCE_INSTALLED]
    assert location.complete and location.folder == destination


def test_installing_again_replaces_the_copy_and_leaves_nothing_else(data_dir: Path, zoo: Path) -> None:
    assert main(["--ani-parameters", str(zoo)]) == 0
    assert main(["--ani-parameters", str(zoo)]) == 0
    _assert_installed(data_dir, zoo)
    assert sorted(os.listdir(data_dir)) == [FOLDER_NAME, user_config.CONFIG_NAME]


def test_dry_run_checks_and_copies_nothing(data_dir: Path, zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ani-parameters", str(zoo), "--dry-run"]) == 0
    assert "holds every file ANI-2x, ANI-1ccx and ANI-1x need" in capsys.readouterr().out
    assert not data_dir.exists()


def test_a_missing_weight_file_is_named_and_nothing_is_recorded(
    data_dir: Path, zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = Path("ani-1ccx_8x/train3/networks/ANN-N.nnf-l2.wparam")
    assert (zoo / lost).is_file()
    partial = _linked_copy(zoo, tmp_path / "partial", {lost})
    assert main(["--ani-parameters", str(partial)]) == 1
    err = capsys.readouterr().err
    assert str(lost) in err and "missing (1)" in err
    assert not data_dir.exists()


def test_a_torchani_data_directory_is_accepted(data_dir: Path, zoo: Path, ani_data_dir: Path) -> None:
    """ani_data_dir: a folder whose Neurochem/ links to the zoo, as torchani keeps it."""
    assert main(["--ani-parameters", str(ani_data_dir)]) == 0
    _assert_installed(data_dir, zoo)


def test_a_zip_laid_out_like_the_published_archive(data_dir: Path, zoo: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ani-model-zoo-ani-2x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for relative in _zoo_files(zoo):
            bundle.write(zoo / relative, f"ani-model-zoo-ani-2x/resources/{relative}")
    assert main(["--ani-parameters", str(archive)]) == 0
    _assert_installed(data_dir, zoo)


def test_a_tar_gz_archive(data_dir: Path, zoo: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ani.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as bundle:
        for relative in _zoo_files(zoo):
            bundle.add(zoo / relative, str(relative))
    assert main(["--ani-parameters", str(archive)]) == 0
    _assert_installed(data_dir, zoo)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.zip", b"this is no zip archive", "cannot unpack the archive"),
        ("broken.tar.gz", b"\x1f\x8b this is no gzip stream", "cannot unpack the archive"),
        ("notes.txt", b"hello", "is neither a folder nor an archive"),
    ],
)
def test_unreadable_input_is_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["--ani-parameters", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and name in err
    assert not data_dir.exists()


def test_an_archive_member_outside_its_folder_is_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../outside.info", "x")
    assert main(["--ani-parameters", str(archive)]) == 1
    assert "a path outside its folder: '../outside.info'" in capsys.readouterr().err
    assert not (tmp_path.parent / "outside.info").exists()


def test_a_folder_without_parameters_and_a_missing_path(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--ani-parameters", str(tmp_path)]) == 1
    assert "no NeuroChem .info files" in capsys.readouterr().err
    assert main(["--ani-parameters", str(tmp_path / "absent")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_torchani_backend_loads_ani2x_from_the_installed_copy(data_dir: Path, zoo: Path, tmp_path: Path) -> None:
    """End to end: nothing but the recorded folder tells the backend where the
    files are (TORCHANI_DATA_DIR unset, no ParameterDir)."""
    pytest.importorskip("torchani")
    from ase.build import molecule
    from ase.units import Hartree

    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings

    assert main(["--ani-parameters", str(zoo)]) == 0
    water = molecule("H2O")
    water.calc = create_calculator(parse_settings({"Model": "ANI-2x", "NumThreads": "1"}))
    # README of the shared zoo: ANI-2x, ASE's H2O, -76.38825 Ha.
    assert water.get_potential_energy() / Hartree == pytest.approx(-76.38825, abs=1e-4)


def test_member_names_are_checked_before_unpacking(tmp_path: Path) -> None:
    """A tar member with an absolute path is refused by the data filter."""
    archive = tmp_path / "absolute.tar"
    with tarfile.open(archive, "w") as bundle:
        info = tarfile.TarInfo("/tmp/mlpotential-absolute-member.info")
        data = b"x"
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
    from mlpotential.installer.ani_install import opened_source

    with opened_source(archive) as root:
        unpacked = [path.relative_to(root) for path in root.rglob("*")]
    assert not Path("/tmp/mlpotential-absolute-member.info").exists()
    assert unpacked == [Path("tmp"), Path("tmp/mlpotential-absolute-member.info")]
