"""The driver's engine: a :class:`PipeEngine` that asks for everything a
step records in the one Solve the integrator or optimiser makes."""

from __future__ import annotations

from collections.abc import Sequence

from ase import Atoms
from ase.calculators.calculator import all_changes

from mlpotential.host.pipe_engine import PipeEngine


class DriverEngine(PipeEngine):
    """``also``: properties asked for with every calculation: ``forces_std``
    (the worker answers it where the backend has it, at no second Solve) and
    ``stress`` for a barostat (ASE asks for forces and stress separately,
    which would be two Solves of the same geometry)."""

    def __init__(self, *args, also: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.also = list(also)

    def calculate(
        self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",), system_changes=all_changes
    ) -> None:
        wanted = [*properties, *(name for name in self.also if name not in properties)]
        super().calculate(atoms, wanted, system_changes)
