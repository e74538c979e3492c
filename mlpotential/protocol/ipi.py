"""The i-PI socket protocol, client side: addresses, connecting, the
12-byte headers and the binary messages.

A server (i-PI's ``<ffsocket>``, ASE's ``SocketIOCalculator``) sends a
header and, for INIT and POSDATA, a body; the client answers STATUS with
its state and GETFORCE with FORCEREADY and the results. Numbers travel in
the machine's byte order: int32 counts, float64 values.

Units on the wire are atomic: positions and cells in Bohr, energies and
the virial in Hartree, forces in Hartree/Bohr. The cell travels as i-PI's
matrix h, whose *columns* are the lattice vectors; this module hands cells
over as rows (each row a lattice vector, as ASE and the pipe protocol hold
them) and transposes at the edge.

Nothing here knows chemistry: the worker checks atom counts against its
structure and computes what it sends back.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = 12
"""Every message starts with its name, upper case, padded with spaces to 12 bytes."""

UNIX_SOCKET_PREFIX = "/tmp/ipi_"
"""Where i-PI puts a UNIX socket called NAME (``/tmp/ipi_NAME``), so ``unix:NAME`` means the same as in i-PI."""

DEFAULT_MESSAGE_TIMEOUT = 60.0
"""Seconds the rest of a message may take once its header arrived: servers
send a message in one write, so a body that stops coming means a server that
died without closing the connection."""

MAX_INIT_BYTES = 1 << 20
"""The longest INIT parameter string accepted (i-PI sends a few bytes)."""

# Headers a client receives ...
STATUS = "STATUS"
INIT = "INIT"
POSDATA = "POSDATA"
GETFORCE = "GETFORCE"
EXIT = "EXIT"
SERVER_HEADERS = (STATUS, INIT, POSDATA, GETFORCE, EXIT)
# ... and those it sends.
NEEDINIT = "NEEDINIT"
READY = "READY"
HAVEDATA = "HAVEDATA"
FORCEREADY = "FORCEREADY"

_INT32 = np.dtype(np.int32)
_FLOAT64 = np.dtype(np.float64)


class IPIError(Exception):
    """The conversation with the server cannot go on; the message says why in one line."""


class MalformedMessage(IPIError):
    """Bytes that are not the i-PI protocol (a header no server sends, a negative count)."""


class ServerGone(IPIError):
    """The server closed the connection (or stopped sending) in the middle of a message."""


class WrongAtomCount(IPIError):
    """A POSDATA with another number of atoms than the client serves."""


class ServerUnreachable(IPIError):
    """Nobody accepted the connection within the retry time."""


# ------------------------------------------------------------------ addresses
@dataclass(frozen=True)
class Address:
    """Where the server listens: a UNIX socket ``path`` or a TCP ``host`` and ``port``."""

    text: str
    path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Address:
        """``unix:NAME`` (the socket ``/tmp/ipi_NAME``, i-PI's convention),
        ``unix:/absolute/path`` (a socket anywhere, for i-PI's
        ``sockets_prefix``) or ``HOST:PORT``; ValueError for anything else."""
        if text.startswith("unix:"):
            name = text[len("unix:") :]
            if not name:
                raise ValueError("the address 'unix:' names no socket; write unix:NAME (the socket /tmp/ipi_NAME)")
            return cls(text, path=name if name.startswith("/") else UNIX_SOCKET_PREFIX + name)
        host, colon, port = text.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"the address {text!r} is neither unix:NAME nor HOST:PORT (a port from 1 to 65535)")
        return cls(text, host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        return f"{self.text} ({self.path})" if self.path is not None else self.text

    def _socket(self) -> socket.socket:
        if self.path is not None:
            return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        # The protocol is a ping-pong of small messages: Nagle's delay would add 40 ms a step.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _target(self) -> str | tuple[str, int]:
        return self.path if self.path is not None else (self.host, self.port)


# A server that is still starting: no socket file yet, or nobody listening yet.
_NOT_YET = (FileNotFoundError, ConnectionRefusedError)


def connect(address: Address, retry_seconds: float, interval: float = 0.1) -> socket.socket:
    """A connected socket to ``address``, trying again every ``interval``
    seconds for ``retry_seconds`` while the server is not there yet. Raises
    :class:`ServerUnreachable` when it never answered and OSError for other
    failures (a host name that does not resolve, a socket we may not use)."""
    deadline = time.monotonic() + retry_seconds
    while True:
        sock = address._socket()
        try:
            sock.connect(address._target())
            return sock
        except _NOT_YET as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise ServerUnreachable(
                    f"no i-PI server at {address} after {retry_seconds:g} s: {exc.strerror}"
                ) from None
            time.sleep(interval)
        except BaseException:
            sock.close()
            raise


# ------------------------------------------------------------------ messages
@dataclass(frozen=True)
class Init:
    """INIT: which replica (bead) the client serves and the server's parameter string."""

    bead_index: int
    parameters: bytes

    @property
    def batch_size(self) -> int:
        """The number of structures per POSDATA the server announced
        (``batch_size:N`` in the parameters; 1 when absent)."""
        for token in self.parameters.decode("utf-8", errors="replace").split(","):
            key, colon, value = token.partition(":")
            if colon and key.strip() == "batch_size" and value.strip().isdigit():
                return int(value)
        return 1


@dataclass(frozen=True)
class PosData:
    """POSDATA: the cell (rows are the lattice vectors, Bohr) and the
    positions (nAtoms, 3), Bohr."""

    cell: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True)
class ForceReady:
    """The answer to GETFORCE: the energy (Hartree), forces (nAtoms, 3,
    Hartree/Bohr), virial (3, 3, Hartree; -dE/d(strain), symmetric for the
    potentials served here) and the extra bytes (here: a JSON object)."""

    energy: float
    forces: np.ndarray
    virial: np.ndarray
    extra: bytes = b"{}"

    def to_bytes(self) -> bytes:
        """FORCEREADY and its payload, ready for one write."""
        forces = np.ascontiguousarray(self.forces, dtype=_FLOAT64)
        return b"".join(
            (
                encode_header(FORCEREADY),
                np.array([self.energy], _FLOAT64).tobytes(),
                np.array([len(forces)], _INT32).tobytes(),
                forces.tobytes(),
                # i-PI reads the 9 numbers as its matrix; transposed like the cell for symmetry's sake.
                np.ascontiguousarray(np.asarray(self.virial, dtype=_FLOAT64).T).tobytes(),
                np.array([len(self.extra)], _INT32).tobytes(),
                self.extra,
            )
        )


def json_extra(values: Mapping[str, Any]) -> bytes:
    """The extra-bytes field as JSON (i-PI decodes JSON extras into a dictionary)."""
    return json.dumps(values, separators=(",", ":")).encode()


def encode_header(name: str) -> bytes:
    """A header: ``name`` padded with spaces to 12 bytes."""
    return name.encode("ascii").ljust(HEADER_LENGTH)


def decode_header(raw: bytes) -> str:
    """The name in a 12-byte header sent by a server; MalformedMessage when
    it is not one of :data:`SERVER_HEADERS` (the bytes are shown)."""
    name = raw.rstrip(b" \0").decode("ascii", errors="replace")
    if name not in SERVER_HEADERS:
        raise MalformedMessage(
            f"malformed header {raw!r} from the server (expected one of {', '.join(SERVER_HEADERS)})"
        )
    return name


# ------------------------------------------------------------------ the connection
@dataclass
class ClientConnection:
    """A client's side of one connection: reads what the server sends and
    writes the answers. Every failure is an :class:`IPIError` (or
    :class:`ServerGone` for a connection that broke)."""

    sock: socket.socket
    message_timeout: float = DEFAULT_MESSAGE_TIMEOUT
    _header: bytearray = field(default_factory=lambda: bytearray(HEADER_LENGTH), repr=False)

    def read_header(self) -> str | None:
        """The next header; None when the server closed the connection
        between messages. Waits as long as the server takes."""
        self.sock.settimeout(None)
        view = memoryview(self._header)
        received = self._recv_into(view, "a header")
        if received == 0:
            return None
        if received < HEADER_LENGTH:
            self.sock.settimeout(self.message_timeout)
            self._fill(view[received:], "a header")
        return decode_header(bytes(self._header))

    def read_init(self) -> Init:
        """The body of INIT: bead index, parameter length, parameters."""
        bead_index, length = self._read_array(_INT32, 2, "INIT")
        if not 0 <= length <= MAX_INIT_BYTES:
            raise MalformedMessage(f"INIT announces {length} parameter bytes (at most {MAX_INIT_BYTES} accepted)")
        return Init(int(bead_index), self._read_bytes(int(length), "INIT"))

    def read_posdata(self, atom_count: int) -> PosData:
        """The body of POSDATA for a client serving ``atom_count`` atoms:
        WrongAtomCount, before the positions are read, for any other count."""
        matrices = self._read_array(_FLOAT64, 18, "POSDATA")
        (count,) = self._read_array(_INT32, 1, "POSDATA")
        if count != atom_count:
            raise WrongAtomCount(f"the server sent {count} atoms in POSDATA; this worker's structure has {atom_count}")
        positions = self._read_array(_FLOAT64, 3 * atom_count, "POSDATA").reshape(atom_count, 3)
        # h arrives row-major with the lattice vectors as columns; its inverse
        # (matrices[9:]) is a legacy of the protocol that clients need not use.
        return PosData(matrices[:9].reshape(3, 3).T.copy(), positions)

    def send_header(self, name: str) -> None:
        self._send(encode_header(name))

    def send_forces(self, reply: ForceReady) -> None:
        self._send(reply.to_bytes())

    def close(self) -> None:
        self.sock.close()

    # ------------------------------------------------------------ bytes
    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self.message_timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise ServerGone("the server closed the connection before it took the answer") from None
        except TimeoutError:
            raise ServerGone(f"the server took no answer for {self.message_timeout:g} s") from None

    def _read_array(self, dtype: np.dtype, count: int, message: str) -> np.ndarray:
        array = np.empty(count, dtype)
        self.sock.settimeout(self.message_timeout)
        self._fill(memoryview(array).cast("B"), message)
        return array

    def _read_bytes(self, count: int, message: str) -> bytes:
        data = bytearray(count)
        self.sock.settimeout(self.message_timeout)
        self._fill(memoryview(data), message)
        return bytes(data)

    def _fill(self, view: memoryview, message: str) -> None:
        """Fill ``view`` completely; ServerGone when the stream ends or stalls first."""
        while len(view):
            received = self._recv_into(view, message)
            if received == 0:
                raise ServerGone(f"the server closed the connection in the middle of {message}")
            view = view[received:]

    def _recv_into(self, view: memoryview, message: str) -> int:
        try:
            return self.sock.recv_into(view)
        except ConnectionResetError:
            raise ServerGone(f"the server reset the connection while sending {message}") from None
        except TimeoutError:
            raise ServerGone(
                f"the server stopped sending in the middle of {message} (nothing for {self.message_timeout:g} s)"
            ) from None
