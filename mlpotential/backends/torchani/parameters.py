"""Where the NeuroChem parameter files of the built-in ANI models are, and
whether a folder holds all of them.

A parameter folder is laid out like the public ani-model-zoo: the
``ani-*_8x.info`` files beside the ``ani-*_8x/`` folders they name. A
torchani data directory (``$TORCHANI_DATA_DIR``) holds such a folder under
``Neurochem/``; both layouts are accepted wherever a folder is given.

Search order for a model's files (first complete folder wins):

1. the ``ParameterDir`` keyword (when given it must be complete: no fallback);
2. ``$TORCHANI_DATA_DIR/Neurochem``;
3. the folder recorded by ``mlpotential install --ani-parameters``
   (key ``ani_parameters`` of the user config file);
4. torchani's own data folder, where torchani downloads the files when
   none of the above holds them.

This module reads only small text files and imports no torch, so the
installer can call it cheaply.
"""

from __future__ import annotations

import bz2
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlpotential.backends.user_config import read_config

ANI_INFO_FILES: dict[str, str] = {
    "ANI-2x": "ani-2x_8x.info",
    "ANI-1ccx": "ani-1ccx_8x.info",
    "ANI-1x": "ani-1x_8x.info",
}
"""The built-in models and the NeuroChem ``.info`` file that describes each."""

CONFIG_KEY = "ani_parameters"
"""Key of the user config file that holds the folder recorded by the installer."""

SOURCE_PARAMETER_DIR = "ParameterDir"
SOURCE_TORCHANI_DATA_DIR = "$TORCHANI_DATA_DIR"
SOURCE_INSTALLED = "mlpotential install --ani-parameters"
SOURCE_TORCHANI_DOWNLOAD = "torchani's data folder (its own download)"

_NEUROCHEM = "Neurochem"
_WEIGHT_FILE = re.compile(r"FILE:([^\[;\s]+)\[")
_ELEMENTS_LINE = re.compile(r"^\s*Atyp\s*=\s*\[([^\]]*)\]", re.MULTILINE)


class ParameterFileError(ValueError):
    """A NeuroChem file exists but cannot be read; the message names it."""


@dataclass(frozen=True)
class NeurochemModel:
    """The files of one NeuroChem ensemble, as named by its ``.info`` file.

    ``constants`` is the AEV constants file (``*.params``), ``self_energies``
    the ``sae_linfit.dat`` file (Hartree per element), ``member_dirs`` the
    ``networks/`` folder of each ensemble member.
    """

    model: str
    folder: Path
    info: Path
    constants: Path
    self_energies: Path
    member_dirs: tuple[Path, ...]


def neurochem_folder(path: str | os.PathLike[str]) -> Path:
    """The folder that holds (or should hold) the ``.info`` files: ``path``
    itself, or ``path/Neurochem`` for a torchani data directory."""
    path = Path(path).expanduser()
    if not any((path / name).is_file() for name in ANI_INFO_FILES.values()) and (path / _NEUROCHEM).is_dir():
        return path / _NEUROCHEM
    return path


def read_info(folder: Path, model: str) -> NeurochemModel:
    """Read the ``.info`` file of ``model`` in ``folder``. Raises
    FileNotFoundError when it is absent and :class:`ParameterFileError` when
    it is malformed."""
    info = folder / ANI_INFO_FILES[model]
    try:
        lines = [line.strip() for line in info.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise ParameterFileError(f"{info} is not a NeuroChem .info text file ({exc})") from None
    if len(lines) < 4 or not lines[3].isdigit() or int(lines[3]) < 1:
        raise ParameterFileError(
            f"{info} is not a NeuroChem .info file: expected four lines (constants file, self-energy file, "
            "ensemble prefix, ensemble size)"
        )
    constants, self_energies, prefix, size = lines[:4]
    # Paths inside .info files are relative to the folder holding them, with "/" separators.
    prefix_path = folder.joinpath(*prefix.split("/"))
    members = tuple(prefix_path.parent / f"{prefix_path.name}{index}" / "networks" for index in range(int(size)))
    return NeurochemModel(
        model=model,
        folder=folder,
        info=info,
        constants=folder.joinpath(*constants.split("/")),
        self_energies=folder.joinpath(*self_energies.split("/")),
        member_dirs=members,
    )


def model_elements(constants: Path) -> tuple[str, ...]:
    """The element symbols of a NeuroChem AEV constants file (its ``Atyp`` line)."""
    try:
        match = _ELEMENTS_LINE.search(constants.read_text())
    except UnicodeDecodeError:
        match = None
    if match is None:
        raise ParameterFileError(f"{constants} is not a NeuroChem constants file: it has no 'Atyp = [...]' line")
    return tuple(symbol.strip() for symbol in match.group(1).split(",") if symbol.strip())


def network_weight_files(nnf: Path) -> list[str]:
    """The weight and bias file names an atomic network file (``ANN-X.nnf``)
    refers to. Its text is bzip2-compressed after a ``<size>=`` header line."""
    raw = nnf.read_bytes()
    start = raw.find(b"=\n")
    try:
        text = bz2.decompress(raw[start + 2 :]).decode("ascii")
    except (OSError, ValueError) as exc:
        raise ParameterFileError(f"{nnf} is not a NeuroChem network file ({exc})") from None
    return _WEIGHT_FILE.findall(text)


def model_files(folder: Path, model: str) -> tuple[list[Path], list[Path]]:
    """``(present, missing)``: every file ``model`` needs in ``folder``.

    The list follows the references (``.info`` -> constants, self energies,
    member folders -> ``ANN-<element>.nnf`` -> weight files), so a missing
    file hides the files only it would name. A malformed file raises
    :class:`ParameterFileError`.
    """
    present: list[Path] = []
    missing: list[Path] = []

    def note(path: Path) -> bool:
        (present if path.is_file() else missing).append(path)
        return path.is_file()

    if not note(folder / ANI_INFO_FILES[model]):
        return present, missing
    files = read_info(folder, model)
    note(files.self_energies)
    if not note(files.constants):
        return present, missing
    elements = model_elements(files.constants)
    for member in files.member_dirs:
        for element in elements:
            nnf = member / f"ANN-{element}.nnf"
            if note(nnf):
                for name in network_weight_files(nnf):
                    note(nnf.parent / name)
    return present, missing


def missing_model_files(folder: str | os.PathLike[str], model: str) -> list[str]:
    """The files ``model`` needs that ``folder`` lacks, relative to the
    folder that holds the ``.info`` files (empty when complete). A file that
    exists but cannot be parsed is reported as ``"<name> (unreadable: why)"``."""
    root = neurochem_folder(folder)
    try:
        _, missing = model_files(root, model)
    except ParameterFileError as exc:
        return [f"{ANI_INFO_FILES[model]} or a file it names (unreadable: {exc})"]
    return [_relative(path, root) for path in missing]


def missing_ani_files(folder: str | os.PathLike[str]) -> list[str]:
    """The files that the three built-in models (ANI-2x, ANI-1ccx, ANI-1x)
    need and ``folder`` lacks; empty when the folder holds them all. For the
    installer: check a folder before recording it."""
    return [name for model in ANI_INFO_FILES for name in missing_model_files(folder, model)]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class ParameterLocation:
    """One place in the search order: ``source`` says where it comes from,
    ``folder`` is the folder that holds (or would hold) the ``.info`` files,
    ``missing`` the files the asked-for model(s) need that it lacks."""

    source: str
    folder: Path
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def torchani_neurochem_folder() -> Path:
    """Where torchani itself keeps (and downloads) NeuroChem files:
    ``$TORCHANI_DATA_DIR/Neurochem``, else ``~/.local/share/Torchani/Neurochem``
    (the rule of ``torchani.paths.neurochem_dir`` in torchani 2.9, restated so
    that no torch import is needed)."""
    explicit = os.environ.get("TORCHANI_DATA_DIR")
    base = Path(explicit) if explicit else Path.home() / ".local" / "share" / "Torchani"
    return base / _NEUROCHEM


def installed_parameter_folder() -> Path | None:
    """The folder recorded by ``mlpotential install --ani-parameters``, if any."""
    try:
        recorded = read_config().get(CONFIG_KEY)
    except ValueError:
        return None
    return Path(recorded).expanduser() if recorded else None


def parameter_locations(model: str | None = None, parameter_dir: str | None = None) -> list[ParameterLocation]:
    """Every place searched for the parameters of ``model`` (``None``: all
    three built-in models), in search order, each with the files it lacks.
    For ``mlpotential install --list`` and for error messages."""
    candidates: list[tuple[str, Path]] = []
    if parameter_dir:
        candidates.append((SOURCE_PARAMETER_DIR, neurochem_folder(parameter_dir)))
    if os.environ.get("TORCHANI_DATA_DIR"):
        candidates.append((SOURCE_TORCHANI_DATA_DIR, torchani_neurochem_folder()))
    installed = installed_parameter_folder()
    if installed is not None:
        candidates.append((SOURCE_INSTALLED, neurochem_folder(installed)))
    if not os.environ.get("TORCHANI_DATA_DIR"):
        candidates.append((SOURCE_TORCHANI_DOWNLOAD, torchani_neurochem_folder()))
    models = [model] if model else list(ANI_INFO_FILES)
    return [
        ParameterLocation(source, folder, tuple(name for m in models for name in missing_model_files(folder, m)))
        for source, folder in candidates
    ]


def describe_locations(locations: list[ParameterLocation]) -> str:
    """One line per searched place: source, folder, and what it lacks."""
    lines = []
    for location in locations:
        if location.complete:
            state = "complete"
        elif not location.folder.exists():
            state = "folder absent"
        else:
            shown = ", ".join(location.missing[:3])
            more = f" and {len(location.missing) - 3} more" if len(location.missing) > 3 else ""
            state = f"lacks {shown}{more}"
        lines.append(f"{location.source}: {location.folder} ({state})")
    return "\n".join(lines)
