"""ASE drives an mlpotential worker over the i-PI protocol.

ASE's SocketIOCalculator is an i-PI server: it starts the worker (the
launch_worker function below), sends each geometry over a UNIX socket
(/tmp/ipi_mlpotential-ase) and gets energy, forces and stress back. Here:
50 steps of Langevin MD of 32 copper atoms (thermostat at 300 K) with the
shipped HDNNP model, then a relaxation of the final structure.

    python socketio.py
"""

import subprocess
import sys

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.socketio import SocketIOCalculator
from ase.md.langevin import Langevin
from ase.optimize import BFGS

atoms = bulk("Cu", cubic=True, a=3.61).repeat((2, 2, 2))
atoms.write("copper-socketio.extxyz")  # the worker reads the elements and periodicity from it


def launch_worker(atoms, properties, port, unixsocket):
    worker = [sys.executable, "-m", "mlpotential", "worker", "--ipi", f"unix:{unixsocket}"]
    structure = ["--structure", "copper-socketio.extxyz"]
    engine = ["--backend", "HDNNP", "--model", "Cu-EMT", "--num-threads", "1"]
    return subprocess.Popen(worker + structure + engine)


with SocketIOCalculator(unixsocket="mlpotential-ase", launch_client=launch_worker) as calc:
    atoms.calc = calc
    atoms.rattle(0.05, seed=1)  # the thermostat heats the crystal from there
    dynamics = Langevin(atoms, 2 * units.fs, temperature_K=300, friction=0.01 / units.fs, rng=np.random.default_rng(1))

    def report():
        energy, temperature = atoms.get_potential_energy(), atoms.get_temperature()
        print(f"step {dynamics.nsteps:4d}  E_pot {energy:10.5f} eV  T {temperature:6.1f} K")

    dynamics.attach(report, interval=10)
    dynamics.run(50)
    BFGS(atoms, logfile=None).run(fmax=0.01)
    print(
        f"relaxed: E_pot {atoms.get_potential_energy():.5f} eV, max stress {abs(atoms.get_stress()).max():.2e} eV/A^3"
    )
