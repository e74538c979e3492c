"""LAMMPS with an mlpotential engine: :func:`attach` couples a running
LAMMPS instance (``lammps.lammps``, LAMMPS's Python library interface) to a
worker process through ``fix external`` in callback mode.

    import lammps
    from mlpotential.lammps import attach

    lmp = lammps.lammps()
    lmp.file("in.copper")  # units, box, atoms, masses, velocities, fix nve ...
    with attach(lmp, {"Backend": "HDNNP", "Model": "Cu-EMT"}):
        lmp.command("run 1000")

Every time LAMMPS needs forces it calls back with the positions; they go,
with the box, to the worker (:class:`~mlpotential.host.pipe_engine.PipeEngine`,
so the model runs in its own process with its own threads), and the
energy, forces and (3D-periodic boxes) virial come back in the units of the
input's ``units`` style: metal (eV, Angstrom), real (kcal/mol, Angstrom) or
electron (Hartree, Bohr). The energy counts in LAMMPS's ``pe``, the virial in
its pressure.

Element names come from ``type_symbols`` (one per atom type) or, without
it, from the types' masses (each must be within 0.1 amu of an element's
standard atomic mass). Atoms are sent in the order of their IDs, so LAMMPS's
own re-sorting of atoms does not change the system the worker sees.

A failure while LAMMPS runs (the worker died, the model refused a geometry)
is printed on stderr and stops the run at the end of that step with an error
(a ``fix halt`` added by :func:`attach`): ``lmp.command("run ...")`` raises,
as for any LAMMPS error. Runs on one MPI process only.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, chemical_symbols

from mlpotential.host.pipe_engine import PipeEngine
from mlpotential.units import LAMMPS_UNIT_STYLES, ModelUnits

MASS_TOLERANCE_AMU = 0.1
"""A type's mass names an element when it is this close to the element's standard atomic mass."""

_SENDABLE_BOUNDARIES = ([0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1])
"""LAMMPS periodicity flags the engine can serve: the first 1, 2 or 3 directions periodic (or none)."""


class LammpsCouplingError(RuntimeError):
    """A step could not be computed; the run is stopped with this message."""


def attach(
    lmp: Any,
    keywords: Mapping[str, Any],
    group: str = "all",
    fix_id: str = "mlpotential",
    type_symbols: Sequence[str] | None = None,
) -> Attachment:
    """Start a worker for the engine ``keywords`` (``{"Backend": "HDNNP",
    "Model": "Cu-EMT"}``) and make it LAMMPS's source of forces, energy and
    virial through ``fix <fix_id> <group> external pf/callback 1 1``.

    ``lmp`` must have its box, atoms and masses defined. ``group`` receives
    the forces (the model always sees every atom). ``type_symbols`` names the
    element of each atom type (type 1 first); without it the masses decide.
    The model is evaluated once here, so bad keywords or a model that
    refuses the structure raise now (EngineError, with the worker's message);
    ValueError for a LAMMPS setup this coupling cannot serve. Returns the
    :class:`Attachment`; its ``close()`` stops the worker.
    """
    if lmp.extract_setting("world_size") != 1:
        raise ValueError("mlpotential.lammps.attach serves LAMMPS runs on one MPI process only")
    units = _units(lmp)
    ids = np.asarray(lmp.numpy.extract_atom("id"), dtype=np.int64).copy()
    types = np.asarray(lmp.numpy.extract_atom("type"))
    order = np.argsort(ids)
    element_of_type = _type_symbols(lmp, type_symbols)
    periodic = list(lmp.extract_box()[5])
    if periodic not in _SENDABLE_BOUNDARIES:
        raise ValueError(
            f"boundary flags {periodic} (1 = periodic) cannot be served: make the first 1, 2 or 3 directions "
            "periodic, or none"
        )
    atoms = Atoms([element_of_type[t] for t in types[order]], pbc=[bool(p) for p in periodic])
    engine = PipeEngine(keywords)
    attachment = Attachment(lmp, engine, fix_id, atoms, ids[order], units)
    try:
        attachment.evaluate(ids, np.asarray(lmp.numpy.extract_atom("x")))
        _add_fixes(lmp, attachment, group)
    except BaseException:  # a bad group or fix ID included: no worker outlives a failed attach
        engine.close()
        raise
    return attachment


def _add_fixes(lmp: Any, attachment: Attachment, group: str) -> None:
    """fix external with our callback, and the fix halt that stops a run whose step failed."""
    fix_id, failed = attachment.fix_id, attachment.failure_variable
    lmp.commands_string(
        f"""
        fix {fix_id} {group} external pf/callback 1 1
        fix_modify {fix_id} energy yes virial {"yes" if attachment.has_virial else "no"}
        variable {failed} internal 0
        fix {failed} all halt 1 v_{failed} > 0.5 error hard message yes
        """
    )
    lmp.set_fix_external_callback(fix_id, attachment.callback)


def _units(lmp: Any) -> ModelUnits:
    style = lmp.extract_global("units")
    if style not in LAMMPS_UNIT_STYLES:
        raise ValueError(
            f"LAMMPS units style {style!r} is not served; use {', '.join(LAMMPS_UNIT_STYLES)} (units command)"
        )
    return LAMMPS_UNIT_STYLES[style]


def _type_symbols(lmp: Any, type_symbols: Sequence[str] | None) -> dict[int, str]:
    """Atom type (1-based) -> element symbol, from ``type_symbols`` or the types' masses."""
    ntypes = lmp.extract_setting("ntypes")
    if type_symbols is not None:
        if isinstance(type_symbols, str) or len(type_symbols) != ntypes:
            raise ValueError(f"type_symbols must be a list of {ntypes} element symbols, one per atom type")
        unknown = [symbol for symbol in type_symbols if symbol not in chemical_symbols[1:]]
        if unknown:
            raise ValueError(f"type_symbols holds unknown element symbol(s): {', '.join(map(repr, unknown))}")
        return dict(enumerate(type_symbols, start=1))
    masses = lmp.numpy.extract_atom("mass")
    if masses is None:
        raise ValueError("the atoms have per-atom masses: give the elements with type_symbols")
    return {atom_type: _element_of_mass(atom_type, float(masses[atom_type])) for atom_type in range(1, ntypes + 1)}


def _element_of_mass(atom_type: int, mass: float) -> str:
    candidates = np.abs(atomic_masses[1:] - mass)
    nearest = int(np.argmin(candidates)) + 1
    if candidates[nearest - 1] > MASS_TOLERANCE_AMU:
        raise ValueError(
            f"atom type {atom_type} has mass {mass:g}, no element's standard atomic mass "
            f"(within {MASS_TOLERANCE_AMU} amu): give the elements with type_symbols"
        )
    return chemical_symbols[nearest]


class Attachment:
    """One LAMMPS instance coupled to one worker. Use as a context manager
    or call :meth:`close`, which stops the worker (a later run then stops at
    its first step)."""

    def __init__(
        self, lmp: Any, engine: PipeEngine, fix_id: str, atoms: Atoms, ids: np.ndarray, units: ModelUnits
    ) -> None:
        self.lmp = lmp
        self.engine = engine
        self.fix_id = fix_id
        self.failure_variable = f"{fix_id}_failed"
        self.atoms = atoms
        self.ids = ids
        self.units = units
        self.has_virial = bool(atoms.pbc.all())
        self.properties = ["energy", "forces", "stress"] if self.has_virial else ["energy", "forces"]
        self.failure: str | None = None
        self.closed = False

    @property
    def worker_pid(self) -> int | None:
        return self.engine.worker_pid

    def evaluate(self, tags: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray, list[float]]:
        """Energy, forces (in the order of ``tags``) and the virial (xx, yy,
        zz, xy, xz, yz; zeros without a 3D-periodic box), in LAMMPS units,
        for LAMMPS positions given per atom ID in ``tags``."""
        order = np.argsort(tags)
        if len(tags) != len(self.ids) or not np.array_equal(tags[order], self.ids):
            raise LammpsCouplingError(
                f"the atoms changed (now {len(tags)}, attached with {len(self.ids)}): attach again after "
                "creating or deleting atoms"
            )
        units = self.units
        self.atoms.positions = positions[order] * units.distance_to_angstrom
        self.atoms.set_cell(self._cell() * units.distance_to_angstrom, scale_atoms=False)
        self.engine.calculate(self.atoms, self.properties, self.engine.check_state(self.atoms))
        results = self.engine.results
        forces = np.empty_like(positions)
        forces[order] = results["forces"] / units.force_to_ev_per_angstrom
        virial = [0.0] * 6
        if self.has_virial:
            # ASE's Voigt order is xx yy zz yz xz xy; LAMMPS's is xx yy zz xy xz yz.
            xx, yy, zz, yz, xz, xy = -results["stress"] * self.atoms.get_volume() / units.energy_to_ev
            virial = [xx, yy, zz, xy, xz, yz]
        return results["energy"] / units.energy_to_ev, forces, virial

    def _cell(self) -> np.ndarray:
        """The box as rows a, b, c (LAMMPS distance units)."""
        low, high, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = np.subtract(high, low)
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    def callback(self, caller: object, step: int, nlocal: int, tags: np.ndarray, x: np.ndarray, f: np.ndarray) -> None:
        """fix external's callback: fill ``f`` and set the energy and virial.
        It must not raise (ctypes would print the error and LAMMPS would go
        on with stale forces): a failure stops the run instead."""
        try:
            if self.closed:
                raise LammpsCouplingError("the mlpotential attachment was closed; attach again to run")
            if self.failure is not None:
                raise LammpsCouplingError(self.failure)
            energy, forces, virial = self.evaluate(np.asarray(tags).reshape(-1), x)
        except Exception as exc:  # anything: see above
            f[:] = 0.0
            self._stop_run(step, exc)
            return
        f[:] = forces
        self.lmp.fix_external_set_energy_global(self.fix_id, energy)
        if self.has_virial:
            self.lmp.fix_external_set_virial_global(self.fix_id, virial)

    def _stop_run(self, step: int, exc: Exception) -> None:
        """Say why on stderr and make the ``fix halt`` end the run with an error at the end of this step."""
        self.failure = str(exc) if isinstance(exc, LammpsCouplingError) else f"{type(exc).__name__}: {exc}"
        print(f"mlpotential.lammps: step {step}: {self.failure}; stopping the run", file=sys.stderr, flush=True)
        self.lmp.set_internal_variable(self.failure_variable, 1.0)

    def close(self) -> None:
        """Stop the worker (LAMMPS itself is left as it is)."""
        self.closed = True
        self.engine.close()

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
