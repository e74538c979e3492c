"""What each backend needs from pip, and the pip commands that install or
uninstall it.

The versions come from mlpotential's own requirement lists (the optional
groups ``[torchani]``, ``[schnetpack]``, ``[sgdml]``, ``[gpr]`` and the core
``ase``); this module adds what a requirement list cannot say:

* every command runs with a constraints file that pins torch to the installed
  version (so pip never swaps a working torch for a multi-GB other build) and
  numpy to the project's range (sgdml 1.0.3 calls ``np.in1d``, gone in numpy 2.4);
* schnetpack 2.1.1 pins ``sympy<=1.12``, which torch 2.13 cannot use: its
  real run-time needs (the ``[schnetpack]`` group) are installed first, then
  schnetpack itself with ``--no-deps``;
* torch is replaced only when ``--cpu`` or ``--cuda`` asks for it, from the
  PyTorch wheel index of that build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlpotential.backends.registry import BACKENDS, BackendSpec
from mlpotential.installer.environment import TorchBuild
from mlpotential.installer.project_requirements import ProjectRequirements, requirement_name

RECOMMENDED_TORCH = "2.13.0"
"""The torch version installed when none is (the version the project is tested with)."""

PYTORCH_WHEEL_INDEX = "https://download.pytorch.org/whl"
DEFAULT_CUDA_TAG = "cu128"
"""The CUDA build ``--cuda`` asks for unless told another (see pytorch.org for the tags of a release)."""


def install_argument(spec: BackendSpec) -> str:
    """The ``mlpotential install`` argument of a backend (as in its install hint)."""
    return spec.install_argument


def find_backend(name: str) -> BackendSpec:
    """The backend called ``name``: its install argument or its Backend
    keyword value, any case. Raises ValueError listing the known names."""
    for spec in BACKENDS.values():
        if name.lower() in (spec.name.lower(), install_argument(spec)):
            return spec
    known = ", ".join(install_argument(spec) for spec in BACKENDS.values())
    raise ValueError(f"unknown backend {name!r}; known backends: {known}")


@dataclass(frozen=True)
class BackendPackages:
    """The distributions behind one backend.

    ``requirements`` are installed with their dependencies,
    ``without_dependencies`` afterwards with ``--no-deps``; ``libraries``
    are the backend's own libraries (empty for mlpotential's own code), of
    which ``removable`` are what ``--uninstall`` removes (not a core
    dependency of mlpotential).
    """

    spec: BackendSpec
    requirements: tuple[str, ...]
    without_dependencies: tuple[str, ...]
    uses_torch: bool
    libraries: tuple[str, ...]
    removable: tuple[str, ...]

    @property
    def distributions(self) -> tuple[str, ...]:
        """Canonical names of every distribution the backend needs, torch first."""
        names = [requirement_name(req) for req in (*self.requirements, *self.without_dependencies)]
        if self.uses_torch:
            names.insert(0, "torch")
        return tuple(dict.fromkeys(names))


def backend_packages(spec: BackendSpec, project: ProjectRequirements) -> BackendPackages:
    """What ``spec`` needs, with versions from mlpotential's requirement lists."""
    if spec.core_requirements:
        requirements = tuple(project.core_requirement(name) or name for name in spec.core_requirements)
    else:
        requirements = project.extras.get(spec.extra or "", ())
    return BackendPackages(
        spec=spec,
        requirements=requirements,
        without_dependencies=spec.without_dependencies,
        uses_torch=spec.needs_torch,
        libraries=spec.removable or spec.core_requirements,
        removable=spec.removable,
    )


@dataclass(frozen=True)
class PipCommand:
    """One pip run: the arguments after ``python -m pip`` and why it runs."""

    arguments: tuple[str, ...]
    purpose: str

    @property
    def installs(self) -> bool:
        return self.arguments[0] == "install"


@dataclass(frozen=True)
class Plan:
    """The pip commands for one request, in order, and notes for the user."""

    backend: str
    commands: tuple[PipCommand, ...]
    notes: tuple[str, ...] = ()


def constraint_lines(torch: TorchBuild | None, project: ProjectRequirements) -> list[str]:
    """The constraints every pip command runs with: torch pinned to the
    installed public version (any build of it satisfies the pin), numpy to the
    project's range."""
    torch_version = torch.public_version if torch else RECOMMENDED_TORCH
    lines = [f"torch=={torch_version}"]
    numpy = project.core_requirement("numpy")
    if numpy:
        lines.append(numpy)
    return lines


def install_plan(
    packages: BackendPackages,
    torch: TorchBuild | None,
    constraints: Path,
    torch_variant: str | None = None,
) -> Plan:
    """The commands that install ``packages`` into an environment whose torch
    is ``torch``. ``torch_variant`` (``"cpu"`` or a CUDA tag like ``"cu128"``)
    asks for that torch build, replacing the installed one if it differs."""
    name = packages.spec.name
    if torch_variant and not packages.uses_torch:
        raise ValueError(f"Backend {name} does not use torch; --cpu and --cuda apply to torch backends only")
    pinned = ("-c", str(constraints))
    commands: list[PipCommand] = []
    notes: list[str] = []
    if packages.uses_torch:
        torch_command, torch_note = _torch_command(torch, torch_variant, pinned)
        commands.extend(torch_command)
        notes.extend(torch_note)
    if packages.requirements:
        commands.append(PipCommand(("install", *pinned, *packages.requirements), f"what Backend {name} needs"))
    if packages.without_dependencies:
        commands.append(
            PipCommand(
                ("install", *pinned, "--no-deps", *packages.without_dependencies),
                "without its declared dependencies, whose pins conflict with torch (installed above instead)",
            )
        )
    if not commands:
        notes.append(f"Backend {name} is mlpotential's own code and needs only torch, which is installed")
    return Plan(name, tuple(commands), tuple(notes))


def _torch_command(
    torch: TorchBuild | None, variant: str | None, pinned: tuple[str, ...]
) -> tuple[list[PipCommand], list[str]]:
    if variant is None:
        if torch is not None:
            return [], [f"torch {torch.version} stays as it is (--cpu or --cuda would replace it)"]
        return [PipCommand(("install", *pinned, f"torch=={RECOMMENDED_TORCH}"), "torch, which is not installed")], []
    if torch is not None and _is_build(torch, variant):
        return [], [f"torch {torch.version} is already the {variant} build"]
    version = torch.public_version if torch else RECOMMENDED_TORCH
    build = "CPU" if variant == "cpu" else f"CUDA ({variant})"
    replacing = f", replacing torch {torch.version}" if torch else ""
    return [
        PipCommand(
            (
                "install",
                *pinned,
                f"torch=={version}+{variant}",
                "--extra-index-url",
                f"{PYTORCH_WHEEL_INDEX}/{variant}",
            ),
            f"the {build} build of torch {version}{replacing}",
        )
    ], []


def _is_build(torch: TorchBuild, variant: str) -> bool:
    """Whether ``torch`` is the build ``variant`` names; an unlabelled CUDA
    build (the package index's Linux wheels) counts as any CUDA tag."""
    return torch.variant == variant or (variant != "cpu" and torch.variant == "cuda")


def uninstall_plan(packages: BackendPackages, installed: dict[str, str]) -> Plan:
    """The command that removes the backend's own library, if installed."""
    name = packages.spec.name
    if not packages.removable:
        core = packages.spec.core_requirements
        why = (
            f"its library ({', '.join(core)}) is a core dependency of mlpotential"
            if core
            else "it is mlpotential's own code (it needs only torch, which other backends share)"
        )
        return Plan(name, (), (f"nothing to uninstall for Backend {name}: {why}",))
    present = tuple(dist for dist in packages.removable if dist in installed)
    if not present:
        return Plan(
            name, (), (f"nothing to uninstall for Backend {name}: {', '.join(packages.removable)} not installed",)
        )
    kept = [dist for dist in packages.distributions if dist not in present]
    notes = (f"its dependencies stay installed (other packages may use them): {', '.join(kept)}",) if kept else ()
    return Plan(name, (PipCommand(("uninstall", "-y", *present), f"Backend {name}'s library"),), notes)
