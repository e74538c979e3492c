"""The message schema: calls (host -> worker) and replies (worker -> host),
as dataclasses, with the one function on each side that turns a decoded
payload into them and back.

Everything here is in atomic units (Bohr, Hartree) and plain numpy; the
chemistry (element symbols, ASE objects, eV and Angstrom) lives in the engine.
Array layout: ``X`` is sent flat with ``X_dim_`` its Fortran-order shape, so
a C-order (nAtoms, 3) array has dim [3, nAtoms].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from mlpotential.protocol.errors import DecodeError, ProtocolError, Status

PROTOCOL_VERSION = 1


# ---------------------------------------------------------------- calls
@dataclass
class Hello:
    version: int = PROTOCOL_VERSION


@dataclass
class SetSystem:
    """A new system. ``coords`` (nAtoms, 3) Bohr; ``lattice`` (nVectors, 3)
    Bohr with 0-3 vectors; ``bonds`` (nBonds, 2) 1-based atom indices."""

    atom_symbols: list[str]
    coords: np.ndarray
    lattice: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    total_charge: float = 0.0
    bonds: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    bond_orders: np.ndarray = field(default_factory=lambda: np.zeros(0))
    atomic_info: list[str] = field(default_factory=list)


@dataclass
class SetCoords:
    coords: np.ndarray  # (nAtoms, 3) Bohr


@dataclass
class SetLattice:
    vectors: np.ndarray  # (nVectors, 3) Bohr


@dataclass
class SolveRequest:
    """What a Solve asks for (the ``request`` object)."""

    title: str
    quiet: bool = False
    gradients: bool = False
    stressTensor: bool = False
    elasticTensor: bool = False
    hessian: bool = False
    dipoleMoment: bool = False
    dipoleGradients: bool = False
    other: bool = False


REQUEST_FLAGS = tuple(f.name for f in fields(SolveRequest) if f.name != "title")


@dataclass
class Solve:
    request: SolveRequest
    keep_results: bool = False
    prev_title: str | None = None


@dataclass
class DeleteResults:
    title: str


@dataclass
class Exit:
    pass


Call = Hello | SetSystem | SetCoords | SetLattice | Solve | DeleteResults | Exit


# -------------------------------------------------------------- replies
@dataclass
class Results:
    """A ``results`` reply: ``energy`` (Hartree) and named arrays/values,
    e.g. ``gradients`` (nAtoms, 3) Hartree/Bohr, ``stressTensor`` (3, 3)."""

    energy: float
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Return:
    """A ``return`` reply: the outcome of a call."""

    status: Status = Status.SUCCESS
    method: str = ""
    argument: str = ""
    message: str = ""

    def as_error(self) -> ProtocolError:
        return ProtocolError(self.status, self.message, self.method, self.argument)


# ------------------------------------------------------------- encoding
def _with_dims(name: str, array: np.ndarray, out: dict[str, Any]) -> None:
    out[name] = np.ascontiguousarray(array, dtype=np.float64).ravel()
    out[name + "_dim_"] = [int(n) for n in reversed(array.shape)]


def encode_call(call: Call) -> dict[str, Any]:
    """The message object of a call, ready for a codec. Arrays go in typed
    form with their ``_dim_``; SetSystem always carries latticeVectors
    (empty, dim [3, 0], for a molecule), as SCM's reference worker needs."""
    if isinstance(call, Hello):
        return {"Hello": {"version": call.version}}
    if isinstance(call, SetSystem):
        # Every array travels with its _dim_, string arrays included: SCM's
        # reference worker refuses a SetSystem without atomSymbols_dim_.
        arguments: dict[str, Any] = {
            "atomSymbols": list(call.atom_symbols),
            "atomSymbols_dim_": [len(call.atom_symbols)],
        }
        _with_dims("coords", call.coords, arguments)
        _with_dims("latticeVectors", np.asarray(call.lattice, dtype=np.float64).reshape(-1, 3), arguments)
        if call.total_charge:
            arguments["totalCharge"] = float(call.total_charge)
        if len(call.bonds):
            arguments["bonds"] = np.asarray(call.bonds, dtype=np.int64).ravel()
            arguments["bonds_dim_"] = [2, len(call.bonds)]
            arguments["bondOrders"] = np.asarray(call.bond_orders, dtype=np.float64)
            arguments["bondOrders_dim_"] = [len(call.bonds)]
        if call.atomic_info:
            arguments["atomicInfo"] = list(call.atomic_info)
            arguments["atomicInfo_dim_"] = [len(call.atomic_info)]
        return {"SetSystem": arguments}
    if isinstance(call, SetCoords):
        arguments = {}
        _with_dims("coords", call.coords, arguments)
        return {"SetCoords": arguments}
    if isinstance(call, SetLattice):
        arguments = {}
        _with_dims("vectors", np.asarray(call.vectors, dtype=np.float64).reshape(-1, 3), arguments)
        return {"SetLattice": arguments}
    if isinstance(call, Solve):
        # Fields left out are false: only the ones asked for travel.
        request: dict[str, Any] = {"title": call.request.title}
        request.update({flag: True for flag in REQUEST_FLAGS if getattr(call.request, flag)})
        arguments = {"request": request, "keepResults": call.keep_results}
        if call.prev_title is not None:
            arguments["prevTitle"] = call.prev_title
        return {"Solve": arguments}
    if isinstance(call, DeleteResults):
        return {"DeleteResults": {"title": call.title}}
    if isinstance(call, Exit):
        return {"Exit": {}}
    raise TypeError(f"not a call: {call!r}")


def encode_results(results: Results) -> dict[str, Any]:
    """The ``results`` message: arrays flat (C order) with Fortran-order dims."""
    out: dict[str, Any] = {"energy": float(results.energy)}
    for name, value in results.values.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            _with_dims(name, value, out)
        else:
            out[name] = value
    return {"results": out}


def encode_return(reply: Return) -> dict[str, Any]:
    arguments: dict[str, Any] = {"status": int(reply.status)}
    for name in ("method", "argument", "message"):
        if getattr(reply, name):
            arguments[name] = getattr(reply, name)
    return {"return": arguments}


# ------------------------------------------------------------- decoding
def _split_message(message: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(message, dict) or len(message) != 1:
        raise DecodeError("a message must be an object with exactly one key, the message name")
    ((name, arguments),) = message.items()
    if not isinstance(name, str):
        raise DecodeError(f"a message name must be a string, not {type(name).__name__}")
    if not isinstance(arguments, dict):
        raise ProtocolError(Status.INVALID_ARGUMENT, f"the arguments of {name} must be an object", name)
    return name, arguments


class _Arguments:
    """Typed access to one call's arguments; every error names the argument."""

    def __init__(self, method: str, arguments: dict[str, Any]) -> None:
        self.method = method
        self.arguments = arguments
        for name in arguments:
            if not isinstance(name, str):
                raise ProtocolError(
                    Status.INVALID_ARGUMENT,
                    f"argument names of {method} must be strings, not {type(name).__name__} {name!r:.40}",
                    method,
                )

    def invalid(self, argument: str, message: str) -> ProtocolError:
        return ProtocolError(Status.INVALID_ARGUMENT, message, self.method, argument)

    def check_known(self, known: tuple[str, ...]) -> None:
        for name in self.arguments:
            if name not in known:
                raise ProtocolError(
                    Status.UNKNOWN_ARGUMENT,
                    f"unknown argument {name!r} in {self.method}; known: {', '.join(known)}",
                    self.method,
                    name,
                )

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.arguments.get(name, default)
        if not isinstance(value, (bool, np.bool_)):
            raise self.invalid(name, f"{name} must be a bool, not {type(value).__name__}")
        return bool(value)

    def integer(self, name: str) -> int:
        if name not in self.arguments:
            raise self.invalid(name, f"{self.method} needs the argument {name}")
        value = self.arguments[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self.invalid(name, f"{name} must be an integer, not {type(value).__name__}")
        return int(value)

    def real(self, name: str, default: float) -> float:
        value = self.arguments.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise self.invalid(name, f"{name} must be a real number, not {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:
            raise self.invalid(name, f"{name} is too large for a real number ({len(str(value))} digits)") from None
        if not math.isfinite(number):
            raise self.invalid(name, f"{name} must be finite, not {number}")
        return number

    def string(self, name: str) -> str | None:
        if name not in self.arguments:
            return None
        value = self.arguments[name]
        if not isinstance(value, str):
            raise self.invalid(name, f"{name} must be a string, not {type(value).__name__}")
        return value

    def strings(self, name: str) -> list[str] | None:
        if name not in self.arguments:
            return None
        value = self.arguments[name]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.invalid(name, f"{name} must be an array of strings")
        return value

    def check_count(self, name: str, count: int) -> None:
        """A one-dimensional array's ``_dim_``, when sent, must be [count]."""
        dims = self.array(name + "_dim_", int)
        if dims is not None and dims.tolist() != [count]:
            raise self.invalid(name, f"{name}_dim_ {dims.tolist()} does not describe the {count} entries of {name}")

    def array(self, name: str, dtype: type, columns: int | None = None) -> np.ndarray | None:
        """A numeric array reshaped by its ``_dim_`` (Fortran order) when
        ``columns`` is given: (n, columns) with dim [columns, n]."""
        if name not in self.arguments:
            return None
        raw = self.arguments[name]
        wanted = np.float64 if dtype is float else np.int64
        if isinstance(raw, np.ndarray):
            if raw.dtype.kind not in "iuf" or (dtype is not float and raw.dtype.kind == "f"):
                raise self.invalid(name, f"{name} must be an array of {dtype.__name__}s")
            values = raw if raw.dtype == wanted else raw.astype(wanted)
        elif isinstance(raw, list) and (item_types := set(map(type, raw))) <= _NUMBER_TYPES:
            if dtype is int and float in item_types:
                raise self.invalid(name, f"{name} must be an array of integers")
            try:
                values = np.asarray(raw, dtype=wanted)
            except OverflowError:
                raise self.invalid(name, f"{name} holds a value outside the range of a 64-bit number") from None
        else:
            raise self.invalid(name, f"{name} must be an array of {'real numbers' if dtype is float else 'integers'}")
        if dtype is float and not np.isfinite(values).all():
            raise self.invalid(name, f"{name} contains NaN or infinite values")
        if columns is None:
            return values
        dims = self.array(name + "_dim_", int)
        if dims is None:
            if values.size % columns:
                raise self.invalid(name, f"{name} has {values.size} values, not a multiple of {columns}")
            return values.reshape(-1, columns)
        dims = dims.tolist()
        if len(dims) != 2 or dims[0] != columns or dims[1] < 0 or dims[0] * dims[1] != values.size:
            raise self.invalid(
                name,
                f"{name}_dim_ {dims} does not describe the {values.size} values of {name} "
                f"(expected [{columns}, n] with {columns}*n = {values.size})",
            )
        return values.reshape(dims[1], columns)


_NUMBER_TYPES = frozenset((int, float))
"""The item types of a plain (msgpack or untyped UBJSON) numeric array. Checked
by exact type, in one pass in C: bool (an int subclass) is not a number here,
and a per-item isinstance loop cost 0.4 ms for 1000 atoms' coordinates."""


_SET_SYSTEM_ARGUMENTS = (
    "atomSymbols",
    "atomSymbols_dim_",
    "coords",
    "coords_dim_",
    "latticeVectors",
    "latticeVectors_dim_",
    "totalCharge",
    "bonds",
    "bonds_dim_",
    "bondOrders",
    "bondOrders_dim_",
    "atomicInfo",
    "atomicInfo_dim_",
)


def _set_system(args: _Arguments) -> SetSystem:
    args.check_known(_SET_SYSTEM_ARGUMENTS)
    symbols = args.strings("atomSymbols")
    if not symbols:
        raise ProtocolError(
            Status.LOGIC_ERROR, "SetSystem has no atoms (atomSymbols is missing or empty)", "SetSystem", "atomSymbols"
        )
    coords = args.array("coords", float, columns=3)
    if coords is None or len(coords) != len(symbols):
        raise args.invalid("coords", f"coords must hold 3 values for each of the {len(symbols)} atoms")
    lattice = args.array("latticeVectors", float, columns=3)
    if lattice is None:
        lattice = np.zeros((0, 3))
    if len(lattice) > 3:
        raise args.invalid("latticeVectors", f"at most 3 lattice vectors, not {len(lattice)}")
    bonds = args.array("bonds", int, columns=2)
    bonds = np.zeros((0, 2), dtype=np.int64) if bonds is None else bonds
    if bonds.size and (bonds.min() < 1 or bonds.max() > len(symbols)):
        raise args.invalid("bonds", f"bond atom indices must lie in 1..{len(symbols)}")
    bond_orders = args.array("bondOrders", float)
    bond_orders = np.zeros(len(bonds)) if bond_orders is None else bond_orders
    if len(bond_orders) != len(bonds):
        raise args.invalid("bondOrders", f"{len(bond_orders)} bond orders for {len(bonds)} bonds")
    atomic_info = args.strings("atomicInfo") or []
    if atomic_info and len(atomic_info) != len(symbols):
        raise args.invalid("atomicInfo", f"atomicInfo has {len(atomic_info)} entries for {len(symbols)} atoms")
    for name, count in (
        ("atomSymbols", len(symbols)),
        ("bondOrders", len(bond_orders)),
        ("atomicInfo", len(atomic_info)),
    ):
        args.check_count(name, count)
    return SetSystem(symbols, coords, lattice, args.real("totalCharge", 0.0), bonds, bond_orders, atomic_info)


def _solve(args: _Arguments) -> Solve:
    args.check_known(("request", "keepResults", "prevTitle"))
    raw_request = args.arguments.get("request")
    if not isinstance(raw_request, dict):
        raise args.invalid("request", "Solve needs a request object")
    request_args = _Arguments("Solve", raw_request)
    title = request_args.string("title")
    if not title:
        raise args.invalid("title", "the request title must be a non-empty string")
    flags = {}
    for name in raw_request:
        if name == "title":
            continue
        if name in REQUEST_FLAGS:
            flags[name] = request_args.boolean(name)
        elif raw_request[name] is not False:
            raise ProtocolError(
                Status.UNKNOWN_ARGUMENT,
                f"unknown request field {name!r}; known: {', '.join(REQUEST_FLAGS)}",
                "Solve",
                name,
            )
    return Solve(SolveRequest(title=title, **flags), args.boolean("keepResults"), args.string("prevTitle"))


def decode_call(message: Any) -> Call:
    """A decoded payload as a call. Raises ProtocolError with the status the
    protocol prescribes (1 not a message, 5 unknown method, 6 unknown
    argument, 7 invalid argument, 2 logic error)."""
    name, arguments = _split_message(message)
    args = _Arguments(name, arguments)
    if name == "Hello":
        args.check_known(("version",))
        return Hello(args.integer("version"))
    if name == "SetSystem":
        return _set_system(args)
    if name == "SetCoords":
        args.check_known(("coords", "coords_dim_"))
        coords = args.array("coords", float, columns=3)
        if coords is None:
            raise args.invalid("coords", "SetCoords needs coords")
        return SetCoords(coords)
    if name == "SetLattice":
        args.check_known(("vectors", "vectors_dim_"))
        vectors = args.array("vectors", float, columns=3)
        if vectors is None or len(vectors) > 3:
            raise args.invalid("vectors", "SetLattice needs vectors: 0 to 3 lattice vectors")
        return SetLattice(vectors)
    if name == "Solve":
        return _solve(args)
    if name == "DeleteResults":
        args.check_known(("title",))
        title = args.string("title")
        if not title:
            raise args.invalid("title", "DeleteResults needs a non-empty title")
        return DeleteResults(title)
    if name == "Exit":
        return Exit()
    raise ProtocolError(Status.UNKNOWN_METHOD, f"unknown method {name!r}", name)


def decode_reply(message: Any) -> Results | Return:
    """A decoded worker reply as :class:`Results` or :class:`Return`.
    Arrays with ``_dim_`` are reshaped to C order, e.g. gradients (nAtoms, 3)."""
    name, arguments = _split_message(message)
    if name == "return":
        try:
            status = Status(int(arguments.get("status", -1)))
        except ValueError:
            raise DecodeError(f"return carries an unknown status {arguments.get('status')!r}") from None
        return Return(
            status,
            str(arguments.get("method", "")),
            str(arguments.get("argument", "")),
            str(arguments.get("message", "")),
        )
    if name == "results":
        if "energy" not in arguments:
            raise DecodeError("results without energy")
        values: dict[str, Any] = {}
        for key, value in arguments.items():
            if key == "energy" or key.endswith("_dim_"):
                continue
            dims = arguments.get(key + "_dim_")
            if dims is not None:
                value = np.asarray(value, dtype=np.float64).reshape(tuple(int(n) for n in reversed(list(dims))))
            values[key] = value
        return Results(float(arguments["energy"]), values)
    raise DecodeError(f"unknown reply {name!r}: expected results or return")
