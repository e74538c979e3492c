"""Decoding calls: each argument checked, each error with its status."""

from __future__ import annotations

import numpy as np
import pytest

from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import DecodeError, ProtocolError, Status


def _system(**changes):
    message = msg.encode_call(msg.SetSystem(["O", "H", "H"], np.arange(9.0).reshape(3, 3)))
    message["SetSystem"].update(changes)
    return message


def test_coords_layout_is_fortran_dims_of_c_order_rows():
    call = msg.decode_call(_system())
    np.testing.assert_array_equal(call.coords[1], [3.0, 4.0, 5.0])
    assert msg.encode_call(msg.SetSystem(["O", "H", "H"], call.coords))["SetSystem"]["coords_dim_"] == [3, 3]


@pytest.mark.parametrize(
    ("changes", "status", "argument"),
    [
        ({"coords": "text"}, Status.INVALID_ARGUMENT, "coords"),
        ({"coords": [1.0, 2.0]}, Status.INVALID_ARGUMENT, "coords"),
        ({"coords_dim_": [3, 4]}, Status.INVALID_ARGUMENT, "coords"),
        ({"coords": np.full(9, np.nan)}, Status.INVALID_ARGUMENT, "coords"),
        ({"atomSymbols": []}, Status.LOGIC_ERROR, "atomSymbols"),
        ({"atomSymbols": [1, 2, 3]}, Status.INVALID_ARGUMENT, "atomSymbols"),
        ({"totalCharge": "0"}, Status.INVALID_ARGUMENT, "totalCharge"),
        ({"latticeVectors": np.zeros(12), "latticeVectors_dim_": [3, 4]}, Status.INVALID_ARGUMENT, "latticeVectors"),
        ({"bonds": [1, 9], "bonds_dim_": [2, 1]}, Status.INVALID_ARGUMENT, "bonds"),
        ({"spin": 2}, Status.UNKNOWN_ARGUMENT, "spin"),
    ],
)
def test_set_system_errors(changes, status, argument):
    with pytest.raises(ProtocolError) as info:
        msg.decode_call(_system(**changes))
    assert info.value.status == status
    assert info.value.argument == argument
    assert info.value.method == "SetSystem"


def test_solve_request_flags():
    call = msg.decode_call({"Solve": {"request": {"title": "t", "gradients": True, "future": False}}})
    assert call.request.gradients and not call.keep_results
    with pytest.raises(ProtocolError) as info:
        msg.decode_call({"Solve": {"request": {"title": "t", "future": True}}})
    assert info.value.status == Status.UNKNOWN_ARGUMENT and info.value.argument == "future"


def test_message_shape_and_unknown_method():
    with pytest.raises(DecodeError):
        msg.decode_call({"Hello": {}, "Exit": {}})
    with pytest.raises(ProtocolError) as info:
        msg.decode_call({"Frobnicate": {}})
    assert info.value.status == Status.UNKNOWN_METHOD


def test_results_reply_round_trip():
    gradients = np.arange(6.0).reshape(2, 3)
    encoded = msg.encode_results(msg.Results(-1.5, {"gradients": gradients, "energyStdDev": 0.1}))
    assert encoded["results"]["gradients_dim_"] == [3, 2]
    decoded = msg.decode_reply(encoded)
    np.testing.assert_array_equal(decoded.values["gradients"], gradients)
    assert decoded.energy == -1.5 and decoded.values["energyStdDev"] == 0.1


def test_set_system_sends_a_dim_with_every_array_as_scm_s_worker_requires() -> None:
    system = msg.SetSystem(
        ["O", "H", "H"],
        np.zeros((3, 3)),
        bonds=np.array([[1, 2], [1, 3]]),
        bond_orders=np.array([1.0, 1.0]),
        atomic_info=["a", "b", "c"],
    )
    arguments = msg.encode_call(system)["SetSystem"]
    assert arguments["atomSymbols_dim_"] == [3]
    assert arguments["bondOrders_dim_"] == [2]
    assert arguments["atomicInfo_dim_"] == [3]
    assert arguments["latticeVectors_dim_"] == [3, 0]
    decoded = msg.decode_call(msg.encode_call(system))
    assert decoded.atomic_info == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"atomSymbols_dim_": [4]}, "atomSymbols"),
        ({"atomicInfo": ["a", "b", "c"], "atomicInfo_dim_": [2]}, "atomicInfo"),
    ],
)
def test_inconsistent_string_array_dims_are_invalid(changes, argument) -> None:
    with pytest.raises(ProtocolError) as error:
        msg.decode_call(_system(**changes))
    assert error.value.status == Status.INVALID_ARGUMENT and error.value.argument == argument


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"bonds": [1, 2**64 - 1], "bonds_dim_": [2, 1]}, "bonds"),
        ({"coords_dim_": [3, 2**64 - 1]}, "coords_dim_"),
        ({"totalCharge": 10**4000}, "totalCharge"),
    ],
    ids=["bonds-2^64", "uint64-dim", "4000-digit-charge"],
)
def test_integers_beyond_64_bits_are_invalid_arguments(changes, argument) -> None:
    with pytest.raises(ProtocolError) as error:
        msg.decode_call(_system(**changes))
    assert error.value.status == Status.INVALID_ARGUMENT
    assert error.value.argument == argument


def test_names_that_are_not_strings_are_refused() -> None:
    with pytest.raises(DecodeError, match="message name must be a string"):
        msg.decode_call({b"Hello": {"version": 1}})
    with pytest.raises(ProtocolError, match="argument names of Hello must be strings") as error:
        msg.decode_call({"Hello": {b"version": 1}})
    assert error.value.status == Status.INVALID_ARGUMENT
