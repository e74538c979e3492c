"""mlpotential's own requirement lists (core dependencies and the optional
groups such as ``[schnetpack]``), the one source of the versions the wizard
installs.

In a source checkout (also an editable install) they are read from the
``pyproject.toml`` beside the package, which is the file being edited; in an
installed copy from the distribution's metadata.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import mlpotential

DISTRIBUTION = "mlpotential"

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class ProjectRequirements:
    """Requirement strings (PEP 508, markers dropped) of mlpotential:
    ``core`` always installed, ``extras`` per optional group; ``source``
    names the file or distribution they were read from."""

    core: tuple[str, ...]
    extras: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""

    def core_requirement(self, distribution: str) -> str | None:
        """The core requirement for ``distribution`` (e.g. ``"numpy>=2,<2.4"``), if any."""
        wanted = normalize_name(distribution)
        return next((req for req in self.core if requirement_name(req) == wanted), None)


def normalize_name(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``Hydra_Core`` -> ``hydra-core``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (``"torch>=2.4"`` -> ``"torch"``)."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"{requirement!r} is not a requirement string")
    return normalize_name(match.group(1))


def project_requirements() -> ProjectRequirements:
    """mlpotential's requirements, from the checkout's pyproject.toml when
    the package runs from one, else from the installed metadata. Raises
    RuntimeError when neither can be found."""
    pyproject = Path(mlpotential.__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == DISTRIBUTION:
            return _from_pyproject(project, str(pyproject))
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"cannot find mlpotential's requirements: no {pyproject} and no installed "
            f"'{DISTRIBUTION}' distribution metadata; install mlpotential with pip first"
        ) from None
    return _from_metadata(requires)


def _from_pyproject(project: dict, source: str) -> ProjectRequirements:
    extras = {
        name: tuple(req for req in requirements if requirement_name(req) != DISTRIBUTION)
        for name, requirements in project.get("optional-dependencies", {}).items()
    }
    return ProjectRequirements(tuple(project.get("dependencies", ())), extras, source)


def _from_metadata(requires: list[str]) -> ProjectRequirements:
    core: list[str] = []
    extras: dict[str, list[str]] = {}
    for line in requires:
        requirement, _, marker = line.partition(";")
        requirement = requirement.strip()
        if requirement_name(requirement) == DISTRIBUTION:
            continue  # an aggregate group such as [all]
        extra = _EXTRA_MARKER.search(marker)
        if extra is None:
            core.append(requirement)
        else:
            extras.setdefault(extra.group(1), []).append(requirement)
    return ProjectRequirements(
        tuple(core), {name: tuple(reqs) for name, reqs in extras.items()}, f"{DISTRIBUTION} metadata"
    )
