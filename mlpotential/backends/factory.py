"""Engine settings -> ASE calculator: the backend's factory, found in the
registry and imported only now, with import failures turned into errors
that name the install command."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mlpotential.backends.registry import BACKENDS, install_hint
from mlpotential.errors import BackendUnavailableError, EngineSetupError

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

    from mlpotential.backends.keywords import EngineSettings


def create_calculator(settings: EngineSettings) -> Calculator:
    """Build the ASE calculator that ``settings`` (already validated) describe.

    Raises :class:`BackendUnavailableError` when the backend's library cannot
    be imported (naming the install command) and lets the backend's own
    :class:`~mlpotential.errors.EngineSetupError` through.
    """
    spec = BACKENDS[settings.backend]
    module_name, function_name = spec.factory.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name == module_name:
            raise BackendUnavailableError(
                "Backend", f"Backend {spec.name} is not part of this installation of mlpotential ({exc})"
            ) from exc
        raise BackendUnavailableError(
            "Backend",
            f"Backend {spec.name} needs {exc.name or 'a library'} which cannot be imported "
            f"({exc}). Install it with: {install_hint(spec)}",
        ) from exc
    try:
        return getattr(module, function_name)(settings)
    except EngineSetupError:
        raise
    except ImportError as exc:
        raise BackendUnavailableError(
            "Backend",
            f"Backend {spec.name} could not import {exc.name or 'a library'} ({exc}). "
            f"Install it with: {install_hint(spec)}",
        ) from exc
