"""Engine settings -> ASE calculator: the backend's factory (or, for several
model files, a committee), found in the registry and imported only now, with
import failures turned into errors that name the install command."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mlpotential.backends.committee import CommitteeCalculator
from mlpotential.backends.registry import BACKENDS, BackendSpec, install_hint
from mlpotential.errors import BackendUnavailableError, EngineSetupError

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

    from mlpotential.backends.keywords import EngineSettings


def create_calculator(settings: EngineSettings) -> Calculator:
    """Build the ASE calculator that ``settings`` (already validated) describe:
    the backend's model, or, given several model files, their committee
    (the backend's own committee factory where it shares work between
    members, else a :class:`CommitteeCalculator` of one calculator each).

    Raises :class:`BackendUnavailableError` when the backend's library cannot
    be imported (naming the install command) and lets the backend's own
    :class:`~mlpotential.errors.EngineSetupError` through.
    """
    spec = BACKENDS[settings.backend]
    members = settings.members()
    if len(members) == 1:
        return _call(spec, spec.factory, settings)
    if spec.committee_factory is not None:
        return _call(spec, spec.committee_factory, settings)
    calculators = [_call(spec, spec.factory, member) for member in members]
    keyword = "ParameterDir" if len(settings.parameter_dirs) > 1 else "ParameterFile"
    return CommitteeCalculator(calculators, settings.member_names, keyword)


def _call(spec: BackendSpec, reference: str, settings: EngineSettings) -> Calculator:
    """Import the ``module:function`` ``reference`` of ``spec`` and call it with
    ``settings``, import failures turned into errors naming the install command."""
    module_name, function_name = reference.split(":")
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
