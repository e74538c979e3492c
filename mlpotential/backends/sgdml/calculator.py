"""The sGDML calculator: ``sgdml.intf.ase_calc.SGDMLCalculator`` built from
model arrays that were already read and checked, with the engine's units and
thread count, and refusing systems the model was not trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

# Importing sgdml calls logging.setLoggerClass(ColoredLogger): every logger any
# library creates afterwards would log at DEBUG level to stderr. Undone right
# after; torch, which sgdml imports, is imported first so its loggers stay plain.
import torch  # noqa: E402, F401
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlpotential.errors import UnsupportedSystemError
from mlpotential.units import ModelUnits

_logger_class = logging.getLoggerClass()
from sgdml.intf.ase_calc import SGDMLCalculator  # noqa: E402
from sgdml.predict import GDMLPredict  # noqa: E402

logging.setLoggerClass(_logger_class)

_LATTICE_TOLERANCE = 1e-6
"""Largest difference (model distance unit) between the system's cell and the
lattice a periodic model was trained in."""


def _symbols(numbers: np.ndarray) -> str:
    return " ".join(Atoms(numbers=numbers).get_chemical_symbols())


class SGDMLModelCalculator(SGDMLCalculator):
    """An sGDML model as an ASE calculator: energies in eV, forces in
    eV/Angstrom.

    ``model`` holds the arrays of the model file
    (:func:`mlpotential.backends.sgdml.factory.read_model_file`), ``units``
    the units of its training data. The system must have the model's atoms in
    the model's order (``z``) and, for a model trained with a lattice, that
    lattice; anything else raises :class:`UnsupportedSystemError`.

    The stock constructor is not called: it would re-read the file with
    ``allow_pickle=True``, time parallel settings at every start (caching them
    inside the installed package) and fork a helper process per CPU core. Here
    the predictor runs in the worker process alone: forked helpers would
    outlive a worker that is terminated, blocked on their task queue. Threads
    are NumPy's (BLAS). SGDMLCalculator's own
    ``calculate`` does the evaluation with the conversion factors set below.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, model: dict[str, np.ndarray], model_file: str, units: ModelUnits) -> None:
        Calculator.__init__(self)
        self.model_file = model_file
        self.units = units
        self.numbers = np.asarray(model["z"], dtype=int)
        self.lattice = model.get("lattice")
        # one process, no helpers: with max_processes 1 sGDML starts no pool
        self.gdml_predict = GDMLPredict(model, max_processes=1)
        self.E_to_eV = units.energy_to_ev
        self.F_to_eV_Ang = units.force_to_ev_per_angstrom
        self.Ang_to_R = self.F_to_eV_Ang / self.E_to_eV

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        atoms = self.atoms if atoms is None else atoms
        self._check_atoms(atoms)
        self._check_cell(atoms)
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = float(np.asarray(self.results["energy"]).item())

    def _check_atoms(self, atoms: Atoms) -> None:
        if len(atoms) == len(self.numbers) and np.array_equal(atoms.numbers, self.numbers):
            return
        raise UnsupportedSystemError(
            f"the sGDML model {self.model_file} is trained on {len(self.numbers)} atoms in this order: "
            f"{_symbols(self.numbers)}; this system has {len(atoms)} atoms in the order {_symbols(atoms.numbers)} "
            "(sGDML needs the training data's atoms in the training data's order)",
            "atomSymbols",
        )

    def _check_cell(self, atoms: Atoms) -> None:
        if self.lattice is None:
            if atoms.pbc.any():
                raise UnsupportedSystemError(
                    f"the sGDML model {self.model_file} is trained without periodic boundary conditions; "
                    "this system is periodic",
                    "latticeVectors",
                )
            return
        # sGDML keeps lattice vectors as columns, in the model's distance unit
        cell = atoms.cell.array.T * self.Ang_to_R
        if not atoms.pbc.all() or not np.allclose(cell, self.lattice, rtol=0.0, atol=_LATTICE_TOLERANCE):
            raise UnsupportedSystemError(
                f"the sGDML model {self.model_file} is trained in the periodic lattice (columns, "
                f"{self.units.distance}) {np.array2string(self.lattice, precision=6)}; this system's lattice differs",
                "latticeVectors",
            )
