"""What the current Python environment holds, read from distribution
metadata (no imports of the libraries themselves)."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from mlpotential.installer.project_requirements import normalize_name


def installed_distributions() -> dict[str, str]:
    """Every installed distribution: canonical name -> version."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(normalize_name(name), distribution.version)
    return found


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class TorchBuild:
    """The installed torch as its metadata describes it.

    ``version`` is the full version (``2.13.0+cpu``), ``public_version``
    without the local label (``2.13.0``); ``variant`` is ``"cpu"`` or a CUDA/ROCm
    tag such as ``"cu128"``, or ``"cuda"`` for an unlabelled build that
    depends on NVIDIA's runtime packages (the Linux wheels of the package index).
    """

    version: str
    variant: str

    @property
    def public_version(self) -> str:
        return self.version.split("+", 1)[0]

    @property
    def is_cpu(self) -> bool:
        return self.variant == "cpu"


def torch_build() -> TorchBuild | None:
    """The installed torch build, or None when torch is not installed."""
    version = installed_version("torch")
    if version is None:
        return None
    if "+" in version:
        return TorchBuild(version, version.split("+", 1)[1])
    requires = importlib.metadata.requires("torch") or []
    uses_cuda = any(normalize_name(req).startswith("nvidia-") for req in requires)
    return TorchBuild(version, "cuda" if uses_cuda else "cpu")
