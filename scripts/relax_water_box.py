"""Make examples/water_box_relaxed.xyz: the 27 water molecules of
examples/water_box.xyz (built on a grid) relaxed with ANI-2x in the same
fixed 9.3 Angstrom cell (BFGS on the positions until the largest force is
below 0.05 eV/Angstrom), through an mlpotential worker. Starting MD from the
grid geometry releases enough energy to heat the box from 300 to 700-800 K
in 100 fs; from the relaxed one it does not.

    .venv/bin/python scripts/relax_water_box.py   # TORCHANI_DATA_DIR or ANI parameters installed
"""

from __future__ import annotations

from pathlib import Path

from ase.io import read, write
from ase.optimize import BFGS

from mlpotential import PipeEngine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    atoms = read(EXAMPLES / "water_box.xyz")
    with PipeEngine({"Model": "ANI-2x", "NumThreads": "1"}) as engine:
        atoms.calc = engine
        start = atoms.get_potential_energy()
        BFGS(atoms, logfile="-").run(fmax=0.05, steps=1000)
        end = atoms.get_potential_energy()
    print(f"ANI-2x energy: {start:.4f} eV on the grid, {end:.4f} eV relaxed ({(start - end) / len(atoms):.4f} eV/atom)")
    atoms.calc = None
    write(EXAMPLES / "water_box_relaxed.xyz", atoms, format="extxyz")


if __name__ == "__main__":
    main()
