"""The SchNetPack calculator: ``schnetpack.interfaces.SpkCalculator`` with the
model's own cutoff, the model's units, and float64 evaluation.

Importing this module imports SchNetPack (with the torch 2.13 shims of
:mod:`mlpotential.backends.schnetpack.compat`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from ase import Atoms
from ase.calculators.calculator import all_changes

from mlpotential.backends.calculator_base import element_names, unsupported_elements
from mlpotential.backends.model_files import before_unpickling
from mlpotential.backends.schnetpack.compat import import_schnetpack, load_pickled_model
from mlpotential.errors import KeywordError, UnsupportedSystemError
from mlpotential.units import ModelUnits

spk = import_schnetpack()
from schnetpack.interfaces import SpkCalculator  # noqa: E402  (needs the shim above first)
from schnetpack.transform import MatScipyNeighborList  # noqa: E402

KEYWORD = "ParameterFile"


def _is_model_class(class_name: str) -> bool:
    module_name, _, attribute = class_name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, spk.model.AtomisticModel)


def load_model(path: str, class_name: str) -> spk.model.AtomisticModel:
    """Unpickle a SchNetPack model file whose pickled top-level class
    ``class_name`` (:func:`mlpotential.backends.schnetpack.factory.check_model_file`)
    is a SchNetPack class.

    Runs code from the file, once that class is known to be an
    ``AtomisticModel``. Raises :class:`KeywordError` when it is not one or
    the file does not load.
    """
    if not _is_model_class(class_name):
        raise KeywordError(
            KEYWORD,
            f"ParameterFile {path!r} holds a {class_name}, not a SchNetPack model (schnetpack.model.AtomisticModel)",
        )
    before_unpickling(path, KEYWORD)
    try:
        model = load_pickled_model(path)
    except ModuleNotFoundError as exc:
        raise KeywordError(
            KEYWORD,
            f"ParameterFile {path!r} needs the Python module {exc.name!r} to load, which is not installed "
            "(a SchNetPack extension?)",
        ) from exc
    except Exception as exc:  # torch.load reports damage as RuntimeError, UnpicklingError, EOFError...
        raise KeywordError(
            KEYWORD, f"ParameterFile {path!r} cannot be loaded as a SchNetPack model (truncated or corrupt?): {exc}"
        ) from exc
    if not isinstance(model, spk.model.AtomisticModel):
        raise KeywordError(
            KEYWORD,
            f"ParameterFile {path!r} holds a {type(model).__module__}.{type(model).__qualname__}, "
            "not a SchNetPack model (schnetpack.model.AtomisticModel)",
        )
    return model


@dataclass(frozen=True)
class ModelOutline:
    """What the engine reads from a SchNetPack model: the cutoff radius (the
    model's distance unit), the energy and force keys of its ``Forces``
    output module, and the largest atomic number its element embedding has a
    row for (``None`` when it has no such embedding)."""

    cutoff: float
    energy_key: str
    force_key: str
    max_atomic_number: int | None


def outline_model(model: spk.model.AtomisticModel, path: str) -> ModelOutline:
    """The :class:`ModelOutline` of ``model`` (loaded from ``path``). Raises
    :class:`KeywordError` when the model has no cutoff or predicts no forces."""
    energy_key, force_key = _force_keys(model, path)
    embedding = getattr(getattr(model, "representation", None), "embedding", None)
    max_atomic_number = embedding.num_embeddings - 1 if isinstance(embedding, torch.nn.Embedding) else None
    return ModelOutline(_cutoff(model, path), energy_key, force_key, max_atomic_number)


def _cutoff(model: torch.nn.Module, path: str) -> float:
    """``representation.cutoff`` (SchNet, PaiNN, SO3net), else the largest
    ``cutoff`` of any of the model's cutoff functions."""
    representation_cutoff = getattr(getattr(model, "representation", None), "cutoff", None)
    if representation_cutoff is not None:
        return float(torch.as_tensor(representation_cutoff).max())
    cutoffs = [
        float(module.cutoff.max())
        for module in model.modules()
        if isinstance(getattr(module, "cutoff", None), torch.Tensor)
    ]
    if not cutoffs:
        raise KeywordError(KEYWORD, f"the SchNetPack model in {path!r} has no cutoff radius (no representation.cutoff)")
    return max(cutoffs)


def _force_keys(model: torch.nn.Module, path: str) -> tuple[str, str]:
    for module in model.modules():
        if isinstance(module, spk.atomistic.Forces) and module.calc_forces:
            return module.energy_key, module.force_key
    outputs = ", ".join(getattr(model, "model_outputs", [])) or "nothing"
    raise KeywordError(
        KEYWORD,
        f"the SchNetPack model in {path!r} predicts no forces (its outputs: {outputs}); the engine needs "
        "a model with a schnetpack.atomistic.Forces output module",
    )


class SchNetPackCalculator(SpkCalculator):
    """A SchNetPack model as an ASE calculator: energies in eV, forces in
    eV/Angstrom.

    ``units`` are the units the model was trained in. SpkCalculator converts
    the model's outputs but hands it positions in Angstrom whatever its
    position unit; this class converts positions and cell to the model's
    distance unit first, and always computes energy and forces together (one
    model evaluation). The neighbour list (matscipy) uses the model's own
    cutoff. The model runs in float64, whatever precision it was trained in,
    so that forces are the exact gradient of the energy an optimizer sees.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(
        self, model: spk.model.AtomisticModel, model_file: str, units: ModelUnits, device: torch.device
    ) -> None:
        self._loaded_model = model
        self.model_file = model_file
        self.units = units
        self.outline = outline_model(model, model_file)
        super().__init__(
            model_file,
            neighbor_list=MatScipyNeighborList(cutoff=self.outline.cutoff),
            energy_key=self.outline.energy_key,
            force_key=self.outline.force_key,
            energy_unit=units.energy_to_ev,
            position_unit=units.distance_to_angstrom,
            device=device,
            dtype=torch.float64,
        )

    def _load_model(self, model_file: str) -> spk.model.AtomisticModel:
        # loaded and checked before construction: its cutoff chooses the neighbour list
        return self._loaded_model.to(torch.float64).eval()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        atoms = self.atoms if atoms is None else atoms
        self._check_elements(atoms)
        model_atoms = atoms
        scale = self.units.distance_to_angstrom
        if scale != 1.0:
            model_atoms = atoms.copy()
            model_atoms.set_cell(atoms.cell.array / scale, scale_atoms=False)
            model_atoms.positions = atoms.positions / scale
        self.results = {}
        super().calculate(model_atoms, ["energy", "forces"], system_changes)
        self.atoms = atoms.copy()

    def _check_elements(self, atoms: Atoms) -> None:
        largest = self.outline.max_atomic_number
        if largest is None:
            return
        beyond = unsupported_elements(atoms.numbers, range(largest + 1))
        if beyond:
            # Not check_elements: the embedding's size is all the model tells of the elements it covers,
            # so the message gives that bound rather than a list of a hundred symbols.
            raise UnsupportedSystemError(
                f"the SchNetPack model {self.model_file} embeds atomic numbers up to {largest}; "
                f"this system has {element_names(beyond)}",
                "atomSymbols",
            )
