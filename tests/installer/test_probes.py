"""The checks behind ``--list``: each backend's real import and tiny
evaluation, in this process (the listing runs them in fresh interpreters)."""

from __future__ import annotations

import pytest

from mlpotential.backends.registry import BACKENDS
from mlpotential.installer.listing import run_probe
from mlpotential.installer.plans import install_argument
from mlpotential.installer.probes import CHECKS, run_check


def test_every_registered_backend_has_a_check() -> None:
    assert set(CHECKS) == {install_argument(spec) for spec in BACKENDS.values()}


@pytest.mark.parametrize(
    ("name", "evidence"),
    [
        ("ase", "EMT energy of H2O"),
        ("torchani", "AEVs of H2O (ANI-1x settings): 384 per atom"),
        ("hdnnp", "forces equal the energy slope"),
        ("gpr", "training data reproduced"),
        ("pinn", "random-weight PiNet on H2O: forces equal the energy slope"),
    ],
)
def test_the_check_of_each_installed_backend_passes(name: str, evidence: str) -> None:
    answer = run_check(name)
    assert answer["ok"], answer
    assert evidence in answer["detail"]


def test_the_sgdml_check_passes_in_its_own_interpreter() -> None:
    """sgdml replaces the logging class of every logger created after its
    import (each gets a handler on the stderr of that moment), which is why
    the listing runs every check in a fresh interpreter; so does this test."""
    answer = run_probe("sgdml")
    assert answer["ok"], answer
    assert "training forces reproduced to" in answer["detail"]


@pytest.mark.slow
def test_the_schnetpack_check_passes() -> None:
    """Slow only because importing schnetpack (lightning, hydra) takes ~30 s here."""
    answer = run_check("schnetpack")
    assert answer["ok"], answer


def test_torch_facts_are_torch_s_own() -> None:
    import torch

    answer = run_check("torch")
    assert answer["ok"] and answer["version"] == torch.__version__
    assert answer["cuda_build"] == torch.version.cuda
    assert answer["cuda_available"] == torch.cuda.is_available()


def test_a_failing_check_becomes_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise ImportError("No module named 'sgdml'")

    monkeypatch.setitem(CHECKS, "sgdml", broken)
    assert run_check("sgdml") == {"ok": False, "detail": "ImportError: No module named 'sgdml'"}
