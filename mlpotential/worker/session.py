"""The worker's session: the state between calls and the answer to each
decoded message, following every rule of the pipe protocol (Set-error
buffering, Exit at any time, kept results; see docs/pipe-protocol-notes.md).
The transport loop around it is :mod:`mlpotential.worker.serve`; the
conversion between ASE's units and the wire's is :mod:`mlpotential.ase_bridge`.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from mlpotential.ase_bridge import atoms_from_system, results_to_wire, set_coords, set_lattice
from mlpotential.errors import UnsupportedSystemError
from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.worker.engine import Engine
from mlpotential.worker.log import log
from mlpotential.worker.result_checks import non_finite_result
from mlpotential.worker.summary import write_summary

Reply = msg.Results | msg.Return

_UNSERVABLE = {
    "hessian": "a hessian",
    "elasticTensor": "an elastic tensor",
    "dipoleMoment": "a dipole moment",
    "dipoleGradients": "dipole gradients",
}


class ExitRequested(Exception):
    """The host said Exit."""


def message_name(message: Any) -> str | None:
    if isinstance(message, dict) and len(message) == 1:
        name = next(iter(message))
        return name if isinstance(name, str) else None
    return None


class WorkerSession:
    """The worker's state between calls and the answer to each call."""

    def __init__(self, engine: Engine, summary_path: Path | None = None) -> None:
        self.engine = engine
        self.summary_path = summary_path
        self.atoms: Atoms | None = None
        self.kept: dict[str, msg.Results] = {}
        self.buffered: ProtocolError | None = None
        # What changed since the last calculation: the Set calls say it exactly,
        # so the calculator's own (costly) comparison of the atoms is not needed.
        self.changes: set[str] = set()
        # The summary is written once, when the session ends: writing it on every
        # Solve cost 0.4 ms a step, 2% of an ANI-2x MD step of ethanol.
        self.last_solved: tuple[Atoms, msg.Results] | None = None

    def handle(self, message: Any) -> list[Reply]:
        """The replies to one decoded message (none for Set calls). Raises
        :class:`ExitRequested` on Exit."""
        name = message_name(message)
        if name == "Exit":
            raise ExitRequested
        is_set = name is not None and name.startswith("Set")
        if self.buffered is not None:
            if is_set:
                return []
            error, self.buffered = self.buffered, None
            return [error_return(error)]
        try:
            return self.dispatch(msg.decode_call(message))
        except ProtocolError as raised:
            # A copy without the traceback: keeping the raised error would keep
            # this frame, and with it the whole decoded message, in a
            # reference cycle that only a full garbage collection breaks.
            error = ProtocolError(raised.status, raised.message, raised.method or name or "", raised.argument)
        except Exception as exc:  # a defect must cost one call, not the worker
            traceback.print_exc(file=sys.stderr)
            error = ProtocolError(Status.RUNTIME_ERROR, f"internal error: {type(exc).__name__}: {exc}", name or "")
        if is_set:
            self.buffered = error
            return []
        return [error_return(error)]

    def dispatch(self, call: msg.Call) -> list[Reply]:
        if isinstance(call, msg.Hello):
            if call.version != msg.PROTOCOL_VERSION:
                raise ProtocolError(
                    Status.UNKNOWN_VERSION,
                    f"protocol version {call.version} is not supported; "
                    f"this worker speaks version {msg.PROTOCOL_VERSION}",
                    "Hello",
                    "version",
                )
            return [msg.Return()]
        if isinstance(call, msg.SetSystem):
            self.atoms = atoms_from_system(call)
            self.changes.update(all_changes)
            return []
        if isinstance(call, (msg.SetCoords, msg.SetLattice)):
            name = type(call).__name__
            if self.atoms is None:
                raise ProtocolError(Status.LOGIC_ERROR, f"{name} before SetSystem: there is no system yet", name)
            if isinstance(call, msg.SetCoords):
                set_coords(self.atoms, call.coords)
                self.changes.add("positions")
            else:
                set_lattice(self.atoms, call.vectors)
                self.changes.add("cell")
            return []
        if isinstance(call, msg.Solve):
            return self.solve(call)
        if isinstance(call, msg.DeleteResults):
            if self.kept.pop(call.title, None) is None:
                raise ProtocolError(
                    Status.LOGIC_ERROR, f"no results are kept under the title {call.title!r}", "DeleteResults", "title"
                )
            return [msg.Return()]
        raise ProtocolError(Status.UNKNOWN_METHOD, f"unknown method {type(call).__name__}")

    def solve(self, call: msg.Solve) -> list[Reply]:
        if self.engine.startup_error is not None:
            raise self.engine.startup_error
        request = call.request
        if request.title in self.kept:
            raise ProtocolError(
                Status.LOGIC_ERROR,
                f"results titled {request.title!r} are already kept; DeleteResults first or use a new title",
                "Solve",
                "title",
            )
        if call.prev_title is not None and call.prev_title not in self.kept:
            raise ProtocolError(
                Status.LOGIC_ERROR, f"prevTitle {call.prev_title!r} names no kept results", "Solve", "prevTitle"
            )
        if self.atoms is None:
            raise ProtocolError(Status.LOGIC_ERROR, "Solve before SetSystem: there is no system yet", "Solve")
        for flag, what in _UNSERVABLE.items():
            if getattr(request, flag):
                raise ProtocolError(
                    Status.RUNTIME_ERROR,
                    f"this engine cannot compute {what} (Backend "
                    f"{self.engine.settings.backend} gives energy, gradients and, for 3D-periodic "
                    "systems, the stress tensor)",
                    "Solve",
                    flag,
                )
        charge = float(self.atoms.info.get("charge", 0.0))
        if charge and not self.engine.settings.spec.uses_total_charge:
            raise ProtocolError(
                Status.INVALID_ARGUMENT,
                f"Backend {self.engine.settings.backend} Model {self.engine.settings.model} is for neutral systems "
                f"and does not use a total charge; it refuses totalCharge {charge:g} rather than give the neutral "
                "system's energy",
                "SetSystem",
                "totalCharge",
            )
        if request.stressTensor and not self.atoms.pbc.all():
            raise ProtocolError(
                Status.RUNTIME_ERROR, "a stress tensor needs a system with 3 lattice vectors", "Solve", "stressTensor"
            )
        results = self.compute(request)
        if call.keep_results:
            self.kept[request.title] = results
        return [results, msg.Return()]

    def compute(self, request: msg.SolveRequest) -> msg.Results:
        """Run the calculator and convert its results to atomic units."""
        calculator = self.engine.calculator
        properties = ["energy"]
        if request.gradients:
            properties.append("forces")
        if request.stressTensor:
            properties.append("stress")
        if request.other and "forces_std" in calculator.implemented_properties:
            properties.append("forces_std")
        try:
            _evaluate(calculator, self.atoms, properties, self.changes)
        except UnsupportedSystemError as exc:
            raise ProtocolError(Status.INVALID_ARGUMENT, exc.message, "Solve", exc.argument) from None
        except PropertyNotImplementedError as exc:
            raise ProtocolError(
                Status.RUNTIME_ERROR, f"Backend {self.engine.settings.backend} cannot compute {exc}", "Solve"
            ) from None
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            raise ProtocolError(
                Status.RUNTIME_ERROR,
                f"Backend {self.engine.settings.backend} failed: {type(exc).__name__}: {exc}",
                "Solve",
            ) from None
        problem = non_finite_result(calculator.results, self.atoms, tuple(properties) + ("energy_std",))
        if problem is not None:
            quantity, message = problem
            raise ProtocolError(Status.RUNTIME_ERROR, message, "Solve", quantity)
        results = results_to_wire(calculator.results, request.gradients, request.stressTensor, request.other)
        if "energyStdDev" in results.values:
            self.last_solved = (self.atoms, results)
        return results

    def finish(self) -> None:
        """End of the session: write the summary file for the last geometry
        solved, when the engine gives statistics and a summary path is set."""
        if self.summary_path is None or self.last_solved is None:
            return
        atoms, results = self.last_solved
        try:
            write_summary(self.summary_path, self.engine.settings, atoms, results)
        except OSError as exc:
            log(f"cannot write the summary file {self.summary_path}: {exc.strerror}")


def _evaluate(calculator: Calculator, atoms: Atoms, properties: list[str], changes: set[str]) -> None:
    """Make sure ``calculator.results`` holds ``properties`` for ``atoms``,
    computing them in one call when the system changed or any is missing (a
    second Solve on the same geometry reuses the first's results). ``changes``
    (ASE's names) is cleared once the calculation succeeded."""
    if changes:
        calculator.results = {}
    if changes or any(name not in calculator.results for name in properties):
        calculator.calculate(atoms, properties, sorted(changes))
        changes.clear()
    missing = [name for name in properties if name not in calculator.results and name != "forces_std"]
    if missing:
        raise PropertyNotImplementedError(" and ".join(missing))


def error_return(error: ProtocolError) -> msg.Return:
    return msg.Return(error.status, error.method, error.argument, error.message)
