"""``PipeEngine``: an ASE calculator whose energies and forces come from an
mlpotential worker (or any AMS-compatible worker) in another process.

It converts at the edge: ASE's eV and Angstrom in, the wire's Hartree and
Bohr out. It sends SetSystem when the species, the atom count or the
periodicity change and SetCoords/SetLattice otherwise. A calculation that
fails half way (the worker died, missed its timeout, or the host was
interrupted) drops the worker; the next calculation starts a fresh one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlpotential.ase_bridge import coords_message, lattice_message, results_from_wire, system_message
from mlpotential.backends.keywords import KEYWORDS, PATH_KEYWORDS, keyword_options
from mlpotential.errors import KeywordError
from mlpotential.host.client import EngineError, PipeClient
from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError, check_timeout, our_worker_command
from mlpotential.names import canonical_name
from mlpotential.protocol.errors import Status

# Changes that SetCoords/SetLattice can carry; any other change needs SetSystem.
_SAME_SYSTEM = frozenset(("positions", "cell"))


def absolute_keywords(
    keywords: Mapping[str, Any], base: str | os.PathLike[str] | None = None
) -> dict[str, str | list[str]]:
    """The keywords with their paths (ParameterFile, ParameterDir,
    ASECalculatorFile; a list for a committee) made absolute against ``base``
    (default: the current directory): the worker runs elsewhere."""
    base_path = Path(base) if base is not None else Path.cwd()
    result: dict[str, str | list[str]] = {}
    for key, value in keywords.items():
        if value is None:
            continue
        is_path = canonical_name(key, PATH_KEYWORDS) is not None
        values = [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]
        if is_path:
            values = [str((base_path / Path(item).expanduser()).resolve()) if item else item for item in values]
        result[key] = values if isinstance(value, (list, tuple)) else values[0]
    return result


_ASE_CALCULATOR_ARGUMENTS = ("restart", "ignore_bad_restart_file", "label", "atoms", "directory")
"""The keyword arguments that go to ASE's Calculator rather than to the engine."""


def engine_keyword_arguments(
    keywords: Mapping[str, Any] | None, arguments: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split PipeEngine's extra keyword arguments: engine keywords (any case,
    ``Backend="ASE"``, ``model="EMT"``) join ``keywords``; ASE Calculator's
    own arguments stay apart. Anything else, or a keyword given twice, is a
    TypeError naming what is allowed."""
    merged = dict(keywords or {})
    given = {canonical_name(name, KEYWORDS): name for name in merged}
    calculator_arguments = {}
    for name, value in arguments.items():
        keyword = canonical_name(name, KEYWORDS)
        if keyword is None:
            if name not in _ASE_CALCULATOR_ARGUMENTS:
                raise TypeError(
                    f"PipeEngine got an unknown keyword argument {name!r}; engine keywords: {', '.join(KEYWORDS)} "
                    f"(any case); ASE Calculator arguments: {', '.join(_ASE_CALCULATOR_ARGUMENTS)}"
                )
            calculator_arguments[name] = value
        elif keyword in given:
            raise TypeError(f"PipeEngine got the engine keyword {keyword} twice ({given[keyword]!r} and {name!r})")
        else:
            given[keyword] = name
            merged[keyword] = value
    return merged, calculator_arguments


def worker_options(keywords: Mapping[str, str]) -> list[str]:
    """``mlpotential worker`` options for engine keywords; an unknown keyword
    is an :class:`EngineError` (invalid_argument) naming it."""
    try:
        return keyword_options(keywords)
    except KeywordError as exc:
        raise EngineError(Status.INVALID_ARGUMENT, exc.message, "", exc.keyword) from None


class PipeEngine(Calculator):
    """An ASE calculator served by a worker process over the pipe protocol.

    ``keywords`` are engine keywords (``{"Backend": "ASE", "Model": "EMT"}``),
    which may also be given as keyword arguments in any case
    (``PipeEngine(Backend="ASE", Model="EMT")``; an unknown one is a
    TypeError naming the allowed ones); ``input_file`` is a file with an ``Engine MLPotential`` block (the
    keywords override it). Relative paths in both are taken against
    ``base_directory`` (default: the current directory), because the worker
    runs in its private directory. ``worker_command`` replaces our worker by
    any AMS-compatible command; ``worker_args`` are extra ``mlpotential
    worker`` options (absolute paths, e.g. ``--summary``).

    ``timeout`` (seconds) bounds each calculation: writing the geometry, the
    worker's Solve and reading its results; ``start_timeout`` (seconds)
    bounds the worker's start until it has opened its pipes (it loads its
    model first). Both default to None, waiting forever: one Solve takes
    from microseconds to hours depending on the backend, the system and the
    device, so no default could tell a hung worker from a slow one, and a
    dead worker is noticed within 0.1 s without any timeout. A worker that
    misses a timeout is killed and :class:`WorkerTimeoutError` raised; the
    next calculation starts a fresh worker.

    Results: energy, free_energy (eV), forces (eV/Angstrom), stress
    (eV/Angstrom^3, 3D-periodic systems), energy_std (eV) and forces_std
    (eV/Angstrom) where the backend has them. Use as a context manager, or
    call :meth:`close`; the worker is started on first use.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]
    discard_results_on_any_change = True

    def __init__(
        self,
        keywords: Mapping[str, Any] | None = None,
        *,
        codec: str = "ubjson",
        worker_command: Sequence[str] | None = None,
        worker_args: Sequence[str] = (),
        input_file: str | os.PathLike[str] | None = None,
        base_directory: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        start_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        check_timeout("timeout", timeout)
        check_timeout("start_timeout", start_timeout)
        keywords, calculator_arguments = engine_keyword_arguments(keywords, kwargs)
        super().__init__(**calculator_arguments)
        self.keywords = absolute_keywords(keywords, base_directory)
        if worker_command is None:
            options = worker_options(self.keywords)
            if input_file is not None:
                base = Path(base_directory) if base_directory is not None else Path.cwd()
                options = ["--input", str((base / Path(input_file).expanduser()).resolve()), *options]
            worker_command = our_worker_command(*options, *worker_args)
        self.command = list(worker_command)
        self.codec = codec
        self.env = env
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.client: PipeClient | None = None
        self._system_sent = False
        self._closed_worker_log = ""  # what the last worker printed, kept when it is stopped

    # -------------------------------------------------------------- lifecycle
    def start(self) -> PipeClient:
        """Start the worker and say Hello (done on first use otherwise)."""
        if self.client is None:
            client = PipeClient(self.command, self.codec, self.env, self.timeout, self.start_timeout)
            try:
                client.hello()
            except BaseException:
                client.close(timeout=2.0)
                raise
            self.client = client
        return self.client

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (waiting up to ``timeout`` seconds for it to exit
        before ending it) and remove its pipe directory."""
        if self.client is not None:
            client, self.client = self.client, None
            self._system_sent = False
            client.close(timeout)
            self._closed_worker_log = client.worker.log_text()

    def __enter__(self) -> PipeEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        return None if self.client is None else self.client.worker.pid

    def worker_log(self) -> str:
        """What the worker printed so far (warnings, errors); after
        :meth:`close`, or a calculation that stopped the worker, what the
        last worker had printed."""
        return self._closed_worker_log if self.client is None else self.client.worker.log_text()

    # ------------------------------------------------------------ calculation
    def _send_geometry(self, atoms: Atoms, system_changes: Sequence[str]) -> None:
        """SetSystem for a new system (first call, other species, atom count or
        periodicity), else SetCoords/SetLattice for what ASE says changed."""
        client = self.start()
        if not self._system_sent or not _SAME_SYSTEM.issuperset(system_changes):
            try:
                client.set_system(system_message(atoms))
            except ValueError as exc:
                raise EngineError(Status.INVALID_ARGUMENT, str(exc), "SetSystem", "latticeVectors") from None
            self._system_sent = True
            return
        if "positions" in system_changes:
            client.call(coords_message(atoms))
        if "cell" in system_changes and atoms.pbc.any():
            client.call(lattice_message(atoms))

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        try:
            self._send_geometry(self.atoms, system_changes)
            results = self.client.solve(
                gradients=True, stressTensor="stress" in properties, other="forces_std" in properties
            )
        except EngineError:
            raise  # the worker answered: it is in step and goes on serving
        except BaseException:
            # Died, timed out, interrupted or broke the protocol: a fresh
            # worker (and SetSystem) for the next calculation.
            self.close(timeout=1.0)
            raise
        self.results = results_from_wire(results)


__all__ = ["EngineError", "PipeEngine", "WorkerDiedError", "WorkerTimeoutError"]
