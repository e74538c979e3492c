"""Status codes of the pipe protocol and the one error type that carries them."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Status of a ``return`` message (AMSPipe numbering)."""

    SUCCESS = 0
    DECODE_ERROR = 1
    LOGIC_ERROR = 2
    RUNTIME_ERROR = 3
    UNKNOWN_VERSION = 4
    UNKNOWN_METHOD = 5
    UNKNOWN_ARGUMENT = 6
    INVALID_ARGUMENT = 7

    @property
    def label(self) -> str:
        """The protocol's own name, e.g. ``invalid_argument``."""
        return self.name.lower()


class ProtocolError(Exception):
    """An error that travels as a ``return`` message: a status, the method
    (call name) and argument it concerns, and a message for a person."""

    def __init__(self, status: Status | int, message: str, method: str = "", argument: str = "") -> None:
        self.status = Status(status)
        self.message = message
        self.method = method
        self.argument = argument
        super().__init__(str(self))

    def __str__(self) -> str:
        where = " ".join(part for part in (self.method, self.argument) if part)
        prefix = f"{self.status.label}" + (f" ({where})" if where else "")
        return f"{prefix}: {self.message}"


class DecodeError(ProtocolError):
    """A payload that is not valid in the codec (status 1, decode_error)."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.DECODE_ERROR, message)
