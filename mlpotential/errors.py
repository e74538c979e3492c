"""Errors a backend raises, in terms a person can act on.

The worker maps them onto pipe-protocol statuses (worker/session.py); backends
themselves know nothing about pipes.
"""

from __future__ import annotations


class EngineSetupError(Exception):
    """The engine could not be set up from its keywords.

    ``keyword`` names the engine keyword at fault (``Model``,
    ``ParameterFile``, ``Device``...), ``message`` says what is wrong and what
    is allowed.
    """

    def __init__(self, keyword: str, message: str) -> None:
        super().__init__(message)
        self.keyword = keyword
        self.message = message


class KeywordError(EngineSetupError):
    """A keyword value or the file it names is wrong (protocol status 7)."""


class BackendUnavailableError(EngineSetupError):
    """A backend library cannot be imported or a device is absent (status 3)."""


class UnsupportedSystemError(ValueError):
    """The model cannot evaluate this system (an element it does not cover,
    atoms in an order it was not trained on...). Protocol status 7; the
    worker keeps serving.

    ``argument`` names the system argument at fault (``atomSymbols``,
    ``latticeVectors``...).
    """

    def __init__(self, message: str, argument: str = "atomSymbols") -> None:
        super().__init__(message)
        self.argument = argument
        self.message = message
