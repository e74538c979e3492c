"""The worker as an i-PI client (``mlpotential worker --ipi ADDRESS
--structure FILE``): it connects to an i-PI server (i-PI's ``<ffsocket>``,
ASE's ``SocketIOCalculator``, ...) and computes the forces of every geometry
the server sends, until the server says EXIT or closes the connection.

The protocol sends neither element symbols nor periodicity: the structure
file gives both, and the atom order. Each POSDATA's positions (and, in the
periodic directions, its cell) replace the structure's. The calculation runs
through the same :class:`~mlpotential.worker.session.WorkerSession` as the
pipe protocol (the same checks, errors, log lines and summary file); its
results (Hartree, Hartree/Bohr gradients, Hartree/Bohr^3 stress) become
i-PI's energy, forces and virial (-stress x volume, 3D-periodic structures
only; zero otherwise, as ASE's client sends). The uncertainty, where the
backend has it, goes in the extra bytes as JSON: ``energy_std`` (Hartree)
and ``forces_std`` ((nAtoms, 3), Hartree/Bohr).

Exit statuses: 0 after EXIT or when the server closed the connection between
steps; 1 when the engine or the structure could not be set up or a
calculation failed (the protocol has no way to report an error); 2 when the
conversation broke (a malformed header, a wrong atom count, a server gone in
the middle of a message or of a step); 3 when no server answered within the
retry time; 130 when interrupted (Ctrl-C).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from mlpotential.ase_bridge import system_message
from mlpotential.protocol import ipi
from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import ProtocolError
from mlpotential.worker.log import log
from mlpotential.worker.session import WorkerSession

EXIT_FAILED = 1
EXIT_BROKEN_STREAM = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


class SetupError(Exception):
    """The structure cannot be served (unreadable, or refused by the engine)."""


@dataclass(frozen=True)
class IPIOptions:
    """How the client connects and what it sends."""

    address: ipi.Address
    retry_seconds: float = 60.0
    forces_std: bool = True
    """Ask the backend for per-atom force standard deviations (they can cost as much as the forces)."""


def read_structure(path: Path) -> Atoms:
    """The first frame of ``path`` (any format ase.io reads); SetupError in one line when it cannot be read."""
    try:
        atoms = ase.io.read(path, index=0)
    except Exception as exc:  # ase.io raises many kinds for files it cannot read
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        raise SetupError(f"cannot read the structure file {path}: {reason}") from None
    if not len(atoms):
        raise SetupError(f"the structure file {path} holds no atoms")
    return atoms


def serve_ipi(structure_path: Path, session: WorkerSession, options: IPIOptions) -> int:
    """Connect to the server and serve the session; returns the exit status."""
    if session.engine.startup_error is not None:
        log("not connecting to the i-PI server: the engine could not be set up (see above)")
        return EXIT_FAILED
    session.engine.announce()
    try:
        client = _IPIClient.for_structure(read_structure(structure_path), session, options)
    except SetupError as exc:
        log(str(exc))
        return EXIT_FAILED
    try:
        return client.run(options)
    except KeyboardInterrupt:
        log("interrupted; exiting")
        return EXIT_INTERRUPTED
    finally:
        session.finish()


def _periodic_directions(atoms: Atoms) -> str:
    axes = [axis for axis, periodic in zip("xyz", atoms.pbc) if periodic]
    return f"periodic in {', '.join(axes)}" if axes else "not periodic"


@dataclass
class _IPIClient:
    """The client's state: whether INIT came, the answer waiting for
    GETFORCE, how many geometries were answered."""

    session: WorkerSession
    atom_count: int
    periodic: int
    request: msg.SolveRequest
    initialised: bool = False
    pending: ipi.ForceReady | None = None
    answered: int = 0

    @classmethod
    def for_structure(cls, atoms: Atoms, session: WorkerSession, options: IPIOptions) -> _IPIClient:
        """A client serving ``atoms`` (SetupError when the engine refuses it)."""
        try:
            session.dispatch(system_message(atoms))
        except (ValueError, ProtocolError) as exc:
            raise SetupError(f"cannot serve the structure: {getattr(exc, 'message', exc)}") from None
        log(
            f"i-PI client for {atoms.get_chemical_formula()} ({len(atoms)} atoms, {_periodic_directions(atoms)}); "
            f"connecting to {options.address}"
        )
        periodic = int(atoms.pbc.sum())
        request = msg.SolveRequest("ipi", gradients=True, stressTensor=periodic == 3, other=options.forces_std)
        return cls(session, len(atoms), periodic, request)

    def run(self, options: IPIOptions) -> int:
        try:
            sock = ipi.connect(options.address, options.retry_seconds)
        except ipi.ServerUnreachable as exc:
            log(str(exc))
            return EXIT_UNREACHABLE
        except OSError as exc:
            log(f"cannot connect to {options.address}: {exc.strerror or exc}")
            return EXIT_UNREACHABLE
        connection = ipi.ClientConnection(sock)
        log(f"connected to {options.address}")
        try:
            return self.serve(connection)
        except ipi.IPIError as exc:
            log(f"{exc}; exiting after {self._answered()}")
            return EXIT_BROKEN_STREAM
        except ProtocolError as exc:
            log(f"geometry {self.answered + 1} could not be computed: {exc.message}; exiting")
            return EXIT_FAILED
        finally:
            connection.close()

    def serve(self, connection: ipi.ClientConnection) -> int:
        """Answer the server until EXIT or a closed connection."""
        while True:
            header = connection.read_header()
            if header is None:
                if self.pending is not None:
                    raise ipi.ServerGone("the server closed the connection in the middle of a step, before GETFORCE")
                log(f"the server closed the connection after {self._answered()}")
                return 0
            if header == ipi.EXIT:
                log(f"the server said EXIT after {self._answered()}")
                return 0
            if header == ipi.STATUS:
                connection.send_header(self.status())
            elif header == ipi.INIT:
                self.initialise(connection.read_init())
            elif header == ipi.POSDATA:
                self.pending = self.compute(connection.read_posdata(self.atom_count))
            elif header == ipi.GETFORCE:
                if self.pending is None:
                    raise ipi.MalformedMessage("GETFORCE before POSDATA: there are no forces to send")
                connection.send_forces(self.pending)
                self.pending = None
                self.answered += 1

    def status(self) -> str:
        if self.pending is not None:
            return ipi.HAVEDATA
        return ipi.READY if self.initialised else ipi.NEEDINIT

    def initialise(self, init: ipi.Init) -> None:
        if init.batch_size > 1:
            raise ipi.MalformedMessage(
                f"the server asks for batches of {init.batch_size} structures per POSDATA, which this worker "
                "does not serve; remove batch_size from the server's <ffsocket>"
            )
        if not self.initialised:
            log(f"INIT: serving replica {init.bead_index}")
        self.initialised = True

    def compute(self, posdata: ipi.PosData) -> ipi.ForceReady:
        """Energy, forces and virial (atomic units) of one geometry."""
        self.session.dispatch(msg.SetCoords(posdata.positions))
        lattice = posdata.cell[: self.periodic]
        if self.periodic:
            self.session.dispatch(msg.SetLattice(lattice))
        results, _ = self.session.solve(msg.Solve(self.request))
        return force_ready(results, lattice)

    def _answered(self) -> str:
        return f"{self.answered} geometr{'y' if self.answered == 1 else 'ies'}"


def force_ready(results: msg.Results, lattice: np.ndarray) -> ipi.ForceReady:
    """i-PI's answer from a ``results`` message (atomic units both): forces
    are minus the gradients; the virial, -stress x cell volume, needs the
    stress (3D-periodic systems) and is zero without it."""
    values = results.values
    virial = np.zeros((3, 3))
    if "stressTensor" in values:
        virial = -np.asarray(values["stressTensor"]) * abs(np.linalg.det(lattice))
    extra = {}
    if "energyStdDev" in values:
        extra["energy_std"] = float(values["energyStdDev"])
    if "forcesStdDev" in values:
        extra["forces_std"] = np.asarray(values["forcesStdDev"]).tolist()
    return ipi.ForceReady(results.energy, -np.asarray(values["gradients"]), virial, ipi.json_extra(extra))
