"""Your own ASE calculator: a Python file that defines ``get_calculator``.

``Backend ASE``, ``Model Custom``, ``ASECalculatorFile my_calculator.py``
runs the file (that is the point: it is your code, with the imports it
needs) and calls its ``get_calculator(...)`` with those keyword arguments its
signature accepts: ``parameter_file``, ``parameter_dir``, ``device``,
``num_threads`` (the engine's ParameterFile, ParameterDir, Device and
NumThreads; a committee calls it once per ParameterFile). Whatever ASE
calculator it returns is served like a built-in backend (eV, Angstrom).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ase.calculators.calculator import BaseCalculator

from mlpotential.errors import KeywordError

KEYWORD = "ASECalculatorFile"
FUNCTION = "get_calculator"
ARGUMENTS = ("parameter_file", "parameter_dir", "device", "num_threads")


def load_function(path: str) -> Callable[..., Any]:
    """``get_calculator`` of the Python file ``path``, the file run as a
    module (its code runs, by design); :class:`KeywordError` when it cannot
    be run or defines no such function."""
    name = f"mlpotential_user_calculator_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise KeywordError(KEYWORD, f"{KEYWORD} {path!r} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may fail in any way; say how, naming the file
        sys.modules.pop(name, None)
        raise KeywordError(KEYWORD, f"{KEYWORD} {path!r} failed when run: {type(exc).__name__}: {exc}") from None
    function = getattr(module, FUNCTION, None)
    if not callable(function):
        raise KeywordError(KEYWORD, f"{KEYWORD} {path!r} defines no function {FUNCTION}(...)")
    return function


def call_function(function: Callable[..., Any], path: str, values: dict[str, Any]) -> BaseCalculator:
    """Call ``get_calculator`` with the arguments of ``values`` its signature
    accepts (all of them if it takes ``**kwargs``); the result must be an ASE
    calculator."""
    parameters = inspect.signature(function).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    arguments = {key: value for key, value in values.items() if takes_all or key in parameters}
    try:
        calculator = function(**arguments)
    except Exception as exc:  # as above: the user's code
        raise KeywordError(KEYWORD, f"{KEYWORD} {path!r}: {FUNCTION}(...) raised {type(exc).__name__}: {exc}") from None
    if not isinstance(calculator, BaseCalculator):
        raise KeywordError(
            KEYWORD,
            f"{KEYWORD} {path!r}: {FUNCTION}(...) returned {type(calculator).__name__}, not an ASE calculator",
        )
    return calculator


def user_calculators(
    path: str | Path, parameter_files: list[str], parameter_dir: str | None, device: str, num_threads: int | None
) -> list[BaseCalculator]:
    """One calculator per ParameterFile (one with ``parameter_file=None``
    when none is given), each from ``get_calculator`` of the file ``path``."""
    function = load_function(str(path))
    files: list[str | None] = list(parameter_files) or [None]
    return [
        call_function(
            function,
            str(path),
            {"parameter_file": file, "parameter_dir": parameter_dir, "device": device, "num_threads": num_threads},
        )
        for file in files
    ]
