"""The worker: one engine (an ASE calculator) served over the pipe protocol.

:class:`WorkerSession` holds the state between calls and answers each
decoded message following every rule of the pipe protocol (Set-error
buffering, Exit at any time, kept results; see docs/pipe-protocol-notes.md);
:func:`serve` runs the transport loop over the FIFOs. Units are converted
here, at the edge: Hartree and Bohr on the wire, eV and Angstrom inside.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from mlpotential.backends.errors import BackendUnavailableError, EngineSetupError, UnsupportedSystemError
from mlpotential.backends.keywords import EngineSettings, parse_settings
from mlpotential.backends.registry import create_calculator
from mlpotential.backends.runtime import configure_threads
from mlpotential.backends.units import BOHR_ANGSTROM, HARTREE_EV, HARTREE_PER_BOHR_EV_PER_ANGSTROM
from mlpotential.engine.pipe_directory import (
    launcher_pid,
    process_alive,
    remove_pipe_directory,
)
from mlpotential.engine.summary import write_summary
from mlpotential.engine.system import atoms_from_system, set_coords, set_lattice
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import UBJSON, Codec, detect_codec
from mlpotential.protocol.errors import DecodeError, ProtocolError, Status
from mlpotential.protocol.fifo import open_worker_side
from mlpotential.protocol.framing import FrameError, FrameReader, FrameTooLarge, write_frames

Reply = msg.Results | msg.Return

_UNSERVABLE = {
    "hessian": "a hessian",
    "elasticTensor": "an elastic tensor",
    "dipoleMoment": "a dipole moment",
    "dipoleGradients": "dipole gradients",
}


@dataclass
class Engine:
    """What the worker serves: the calculator, or the error that stopped it
    from being built (then every Solve answers with that error)."""

    settings: EngineSettings | None
    calculator: Calculator | None
    startup_error: ProtocolError | None = None


def load_engine(keywords: Mapping[str, str | None]) -> Engine:
    """Validate the keywords and build the calculator. Failures do not
    raise: they become the engine's startup error (status 7 for a bad
    keyword or file, 3 for a missing library or device)."""
    settings = None
    try:
        settings = parse_settings(keywords)
        configure_threads(settings.num_threads)
        return Engine(settings, create_calculator(settings))
    except EngineSetupError as exc:
        status = Status.RUNTIME_ERROR if isinstance(exc, BackendUnavailableError) else Status.INVALID_ARGUMENT
        return failed_engine(exc.message, exc.keyword, status, settings)
    except Exception as exc:  # a backend failing in an unforeseen way must not kill the worker
        traceback.print_exc(file=sys.stderr)
        message = f"the engine could not be set up: {type(exc).__name__}: {exc}"
        return failed_engine(message, "Backend", Status.RUNTIME_ERROR, settings)


def failed_engine(
    message: str, keyword: str, status: Status = Status.INVALID_ARGUMENT, settings: EngineSettings | None = None
) -> Engine:
    """An engine that answers every Solve with this start-up error."""
    _log(message)
    return Engine(settings, None, ProtocolError(status, message, "Solve", keyword))


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
            return [_error_return(error)]
        try:
            return self.dispatch(msg.decode_call(message))
        except ProtocolError as raised:
            error = raised
            if not error.method and name:
                error.method = name
        except Exception as exc:  # a defect must cost one call, not the worker
            traceback.print_exc(file=sys.stderr)
            error = ProtocolError(Status.RUNTIME_ERROR, f"internal error: {type(exc).__name__}: {exc}", name or "")
        if is_set:
            self.buffered = error
            return []
        return [_error_return(error)]

    def dispatch(self, call: msg.Call) -> list[Reply]:
        if isinstance(call, msg.Hello):
            if call.version != msg.PROTOCOL_VERSION:
                raise ProtocolError(Status.UNKNOWN_VERSION, f"protocol version {call.version} is not supported; "
                                    f"this worker speaks version {msg.PROTOCOL_VERSION}", "Hello", "version")  # fmt: skip
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
                raise ProtocolError(Status.LOGIC_ERROR, f"no results are kept under the title {call.title!r}",
                                    "DeleteResults", "title")  # fmt: skip
            return [msg.Return()]
        raise ProtocolError(Status.UNKNOWN_METHOD, f"unknown method {type(call).__name__}")

    def solve(self, call: msg.Solve) -> list[Reply]:
        if self.engine.startup_error is not None:
            raise self.engine.startup_error
        request = call.request
        if request.title in self.kept:
            raise ProtocolError(Status.LOGIC_ERROR, f"results titled {request.title!r} are already kept; "
                                "DeleteResults first or use a new title", "Solve", "title")  # fmt: skip
        if call.prev_title is not None and call.prev_title not in self.kept:
            raise ProtocolError(Status.LOGIC_ERROR, f"prevTitle {call.prev_title!r} names no kept results",
                                "Solve", "prevTitle")  # fmt: skip
        if self.atoms is None:
            raise ProtocolError(Status.LOGIC_ERROR, "Solve before SetSystem: there is no system yet", "Solve")
        for flag, what in _UNSERVABLE.items():
            if getattr(request, flag):
                raise ProtocolError(Status.RUNTIME_ERROR, f"this engine cannot compute {what} (Backend "
                                    f"{self.engine.settings.backend} gives energy, gradients and, for 3D-periodic "
                                    "systems, the stress tensor)", "Solve", flag)  # fmt: skip
        if request.stressTensor and not self.atoms.pbc.all():
            raise ProtocolError(Status.RUNTIME_ERROR, "a stress tensor needs a system with 3 lattice vectors",
                                "Solve", "stressTensor")  # fmt: skip
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
            raise ProtocolError(Status.RUNTIME_ERROR, f"Backend {self.engine.settings.backend} cannot compute "
                                f"{exc}", "Solve") from None  # fmt: skip
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            raise ProtocolError(Status.RUNTIME_ERROR, f"Backend {self.engine.settings.backend} failed: "
                                f"{type(exc).__name__}: {exc}", "Solve") from None  # fmt: skip
        ase_results = calculator.results
        energy = float(ase_results["energy"])
        if not math.isfinite(energy):
            raise ProtocolError(Status.RUNTIME_ERROR, f"the model returned a non-finite energy ({energy})", "Solve")
        values: dict[str, Any] = {}
        if request.gradients:
            values["gradients"] = ase_results["forces"] / -HARTREE_PER_BOHR_EV_PER_ANGSTROM
        if request.stressTensor:
            values["stressTensor"] = _voigt_to_matrix(ase_results["stress"]) * (BOHR_ANGSTROM**3 / HARTREE_EV)
        if "energy_std" in ase_results:
            values["energyStdDev"] = float(ase_results["energy_std"]) / HARTREE_EV
        if request.other and "forces_std" in ase_results:
            values["forcesStdDev"] = np.asarray(ase_results["forces_std"]) / HARTREE_PER_BOHR_EV_PER_ANGSTROM
        results = msg.Results(energy / HARTREE_EV, values)
        if "energyStdDev" in values:
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
            _log(f"cannot write the summary file {self.summary_path}: {exc.strerror}")


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


def _voigt_to_matrix(stress: np.ndarray) -> np.ndarray:
    stress = np.asarray(stress)
    if stress.shape == (3, 3):
        return stress
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _error_return(error: ProtocolError) -> msg.Return:
    return msg.Return(error.status, error.method, error.argument, error.message)


def _log(text: str) -> None:
    print(f"mlpotential worker: {text}", file=sys.stderr, flush=True)


class HostGone(Exception):
    """The host process ended before it connected to the pipes."""


def host_watch(directory: Path) -> Callable[[], None]:
    """A ``keep_waiting`` callback that raises once the host is gone: the
    launcher recorded in the directory's marker, else the parent process."""
    host = launcher_pid(directory)
    parent = os.getppid()

    def keep_waiting() -> None:
        if not (process_alive(host) if host is not None else os.getppid() == parent):
            raise HostGone

    return keep_waiting


def serve(directory: Path, session: WorkerSession) -> int:
    """Serve ``session`` over the FIFOs in ``directory`` until Exit or end
    of file; returns the process exit status (non-zero when the stream broke)."""
    try:
        call_fd, reply_fd = open_worker_side(directory, host_watch(directory))
    except HostGone:
        _log("the host went away before it opened the pipes")
        remove_pipe_directory(directory)
        return 1
    reader = FrameReader(call_fd)
    codec: Codec | None = None
    # The host hung up without Exit (it may have been killed): a launcher's
    # directory is then the worker's to remove.
    hung_up = False

    def send(replies: list[Reply]) -> None:
        encode = (codec or UBJSON).dumps
        write_frames(reply_fd, [encode(_encode_reply(reply)) for reply in replies])

    try:
        while True:
            try:
                payload = reader.read_frame()
            except FrameTooLarge as exc:
                _log(f"{exc}; exiting")
                send([msg.Return(Status.DECODE_ERROR, message=str(exc))])
                return 2
            except FrameError as exc:
                _log(f"{exc}; exiting")
                return 2
            if payload is None:
                hung_up = True
                return 0
            try:
                if codec is None:
                    codec = detect_codec(payload)
                message = codec.loads(payload)
            except DecodeError as exc:
                send([_error_return(exc)])
                continue
            replies = session.handle(message)
            if replies:
                send(replies)
    except ExitRequested:
        return 0
    except BrokenPipeError:
        _log("the host closed reply_pipe; exiting")
        hung_up = True
        return 0
    finally:
        session.finish()
        os.close(call_fd)
        os.close(reply_fd)
        if hung_up:
            remove_pipe_directory(directory)


def _encode_reply(reply: Reply) -> dict[str, Any]:
    return msg.encode_results(reply) if isinstance(reply, msg.Results) else msg.encode_return(reply)
