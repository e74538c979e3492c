"""The ASE backend's factory: engine settings -> ASE calculator (see the package docstring)."""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import EngineSettings
from mlpotential.backends.registry import CUSTOM
from mlpotential.errors import KeywordError


def create_calculator(settings: EngineSettings) -> Calculator:
    """EMT (eV, Angstrom), LennardJones (ASE's defaults: sigma 1, epsilon 1),
    or for Model Custom the calculator of the user's ASECalculatorFile."""
    if settings.model == CUSTOM:
        from mlpotential.backends.ase.custom_file import user_calculators

        (calculator,) = user_calculators(
            settings.calculator_file,
            list(settings.parameter_files),
            settings.parameter_dir,
            settings.device,
            settings.num_threads,
        )
        return calculator
    if settings.device.startswith("cuda"):
        raise KeywordError(
            "Device",
            f"Device {settings.device} is not supported by Model {settings.model}, which runs on the CPU; "
            "use Device cpu",
        )
    if settings.model == "EMT":
        from mlpotential.backends.ase.calculator import CheckedEMT

        return CheckedEMT()
    from ase.calculators.lj import LennardJones

    return LennardJones()
