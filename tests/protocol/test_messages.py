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
