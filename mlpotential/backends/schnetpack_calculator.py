"""The SchNetPack calculator: ``schnetpack.interfaces.SpkCalculator`` with the
model's own cutoff, the model's units, and float64 evaluation.

Importing this module imports SchNetPack (with the torch 2.13 shims of
:mod:`mlpotential.backends.schnetpack_compat`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ase import Atoms
from ase.calculators.calculator import all_changes

from mlpotential.backends.errors import KeywordError, UnsupportedSystemError
from mlpotential.backends.schnetpack_compat import import_schnetpack, load_pickled_model
from mlpotential.backends.units import ModelUnits

spk = import_schnetpack()
from schnetpack.interfaces import SpkCalculator  # noqa: E402  (needs the shim above first)
from schnetpack.transform import MatScipyNeighborList  # noqa: E402

KEYWORD = "ParameterFile"


def load_model(path: str) -> spk.model.AtomisticModel:
    """Unpickle a SchNetPack model file (already checked by
    :func:`mlpotential.backends.schnetpack_backend.check_model_file`).

    Runs code from the file. Raises :class:`KeywordError` when it does not
    load or is not an ``AtomisticModel``.
    """
    try:
        model = load_pickled_model(path)
    except ModuleNotFoundError as exc:
        raise KeywordError(
            KEYWORD,
            f"ParameterFile {path!r} needs the Python module {exc.name!r} to load, which is not installed; "
            f"it was saved by another program or a SchNetPack extension",
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


def model_cutoff(model: torch.nn.Module) -> float:
    """The cutoff radius of the model's representation, in the model's distance
    unit: ``representation.cutoff`` (SchNet, PaiNN, SO3net), else the largest
    ``cutoff`` of any of its cutoff functions."""
    representation_cutoff = getattr(getattr(model, "representation", None), "cutoff", None)
    if representation_cutoff is not None:
        return float(torch.as_tensor(representation_cutoff).max())
    cutoffs = [
        float(module.cutoff.max()) for module in model.modules() if isinstance(getattr(module, "cutoff", None), torch.Tensor)
    ]
    if not cutoffs:
        raise KeywordError(KEYWORD, "the SchNetPack model has no cutoff radius (no representation.cutoff)")
    return max(cutoffs)


def force_output(model: torch.nn.Module) -> tuple[str, str]:
    """The (energy key, force key) of the model's ``Forces`` output module."""
    for module in model.modules():
        if isinstance(module, spk.atomistic.Forces) and module.calc_forces:
            return module.energy_key, module.force_key
    outputs = ", ".join(getattr(model, "model_outputs", [])) or "nothing"
    raise KeywordError(
        KEYWORD,
        f"the SchNetPack model predicts no forces (its outputs: {outputs}); the engine needs a model "
        "with a schnetpack.atomistic.Forces output module",
    )


def largest_atomic_number(model: torch.nn.Module) -> int | None:
    """The largest atomic number the model's element embedding has a row for
    (``None`` when the representation has no such embedding)."""
    embedding = getattr(getattr(model, "representation", None), "embedding", None)
    if isinstance(embedding, torch.nn.Embedding):
        return embedding.num_embeddings - 1
    return None


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

    def __init__(self, model: spk.model.AtomisticModel, model_file: str, units: ModelUnits, device: torch.device) -> None:
        self._loaded_model = model
        self.model_file = model_file
        self.units = units
        self.cutoff = model_cutoff(model)
        self.max_atomic_number = largest_atomic_number(model)
        energy_key, force_key = force_output(model)
        super().__init__(
            model_file,
            neighbor_list=MatScipyNeighborList(cutoff=self.cutoff),
            energy_key=energy_key,
            force_key=force_key,
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
        if self.max_atomic_number is None:
            return
        beyond = sorted({symbol for symbol, z in zip(atoms.get_chemical_symbols(), atoms.numbers) if z > self.max_atomic_number})
        if beyond:
            raise UnsupportedSystemError(
                f"the SchNetPack model {self.model_file} embeds atomic numbers up to {self.max_atomic_number}; "
                f"this system has {', '.join(beyond)}"
            )
