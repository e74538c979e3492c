"""A throwaway virtual environment for the wizard tests: created with
``python -m venv`` (no system site packages), torch installed first from the
local CPU wheel, then mlpotential's other core dependencies (numpy, ase,
msgpack...; none of a backend's optional libraries). The wizard runs there
with that venv's interpreter and this checkout on PYTHONPATH, so every pip
it starts is that interpreter's."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"
TORCH = "torch==2.13.0"


def core_dependencies_but_torch() -> list[str]:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [requirement for requirement in dependencies if not requirement.startswith("torch")]


@dataclass
class Venv:
    root: Path
    data_dir: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def environment(self, **extra: str) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TORCHANI_DATA_DIR")
        }
        environment.update(
            PYTHONPATH=str(REPO),
            MLPOTENTIAL_DATA_DIR=str(self.data_dir),
            OMP_NUM_THREADS="1",
            TORCHANI_NO_WARN_EXTENSIONS="1",
            **extra,
        )
        return environment

    def run(self, *arguments: str, stdin=subprocess.DEVNULL, timeout: float = 600, **extra_env: str):
        """Run this venv's python with ``arguments``; output captured as text."""
        return subprocess.run(
            [str(self.python), *arguments],
            capture_output=True,
            text=True,
            stdin=stdin,
            timeout=timeout,
            env=self.environment(**extra_env),
            cwd=self.root,
            check=False,
        )

    def wizard(self, *arguments: str, **kwargs):
        return self.run("-m", "mlpotential", "install", *arguments, **kwargs)

    def pip(self, *arguments: str, **kwargs):
        return self.run("-m", "pip", *arguments, **kwargs)

    def freeze(self) -> list[str]:
        result = self.pip("freeze", "--all")
        assert result.returncode == 0, result.stderr
        return sorted(result.stdout.splitlines())

    def versions(self, *distributions: str) -> dict[str, str | None]:
        """importlib.metadata's answer inside the venv."""
        script = (
            "import importlib.metadata as m, json, sys\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
        )
        import json

        result = self.run("-c", script, *distributions)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def create_venv(root: Path, data_dir: Path) -> Venv:
    """The venv at ``root`` with torch and mlpotential's core dependencies (about 1.5 minutes)."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    venv = Venv(root, data_dir)
    pip = ("-m", "pip", "install", "--no-compile", "--quiet", "-c", str(CONSTRAINTS))
    for requirements in ((TORCH,), core_dependencies_but_torch()):
        result = venv.run(*pip, *requirements)
        assert result.returncode == 0, f"could not set up the test venv: {result.stderr[-2000:]}"
    return venv


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (one module) that pip installs offline."""
    tag = f"{name}-{version}"
    files = {
        f"{name}.py": b"VALUE = 1\n",
        f"{tag}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{tag}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{tag}.dist-info/RECORD,,")
    files[f"{tag}.dist-info/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    wheel = folder / f"{tag}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel
