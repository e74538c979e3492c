"""What the worker serves: the calculator built from the engine keywords, or
the error that stopped it from being built (every Solve then answers with it)."""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from ase.calculators.calculator import Calculator

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import EngineSettings, parse_settings
from mlpotential.backends.runtime import configure_threads
from mlpotential.errors import BackendUnavailableError, EngineSetupError
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.worker.log import LOG_PREFIX, log, show_backend_logs
from mlpotential.worker.provenance import engine_provenance, provenance_line


@dataclass
class Engine:
    """What the worker serves: the calculator, or the error that stopped it
    from being built (then every Solve answers with that error)."""

    settings: EngineSettings | None
    calculator: Calculator | None
    startup_error: ProtocolError | None = None
    # What the log says once the worker serves: its provenance and what it cannot use.
    announcements: tuple[str, ...] = ()

    def announce(self) -> None:
        """Log the announcements (at the start of serving: a worker that
        refuses its directory says only that)."""
        for line in self.announcements:
            print(line, file=sys.stderr, flush=True)


def load_engine(keywords: Mapping[str, str | None]) -> Engine:
    """Validate the keywords and build the calculator. Failures do not
    raise: they become the engine's startup error (status 7 for a bad
    keyword or file, 3 for a missing library or device)."""
    settings = None
    show_backend_logs()
    try:
        settings = parse_settings(keywords)
        configure_threads(settings.num_threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            calculator = create_calculator(settings)
        for warning in caught:  # one line each in the worker's log, the file named (pickles, units)
            log(f"warning: {warning.message}")
        announcements = [provenance_line(engine_provenance(settings, calculator))]
        if not settings.spec.uses_total_charge:
            announcements.append(
                f"{LOG_PREFIX}Backend {settings.backend} Model {settings.model} does not use a total charge "
                "(neutral systems only): a system with a non-zero totalCharge is refused"
            )
        return Engine(settings, calculator, announcements=tuple(announcements))
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
    log(message)
    return Engine(settings, None, ProtocolError(status, message, "Solve", keyword))
