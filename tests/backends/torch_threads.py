"""The one-thread fixture of the backend test folders that train or time torch models."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: one torch thread (aenet-gpr runs get one too)
    unless a test asks otherwise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
