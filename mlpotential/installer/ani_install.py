"""``mlpotential install --ani-parameters PATH``: check that a folder or
archive (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) of NeuroChem files
holds every file the three built-in ANI models need, copy those files to the
user's data directory and record that folder in the user config file, where
the TorchANI backend looks for them (after ParameterDir and
$TORCHANI_DATA_DIR)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlpotential.backends import user_config
from mlpotential.backends.torchani import parameters as ani_parameters

FOLDER_NAME = "ani-parameters"
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SEARCH_DEPTH = 3  # GitHub's archive of ani-model-zoo keeps the files two folders down
_NOTICES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "README.md")  # the licence travels with the copy


class AniParameterError(ValueError):
    """The given path does not hold a complete set of ANI parameter files."""


@dataclass(frozen=True)
class AniInstallation:
    """What was (or, in a dry run, would be) installed."""

    source: Path
    destination: Path
    files: tuple[Path, ...]
    total_bytes: int
    config_file: Path | None


def destination_folder() -> Path:
    """Where the wizard keeps the ANI parameters: ``<data dir>/ani-parameters``."""
    return user_config.data_dir() / FOLDER_NAME


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_ARCHIVE_SUFFIXES)


@contextmanager
def opened_source(path: Path) -> Iterator[Path]:
    """The folder to search: ``path`` itself, or the archive unpacked into a
    temporary folder (removed afterwards)."""
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise AniParameterError(f"--ani-parameters {str(path)!r} does not exist")
    if not is_archive(path):
        raise AniParameterError(
            f"--ani-parameters {str(path)!r} is neither a folder nor an archive ({', '.join(_ARCHIVE_SUFFIXES)})"
        )
    with tempfile.TemporaryDirectory(prefix="mlpotential-ani-") as folder:
        _unpack(path, Path(folder))
        yield Path(folder)


def _unpack(archive: Path, target: Path) -> None:
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():
                    _inside(target, member, archive)
                bundle.extractall(target)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(target, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise AniParameterError(f"cannot unpack the archive {str(archive)!r}: {exc}") from None


def _inside(target: Path, member: str, archive: Path) -> None:
    """Refuse an archive member that would land outside the unpack folder."""
    if not (target / member).resolve().is_relative_to(target.resolve()):
        raise AniParameterError(f"the archive {str(archive)!r} holds a path outside its folder: {member!r}")


def find_parameter_folder(root: Path) -> Path:
    """The folder under ``root`` (itself, its ``Neurochem/``, or a sub-folder
    up to three levels down) that holds the most ``ani-*_8x.info`` files,
    the shallowest of equals."""
    info_names = ani_parameters.ANI_INFO_FILES.values()
    best, best_count = root, 0
    for folder in _folders(root):
        count = sum((folder / name).is_file() for name in info_names)
        if count > best_count:
            best, best_count = folder, count
    if best_count == 0:
        raise AniParameterError(
            f"no NeuroChem .info files ({', '.join(sorted(info_names))}) in {root} or its sub-folders"
        )
    return best


def _folders(root: Path) -> Iterator[Path]:
    """``root`` and its sub-folders, breadth first, down to the search depth."""
    level = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        yield from level
        level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()]


def needed_files(folder: Path) -> list[Path]:
    """Every file the three built-in models need, checked complete first.
    Raises AniParameterError naming what is missing or unreadable."""
    missing = ani_parameters.missing_ani_files(folder)
    if missing:
        shown = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise AniParameterError(
            f"{folder} does not hold every file the ANI-2x, ANI-1ccx and ANI-1x models need; "
            f"missing ({len(missing)}):\n  {shown}{more}"
        )
    files: dict[Path, None] = {}
    for model in ani_parameters.ANI_INFO_FILES:
        present, _ = ani_parameters.model_files(folder, model)
        files.update(dict.fromkeys(present))
    files.update(dict.fromkeys(folder / name for name in _NOTICES if (folder / name).is_file()))
    return list(files)


def install_ani_parameters(source: Path, dry_run: bool = False) -> AniInstallation:
    """Check ``source`` (folder or archive), copy the needed files to
    :func:`destination_folder` and record it in the user config file
    (``dry_run``: check only). Raises AniParameterError when the files are
    incomplete, OSError when copying fails (the previous copy is then kept)."""
    source = source.expanduser().resolve()
    destination = destination_folder()
    with opened_source(source) as root:
        folder = find_parameter_folder(root)
        files = needed_files(folder)
        total = sum(path.stat().st_size for path in files)
        relative = tuple(path.relative_to(folder) for path in files)
        if dry_run:
            return AniInstallation(source, destination, relative, total, None)
        if folder.resolve() != destination.resolve():
            _copy(folder, relative, destination)
    still_missing = ani_parameters.missing_ani_files(destination)
    if still_missing:
        raise AniParameterError(f"the copy in {destination} is incomplete: {', '.join(still_missing[:5])}")
    config = user_config.update_config(**{ani_parameters.CONFIG_KEY: str(destination)})
    return AniInstallation(source, destination, relative, total, config)


def _copy(folder: Path, files: tuple[Path, ...], destination: Path) -> None:
    """Copy into a sibling folder first and swap it in, so an interrupted
    copy never leaves a half-filled parameter folder behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=destination.parent))
    try:
        for name in files:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target)
        retired = destination.with_name(f".{FOLDER_NAME}-old-{os.getpid()}")
        if destination.exists():
            destination.rename(retired)
        try:
            staging.rename(destination)
        except OSError:
            if retired.exists():
                retired.rename(destination)
            raise
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
