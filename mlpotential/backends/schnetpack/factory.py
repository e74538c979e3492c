"""The SchNetPack backend's factory: engine settings -> ASE calculator (see the package docstring)."""

from __future__ import annotations

import json
import pickletools
import zipfile
from pathlib import Path

from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import EngineSettings
from mlpotential.backends.model_files import corrupt_member, not_a_zip_archive, pytorch_pickles
from mlpotential.backends.runtime import torch_device
from mlpotential.errors import KeywordError

KEYWORD = "ParameterFile"
EXPECTED = (
    "a SchNetPack model saved with torch.save(model) (a PyTorch zip archive, "
    "e.g. the best_inference_model file of a SchNetPack training run)"
)
_CONTAINER_CLASSES = {"collections.OrderedDict", "builtins.dict", "builtins.list"}
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_BOOKKEEPING_OPCODES = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_CONTAINER_OPCODES = {"EMPTY_DICT": "builtins.dict", "EMPTY_LIST": "builtins.list"}
_NOT_ZIP_SIGNATURES = {
    b"\x80": "is a legacy (pre torch 1.6) PyTorch pickle; load and re-save it with a current torch",
}


def _bad_file(path: str, problem: str) -> KeywordError:
    return KeywordError(KEYWORD, f"ParameterFile {path!r} {problem}; Backend SchNetPack expects {EXPECTED}")


def top_level_class(pickle_bytes: bytes) -> str | None:
    """``module.Name`` of the object a pickle stream builds, read from its
    opcodes without unpickling anything: ``builtins.dict`` or
    ``builtins.list`` for those containers, the class of an instance
    (``torch.save(model)`` starts with the model's class), ``None`` for
    anything else.
    """
    strings: list[str] = []
    for opcode, argument, _ in pickletools.genops(pickle_bytes):
        name = opcode.name
        if name in _BOOKKEEPING_OPCODES:
            continue
        if name in _STRING_OPCODES:
            # protocol 4 pushes module and name as two strings before STACK_GLOBAL
            strings.append(str(argument))
            continue
        if name == "GLOBAL":
            module, attribute = str(argument).split(" ", 1)
            return f"{module}.{attribute}"
        if name == "STACK_GLOBAL" and len(strings) == 2:
            return f"{strings[0]}.{strings[1]}"
        return _CONTAINER_OPCODES.get(name)
    return None


def _pickle_of_torch_archive(path: str, archive: zipfile.ZipFile) -> bytes:
    names = archive.namelist()
    if names and all(name.endswith(".npy") for name in names):
        raise _bad_file(path, "is a NumPy .npz archive (the format of sGDML models), not a PyTorch file")
    pickles = pytorch_pickles(names)
    if len(pickles) != 1:
        raise _bad_file(path, "is a zip archive but not a PyTorch file (it has no data.pkl)")
    damaged = corrupt_member(archive)
    if damaged is not None:
        raise _bad_file(path, damaged)
    return archive.read(pickles[0])


def describe_container_file(path: str, pickle_bytes: bytes) -> str:
    """What a PyTorch file holding a plain dict or list is, for the message
    that refuses it. Reads it with ``weights_only=True``, which runs no code
    from the file (and refuses anything but tensors and plain containers)."""
    if b"pytorch-lightning_version" in pickle_bytes:
        return (
            "is a PyTorch Lightning training checkpoint, not a model: use the best_inference_model "
            "file that SchNetPack's ModelCheckpoint writes beside the checkpoints"
        )
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return "holds a dict or list of objects, not a SchNetPack model object"
    if isinstance(content, dict):
        format_name = _metadata_format(content.get("metadata"))
        if format_name is not None:
            return f"is a model file of format {format_name!r}, not a SchNetPack model"
        if content and all(isinstance(value, torch.Tensor) for value in content.values()):
            return (
                "holds a state_dict (the parameters only), not a whole model: save the model object "
                "itself (torch.save(model)) or use the best_inference_model file"
            )
    return f"holds a {type(content).__name__} of tensors, not a SchNetPack model object"


def _metadata_format(metadata: object) -> str | None:
    """The ``format`` named by a JSON metadata string, as other model files
    of this project carry; ``None`` otherwise."""
    if not isinstance(metadata, str):
        return None
    try:
        described = json.loads(metadata)
    except ValueError:
        return None
    return str(described["format"]) if isinstance(described, dict) and "format" in described else None


def check_model_file(path: str) -> str:
    """Check that ``path`` holds a pickled SchNetPack object saved with
    ``torch.save``, without unpickling it; returns its class (``module.Name``).

    Raises :class:`KeywordError` (``ParameterFile``) saying what the file is
    instead: an sGDML ``.npz``, a state_dict, a Lightning checkpoint, another
    backend's model file, another library's model, a truncated or corrupt
    file, not a PyTorch file at all.
    """
    try:
        not_zip = not_a_zip_archive(path, _NOT_ZIP_SIGNATURES, "is not a PyTorch file (not a zip archive)")
        if not_zip is not None:
            raise _bad_file(path, not_zip)
        with zipfile.ZipFile(path) as archive:
            pickle_bytes = _pickle_of_torch_archive(path, archive)
        class_name = top_level_class(pickle_bytes)
    except KeywordError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise _bad_file(path, f"cannot be read as a PyTorch file (truncated or corrupt?): {exc}") from exc

    if class_name is None:
        raise _bad_file(path, "holds no pickled model object")
    if class_name in _CONTAINER_CLASSES:
        raise _bad_file(path, describe_container_file(path, pickle_bytes))
    if class_name.split(".", 1)[0] != "schnetpack":
        raise _bad_file(path, f"holds a {class_name} object, not a SchNetPack model")
    return class_name


def create_calculator(settings: EngineSettings) -> Calculator:
    """A SchNetPack calculator for ``settings.parameter_file`` on
    ``settings.device``; results in eV and eV/Angstrom."""
    path = str(settings.parameter_file)
    if not Path(path).is_file():
        raise KeywordError(KEYWORD, f"ParameterFile {path!r} is not a file; Backend SchNetPack expects {EXPECTED}")
    class_name = check_model_file(path)
    device = torch_device(settings.device)
    from mlpotential.backends.schnetpack.calculator import SchNetPackCalculator, load_model

    model = load_model(path, class_name)
    return SchNetPackCalculator(model, path, settings.model_units(), device)
