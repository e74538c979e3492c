"""The independent check of the example's final committee: an NVT run
(Langevin, 1000 steps of 4 fs) with the committee, through a worker, at a
temperature above the exploration's lowest; afterwards every frame is
labelled by EMT. Passes when the force RMSE and the largest per-atom force
deviation seen stay below the thresholds (docs/active-learning.md states
them with the measured values). Writes check.json into the results folder.

    python examples/active_learning/check.py [RESULTS] [--temperature 500]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from mlpotential.learning.exploration import committee_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_initial import initial_structures  # noqa: E402

FORCE_RMSE_THRESHOLD = 0.03
"""eV/Angstrom: a few per cent of the rms EMT force on copper at 500 K (check.json: reference_force_rms)."""
LARGEST_UNCERTAINTY_THRESHOLD = 0.2
"""eV/Angstrom: well below the example's upper trust level (0.5)."""


def committee_md(committee: list[str], temperature: float, steps: int, seed: int) -> tuple[list, list[float]]:
    """Frames and the largest per-atom force deviation of each step."""
    rng = np.random.default_rng(seed)
    atoms = initial_structures()[2]
    frames, uncertainty = [], []
    with committee_engine(committee) as engine:
        atoms.calc = engine
        thermalize_momenta(atoms, temperature, rng=rng)
        dynamics = Langevin(
            atoms, 4 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False, rng=rng
        )
        for _ in dynamics.irun(steps):
            forces = atoms.get_forces()
            frame = atoms.copy()
            frame.calc = None
            frame.arrays["committee_forces"] = np.array(forces)
            frames.append(frame)
            uncertainty.append(float(np.linalg.norm(engine.results["forces_std"], axis=1).max()))
    return frames, uncertainty


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "results"))
    parser.add_argument("--temperature", type=float, default=500.0, help="K (default 500)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    results = Path(args.results)
    committee = json.loads((results / "report.json").read_text())["final_committee"]
    frames, uncertainty = committee_md(committee, args.temperature, args.steps, args.seed)
    reference = []
    for frame in frames:
        frame.calc = EMT()
        reference.append(frame.get_forces())
    reference = np.array(reference)
    errors = reference - np.array([frame.arrays["committee_forces"] for frame in frames])
    check = {
        "temperature": args.temperature,
        "steps": args.steps,
        "frames": len(frames),
        "force_rmse": float(np.sqrt(np.mean(errors**2))),
        "force_max_error": float(np.abs(errors).max()),
        "reference_force_rms": float(np.sqrt(np.mean(reference**2))),
        "largest_force_std": float(max(uncertainty)),
        "thresholds": {"force_rmse": FORCE_RMSE_THRESHOLD, "largest_force_std": LARGEST_UNCERTAINTY_THRESHOLD},
    }
    check["passed"] = (
        check["force_rmse"] < FORCE_RMSE_THRESHOLD and check["largest_force_std"] < LARGEST_UNCERTAINTY_THRESHOLD
    )
    (results / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    print(
        f"{check['frames']} frames at {args.temperature:g} K: force RMSE {check['force_rmse']:.4f} eV/A "
        f"(threshold {FORCE_RMSE_THRESHOLD}), largest force std {check['largest_force_std']:.3f} eV/A "
        f"(threshold {LARGEST_UNCERTAINTY_THRESHOLD}): {'passed' if check['passed'] else 'FAILED'}"
    )
    return 0 if check["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
