"""Do the driver's ensembles sample what they claim? Target versus measured
for longer runs than the tests (ASE's EMT in process, the integrators and
velocities of ``mlpotential/driver/dynamics.py`` exactly as ``mlpotential
run`` builds them):

* NVT of a Cu13 icosahedron (EMT, 300 K, 5 fs steps) with each thermostat:
  the mean temperature over the run's degrees of freedom (33: 3N - 6, the
  rotation and centre of mass stay at rest; Langevin 39) against the target,
  and the standard deviation of the kinetic energy against the canonical
  sqrt(f/2) kB T (Berendsen is not canonical: its fluctuations are smaller);
* the same for ethanol (EMT's crude C, H and O, relaxed first; 0.5 fs
  steps, tau 20 fs): its 21 degrees of freedom (27 for Langevin);
* for comparison, the old driver's Langevin (ASE's default ``fixcm=True``,
  temperature counted over 3N) on both;
* NVE of the same cluster (300 K, 2 fs): the drift of the total energy, eV
  per atom per ps;
* NPT with the MTK barostat (and NHC thermostat) at zero pressure and 50 K
  of a copper crystal (``--mtk-repeat`` fcc cells along each axis, 4 atoms
  each), started 2 % too large: the mean lattice constant of the second half
  against EMT's own at 0 K (the minimum of its energy per atom; thermal
  expansion at 50 K is far below the 0.5 % asked).

The first ``--equilibration`` steps of each run are left out of the NVT
statistics. Prints a table and writes benchmarks/results/ensembles.json.

    .venv/bin/python benchmarks/ensembles.py [--nvt-steps 20000] [--nve-steps 10000] [--mtk-steps 4000]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the shared benchmark code is importable as benchmarks.*

from benchmarks.reporting import machine, write_report  # noqa: E402
from tests.driver.ensemble_sampling import copper_cluster as cluster  # noqa: E402
from tests.driver.ensemble_sampling import emt_lattice_constant, ethanol  # noqa: E402
from tests.driver.ensemble_sampling import sample as sample_ensemble  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "ensembles.json"
TARGET_TEMPERATURE = 300.0
CANONICAL = ("Langevin", "Bussi", "NHC")


def sample(
    atoms, thermostat: str, steps: int, timestep_fs: float, seed: int, equilibration: int, tau: float = 50.0, **barostat
):
    """Run ``steps`` steps from Maxwell-Boltzmann velocities at the target;
    the temperatures, kinetic and conserved energies after ``equilibration``."""
    from mlpotential.driver.dynamics import (
        BarostatSettings,
        EnsembleSettings,
        ThermostatSettings,
        VelocitySettings,
    )

    settings = EnsembleSettings(
        VelocitySettings("Random", barostat.pop("temperature", TARGET_TEMPERATURE), seed),
        ThermostatSettings(thermostat, barostat.pop("thermostat_temperature", TARGET_TEMPERATURE), tau, seed=seed + 1),
        BarostatSettings(**barostat) if barostat else BarostatSettings(),
    )
    return sample_ensemble(atoms, settings, steps, timestep_fs, skip=equilibration)


SYSTEMS = {"Cu13 (EMT)": (cluster, 5.0, 50.0), "ethanol (EMT)": (ethanol, 0.5, 20.0)}
"""Each NVT system: how to build it, its time step and thermostat tau (fs)."""


def nvt_row(system: str, thermostat: str, steps: int, equilibration: int) -> dict[str, object]:
    from ase.units import kB

    build, timestep, tau = SYSTEMS[system]
    dof, rows = sample(build(), thermostat, steps, timestep, seed=11, equilibration=equilibration, tau=tau)
    canonical_std = np.sqrt(dof / 2.0) * kB * TARGET_TEMPERATURE
    return {
        "system": system,
        "ensemble": f"NVT {thermostat}",
        "degrees_of_freedom": dof,
        "target_temperature_k": TARGET_TEMPERATURE,
        "mean_temperature_k": float(rows[:, 0].mean()),
        "kinetic_std_ev": float(rows[:, 1].std()),
        "canonical_kinetic_std_ev": float(canonical_std),
        "kinetic_std_ratio": float(rows[:, 1].std() / canonical_std),
        "canonical": thermostat in CANONICAL,
        "steps": steps,
    }


def old_langevin_row(system: str, steps: int, equilibration: int) -> dict[str, object]:
    """The driver before: ASE's Langevin with its default fixcm=True, the
    temperature over 3N (friction 1/tau)."""
    from ase.md.langevin import Langevin
    from ase.units import kB

    from mlpotential.units import FS_TO_ASE_TIME

    build, timestep, tau = SYSTEMS[system]
    atoms = build()
    rng = np.random.default_rng(11)
    widths = np.sqrt(atoms.get_masses() * TARGET_TEMPERATURE * kB)[:, np.newaxis]
    atoms.set_momenta(rng.standard_normal((len(atoms), 3)) * widths)
    with warnings.catch_warnings():  # fixcm=True: ASE's default then, deprecated since ASE 3.28
        warnings.simplefilter("ignore", FutureWarning)
        dynamics = Langevin(
            atoms,
            timestep * FS_TO_ASE_TIME,
            temperature_K=TARGET_TEMPERATURE,
            friction=1 / (tau * FS_TO_ASE_TIME),
            rng=rng,
        )
    temperatures: list[float] = []
    dynamics.attach(lambda: temperatures.append(atoms.get_temperature()), interval=1)
    dynamics.run(steps)
    return {
        "system": system,
        "ensemble": "NVT Langevin, old driver",
        "degrees_of_freedom": 3 * len(atoms),
        "target_temperature_k": TARGET_TEMPERATURE,
        "mean_temperature_k": float(np.mean(temperatures[equilibration:])),
        "canonical": False,
        "steps": steps,
    }


def nve_row(steps: int) -> dict[str, object]:
    from mlpotential.driver.md_summary import drift_per_atom_per_ps

    atoms = cluster()
    dof, rows = sample(atoms, "None", steps, 2.0, seed=5, equilibration=0)
    time_fs = np.arange(len(rows)) * 2.0
    return {
        "system": "Cu13 (EMT)",
        "ensemble": "NVE",
        "degrees_of_freedom": dof,
        "mean_temperature_k": float(rows[:, 0].mean()),
        "drift_ev_per_atom_per_ps": drift_per_atom_per_ps(time_fs, rows[:, 2], len(atoms)),
        "largest_deviation_ev_per_atom": float(np.abs(rows[:, 2] - rows[0, 2]).max() / len(atoms)),
        "steps": steps,
    }


def mtk_row(steps: int, repeat: int) -> dict[str, object]:
    from ase.build import bulk
    from ase.calculators.emt import EMT

    reference = emt_lattice_constant()
    atoms = bulk("Cu", "fcc", a=reference * 1.02, cubic=True).repeat(repeat)
    atoms.calc = EMT()
    cells = len(atoms) // 4
    dof, rows = sample(
        atoms,
        "NHC",
        steps,
        5.0,
        seed=3,
        equilibration=steps // 2,
        type="MTK",
        pressure=0.0,
        tau=500.0,
        temperature=50.0,
        thermostat_temperature=50.0,
    )
    lattice = rows[:, 3] / np.cbrt(cells)
    return {
        "system": f"Cu{len(atoms)} fcc (EMT)",
        "ensemble": "NPT MTK, 0 Pa, 50 K",
        "degrees_of_freedom": dof,
        "target_lattice_constant_angstrom": reference,
        "mean_lattice_constant_angstrom": float(lattice.mean()),
        "lattice_constant_error": float(lattice.mean() / reference - 1.0),
        "mean_temperature_k": float(rows[:, 0].mean()),
        "steps": steps,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvt-steps", type=int, default=20000)
    parser.add_argument("--equilibration", type=int, default=1000)
    parser.add_argument("--nve-steps", type=int, default=10000)
    parser.add_argument("--mtk-steps", type=int, default=4000)
    parser.add_argument("--mtk-repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = []
    for system in SYSTEMS:
        for thermostat in ("Berendsen", "Langevin", "Bussi", "NHC"):
            rows.append(nvt_row(system, thermostat, args.nvt_steps, args.equilibration))
            print(f"  {system} {rows[-1]['ensemble']}: done", flush=True)
        rows.append(old_langevin_row(system, args.nvt_steps, args.equilibration))
    rows.append(nve_row(args.nve_steps))
    rows.append(mtk_row(args.mtk_steps, args.mtk_repeat))

    print(f"\n{'system':<16} {'ensemble':<26} {'quantity':<30} {'target':>10} {'measured':>10}")
    for row in rows:
        start = f"{row['system']:<16} {row['ensemble']:<26}"
        if row["ensemble"].startswith("NVT"):
            target, measured = row["target_temperature_k"], row["mean_temperature_k"]
            print(f"{start} {'mean temperature (K)':<30} {target:10.1f} {measured:10.1f}")
            if "kinetic_std_ev" in row:
                target = f"{row['canonical_kinetic_std_ev']:10.4f}" if row["canonical"] else f"{'(smaller)':>10}"
                print(f"{'':<43} {'std of kinetic energy (eV)':<30} {target} {row['kinetic_std_ev']:10.4f}")
        elif row["ensemble"] == "NVE":
            print(f"{start} {'drift (eV/atom/ps)':<30} {'0':>10} {row['drift_ev_per_atom_per_ps']:10.2e}")
        else:
            target, measured = row["target_lattice_constant_angstrom"], row["mean_lattice_constant_angstrom"]
            print(f"{start} {'lattice constant (Angstrom)':<30} {target:10.4f} {measured:10.4f}")
    write_report(
        args.output,
        {"rows": rows, "seconds": time.perf_counter() - started, "machine": machine(ase=_ase_version())},
    )
    return 0


def _ase_version() -> str:
    import ase

    return ase.__version__


if __name__ == "__main__":
    raise SystemExit(main())
