"""Running pip with the interpreter that runs mlpotential, so packages land
in the environment mlpotential itself uses.

Every command is printed before it runs. An install is first checked with
``pip install --dry-run`` (pip resolves everything and changes nothing), so
a package pip cannot find or a conflict it cannot resolve stops the plan
before any change; a command that fails later has the changes of the plan so
far undone (new distributions removed, changed ones put back).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mlpotential.installer.plans import PipCommand, Plan
from mlpotential.installer.project_requirements import normalize_name

_PREVIEW_MIN_PIP = (22, 2)  # first pip with --dry-run and --report


class PipError(RuntimeError):
    """A pip command failed; the message says which and what pip said."""


@dataclass(frozen=True)
class Preview:
    """What one install command would do: ``changes`` as (name, version) pairs."""

    command: PipCommand
    changes: tuple[tuple[str, str], ...]


@dataclass
class PipRunner:
    """Runs ``python -m pip`` for ``python`` (default: this interpreter),
    printing each command to ``out``."""

    python: str = sys.executable
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def command_line(self, command: PipCommand) -> list[str]:
        return [self.python, "-m", "pip", *command.arguments]

    def show(self, command: PipCommand) -> None:
        print(f"$ {shlex.join(self.command_line(command))}", file=self.out, flush=True)

    def run(self, command: PipCommand) -> int:
        """Print and run ``command``; pip's own output goes straight to the user."""
        self.show(command)
        return subprocess.run(self.command_line(command), check=False).returncode

    def distributions(self) -> dict[str, str]:
        """What pip sees installed: canonical name -> version."""
        result = self._capture(["list", "--format=json", "--disable-pip-version-check"])
        return {normalize_name(entry["name"]): entry["version"] for entry in json.loads(result.stdout)}

    def can_preview(self) -> bool:
        result = self._capture(["--version"])
        numbers = result.stdout.split()[1].split(".")[:2]
        return tuple(int(number) for number in numbers if number.isdigit()) >= _PREVIEW_MIN_PIP

    def preview(self, command: PipCommand) -> Preview:
        """What an install command would install, from pip's own dry run.
        Raises PipError with pip's message when pip cannot do it."""
        with tempfile.TemporaryDirectory(prefix="mlpotential-pip-") as folder:
            report = Path(folder) / "report.json"
            arguments = [*command.arguments, "--dry-run", "--quiet", "--report", str(report)]
            result = self._capture(arguments, check=False)
            if result.returncode != 0:
                raise PipError(
                    f"pip cannot do this (exit status {result.returncode}): "
                    f"{shlex.join(self.command_line(command))}\n{_tail(result.stderr or result.stdout)}"
                )
            installs = json.loads(report.read_text()).get("install", [])
        changes = tuple((entry["metadata"]["name"], entry["metadata"]["version"]) for entry in installs)
        return Preview(command, changes)

    def _capture(self, arguments: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.python, "-m", "pip", *arguments], capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise PipError(f"pip {' '.join(arguments)} failed: {_tail(result.stderr)}")
        return result


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def preview_plan(plan: Plan, runner: PipRunner) -> list[Preview]:
    """pip's dry run of every install command of ``plan`` (empty when this
    pip has no dry run). Raises PipError at the first command pip cannot do."""
    if not runner.can_preview():
        return []
    return [runner.preview(command) for command in plan.commands if command.installs]


def apply_plan(plan: Plan, runner: PipRunner, constraints: Path | None = None) -> None:
    """Run the commands of ``plan`` in order. When one fails, undo what the
    commands before it changed and raise PipError saying what failed and
    whether the environment is back as it was."""
    before = runner.distributions()
    for command in plan.commands:
        status = runner.run(command)
        if status == 0:
            continue
        message = f"pip failed (exit status {status}) on: {shlex.join(runner.command_line(command))}"
        left = _restore(before, runner, constraints)
        if left:
            raise PipError(f"{message}\nCould not put back: {'; '.join(left)}")
        raise PipError(f"{message}\nThe environment is as it was before (checked with pip list).")


def _restore(before: dict[str, str], runner: PipRunner, constraints: Path | None) -> list[str]:
    """Undo changes since ``before``; returns what still differs."""
    after = runner.distributions()
    added = sorted(set(after) - set(before))
    if added:
        print("Removing what this plan installed:", file=runner.out)
        runner.run(PipCommand(("uninstall", "-y", *added), "undo"))
    changed = sorted(name for name, version in before.items() if after.get(name) != version)
    if changed:
        print("Putting back the versions this plan changed:", file=runner.out)
        pinned = ("-c", str(constraints)) if constraints else ()
        runner.run(
            PipCommand(("install", *pinned, "--no-deps", *(f"{name}=={before[name]}" for name in changed)), "undo")
        )
    final = runner.distributions()
    differences = [
        f"{name} {before[name]} (now {final.get(name, 'absent')})" for name in before if final.get(name) != before[name]
    ]
    differences += [f"{name} {final[name]} (was absent)" for name in sorted(set(final) - set(before))]
    return differences
