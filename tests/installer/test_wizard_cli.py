"""The wizard's command line in the project's own environment: usage errors,
dry runs (which change nothing), the terminal question, --list."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import sys
from pathlib import Path

import pytest

from mlpotential.backends.registry import BACKENDS, install_hint
from mlpotential.commands.install import main
from mlpotential.installer import listing
from mlpotential.installer.confirmation import NoTerminal, ask, must_ask
from mlpotential.installer.environment import installed_distributions


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one backend to install"),
        (["nequip"], "unknown backend 'nequip'; known backends: torchani"),
        (["sgdml", "ase"], "give one backend to install"),
        (["--json"], "--json goes with --list"),
        (["ase", "--cpu"], "Backend ASE does not use torch"),
        (["--list", "--cuda"], "--cpu and --cuda go with installing a backend"),
        (["--uninstall", "sgdml", "torchani"], "give either a backend to install"),
        (["sgdml", "--cpu", "--cuda"], "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2_with_a_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_every_install_hint_of_the_registry_is_a_working_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The command an engine error names (registry.install_hint) is one the
    wizard accepts; its dry run prints pip commands of this interpreter and
    changes nothing."""
    before = installed_distributions()
    for spec in BACKENDS.values():
        argv = install_hint(spec).split()[2:]
        assert main([*argv, "--dry-run"]) == 0, spec.name
        out = capsys.readouterr().out
        assert f"Backend {spec.name}: installing into the Python environment of {sys.executable}" in out
        for line in out.splitlines():
            if line.startswith("$ "):
                assert line.startswith(f"$ {sys.executable} -m pip install -c ")
        assert "Dry run: nothing was changed." in out or f"Nothing to install for Backend {spec.name}." in out
    assert installed_distributions() == before


def test_uninstall_dry_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = installed_distributions()
    assert main(["--uninstall", "torchani", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"$ {sys.executable} -m pip uninstall -y torchani" in out and "Dry run: nothing was changed." in out
    assert installed_distributions() == before


def test_a_question_needs_a_terminal_or_yes() -> None:
    with open(os.devnull) as not_a_terminal:
        with pytest.raises(NoTerminal, match="standard input is not a terminal"):
            must_ask(yes=False, stdin=not_a_terminal)
        assert must_ask(yes=True, stdin=not_a_terminal) is False


@pytest.mark.parametrize(("typed", "agreed"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False)])
def test_the_answer_on_a_real_terminal_decides(typed: str, agreed: bool, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        os.write(controller, typed.encode())
        with open(terminal, closefd=False) as stdin, open(tmp_path / "out", "w") as out:
            assert must_ask(yes=False, stdin=stdin)
            assert ask("Run these commands?", stdin=stdin, out=out) is agreed
        assert (tmp_path / "out").read_text() == "Run these commands? [y/N] "
    finally:
        os.close(terminal)
        os.close(controller)


def test_list_reports_versions_checks_and_where_ani_parameters_are(
    monkeypatch: pytest.MonkeyPatch, ani_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(ani_data_dir))
    monkeypatch.setenv("MLPOTENTIAL_DATA_DIR", str(tmp_path))
    assert main(["--list", "ase", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["backends"]
    assert row["backend"] == "ASE" and row["installed"] and row["works"], row
    assert row["versions"] == {"ase": importlib.metadata.version("ase")}
    assert "EMT energy of H2O" in row["detail"]
    torch = result["torch"]
    assert torch["ok"] and torch["version"] == importlib.metadata.version("torch")
    assert result["ani_parameters"]["found"] and result["ani_parameters"]["source"] == "$TORCHANI_DATA_DIR"
    assert Path(result["ani_parameters"]["folder"]) == ani_data_dir / "Neurochem"


def test_list_table_says_where_to_get_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TORCHANI_DATA_DIR", raising=False)
    monkeypatch.setenv("MLPOTENTIAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # torchani's own data folder is then absent
    assert main(["--list", "ase", "hdnnp"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("torch: torch ")
    (row,) = [line for line in out.splitlines() if line.startswith("ASE ")]
    assert row.split()[:5] == ["ASE", "ase", "yes", "yes", "ase"]
    (row,) = [line for line in out.splitlines() if line.startswith("HDNNP ")]
    assert row.split()[:4] == ["HDNNP", "hdnnp", "yes", "yes"] and "mlpotential's own code" in row
    assert "ANI parameters (TorchANI built-in models): not found" in out
    assert "mlpotential install --ani-parameters PATH" in out


def test_a_crashing_check_is_reported_not_raised() -> None:
    answer = listing.run_probe("no-such-backend")
    assert answer["ok"] is False and "the check crashed (exit status 2)" in answer["detail"]


@pytest.mark.slow
def test_list_every_backend_for_real(capsys: pytest.CaptureFixture[str]) -> None:
    """Every backend installed here works (schnetpack's import alone takes half a minute)."""
    assert main(["--list", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["backend"] for row in result["backends"]] == list(BACKENDS)
    for row in result["backends"]:
        assert row["installed"] and row["works"], row
