"""Install plans: versions from the project's own requirement lists, the
constraints that keep torch and numpy in place, the schnetpack strategy,
torch builds, uninstalling."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from mlpotential.backends.registry import BACKENDS, install_hint
from mlpotential.installer.environment import TorchBuild, installed_distributions, torch_build
from mlpotential.installer.plans import (
    PYTORCH_WHEEL_INDEX,
    RECOMMENDED_TORCH,
    backend_packages,
    constraint_lines,
    find_backend,
    install_plan,
    uninstall_plan,
)
from mlpotential.installer.project_requirements import _from_metadata, project_requirements, requirement_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CONSTRAINTS = Path("/constraints.txt")
CPU_TORCH = TorchBuild("2.13.0+cpu", "cpu")


def packages(name: str):
    return backend_packages(find_backend(name), project_requirements())


def test_every_backend_record_names_a_pip_extra_of_the_project_and_all_includes_it() -> None:
    extras = PYPROJECT["optional-dependencies"]
    for spec in BACKENDS.values():
        if spec.core_requirements:
            assert spec.extra is None
            assert all(
                any(req.startswith(name) for req in PYPROJECT["dependencies"]) for name in spec.core_requirements
            )
            continue
        assert spec.extra in extras, f"{spec.name}: pyproject.toml has no extra {spec.extra!r}"
        (everything,) = extras["all"]
        assert spec.extra in everything.removeprefix("mlpotential[").removesuffix("]").split(","), spec.name


def test_every_registered_backend_has_a_plan_and_its_install_hint_names_it() -> None:
    for spec in BACKENDS.values():
        argument = install_hint(spec).split()[-1]
        assert find_backend(argument) is spec
        assert find_backend(spec.name.upper()) is spec
        plan = install_plan(packages(argument), CPU_TORCH, CONSTRAINTS)
        for command in plan.commands:
            assert command.arguments[:3] == ("install", "-c", str(CONSTRAINTS))


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backend 'nequip'; known backends: torchani, schnetpack, sgdml"):
        find_backend("nequip")


def test_versions_come_from_the_project_requirement_lists() -> None:
    extras = PYPROJECT["optional-dependencies"]
    assert packages("torchani").requirements == tuple(extras["torchani"])
    assert packages("sgdml").requirements == tuple(extras["sgdml"])
    assert packages("gpr").requirements == tuple(extras["gpr"])
    (ase,) = packages("ase").requirements
    assert ase in PYPROJECT["dependencies"] and requirement_name(ase) == "ase"
    assert packages("hdnnp").requirements == () and packages("hdnnp").uses_torch


def test_schnetpack_gets_its_real_needs_then_itself_without_dependencies() -> None:
    plan = install_plan(packages("schnetpack"), CPU_TORCH, CONSTRAINTS)
    needs, itself = plan.commands
    assert needs.arguments == ("install", "-c", str(CONSTRAINTS), *PYPROJECT["optional-dependencies"]["schnetpack"])
    assert "schnetpack" not in {requirement_name(req) for req in needs.arguments[3:]}
    assert itself.arguments == ("install", "-c", str(CONSTRAINTS), "--no-deps", "schnetpack==2.1.1")


def test_constraints_pin_the_installed_torch_and_the_numpy_range() -> None:
    project = project_requirements()
    installed = importlib.metadata.version("torch")
    assert constraint_lines(torch_build(), project) == [f"torch=={installed.split('+')[0]}", "numpy>=2,<2.4"]
    assert constraint_lines(None, project)[0] == f"torch=={RECOMMENDED_TORCH}"


def test_torch_stays_unless_another_build_is_asked_for() -> None:
    torchani = packages("torchani")
    plan = install_plan(torchani, CPU_TORCH, CONSTRAINTS)
    assert [command.arguments[-1] for command in plan.commands] == ["torchani==2.9.0"]
    assert any("torch 2.13.0+cpu stays" in note for note in plan.notes)

    assert len(install_plan(torchani, CPU_TORCH, CONSTRAINTS, "cpu").commands) == 1
    cuda = install_plan(torchani, CPU_TORCH, CONSTRAINTS, "cu128").commands[0]
    assert cuda.arguments[3:] == ("torch==2.13.0+cu128", "--extra-index-url", f"{PYTORCH_WHEEL_INDEX}/cu128")
    assert "replacing torch 2.13.0+cpu" in cuda.purpose

    index_cuda = TorchBuild("2.13.0", "cuda")
    assert len(install_plan(torchani, index_cuda, CONSTRAINTS, "cu128").commands) == 1
    to_cpu = install_plan(torchani, index_cuda, CONSTRAINTS, "cpu").commands[0]
    assert to_cpu.arguments[3] == "torch==2.13.0+cpu"

    fresh = install_plan(torchani, None, CONSTRAINTS).commands
    assert fresh[0].arguments[3:] == (f"torch=={RECOMMENDED_TORCH}",)


def test_torch_builds_are_only_for_torch_backends() -> None:
    with pytest.raises(ValueError, match="Backend ASE does not use torch"):
        install_plan(packages("ase"), CPU_TORCH, CONSTRAINTS, "cpu")


def test_torch_build_agrees_with_torch_itself() -> None:
    import torch

    build = torch_build()
    assert build is not None and build.version == torch.__version__
    assert build.is_cpu == (torch.version.cuda is None)


def test_uninstall_removes_only_the_backend_library() -> None:
    installed = {"sgdml": "1.0.3", "scipy": "1.16.0", "torch": "2.13.0+cpu"}
    (command,) = uninstall_plan(packages("sgdml"), installed).commands
    assert command.arguments == ("uninstall", "-y", "sgdml")
    assert uninstall_plan(packages("sgdml"), {"scipy": "1.16.0"}).commands == ()
    for own_code in ("hdnnp", "pinn"):
        plan = uninstall_plan(packages(own_code), installed_distributions())
        assert plan.commands == () and "mlpotential's own code" in plan.notes[0]
    ase = uninstall_plan(packages("ase"), installed_distributions())
    assert ase.commands == () and "core dependency" in ase.notes[0]


def test_requirements_read_from_installed_metadata() -> None:
    """The path an installed (not source) mlpotential takes, on the real
    metadata of an installed distribution with an extra (sgdml's)."""
    requirements = _from_metadata(importlib.metadata.requires("sgdml"))
    assert {requirement_name(req) for req in requirements.core} >= {"torch", "numpy", "scipy"}
    assert [requirement_name(req) for req in requirements.extras["ase"]] == ["ase"]
