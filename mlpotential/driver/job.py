"""A job for the driver, read from AMS-style input: the task, the system,
the engine keywords and the task's settings, each value checked with an
error that names its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from mlpotential.ase_bridge import cell_from_vectors
from mlpotential.driver.input_reader import Block, InputError, engine_keywords, read_input
from mlpotential.names import canonical_name

TASKS = ("SinglePoint", "GeometryOptimization", "MolecularDynamics")
OPTIMIZERS = ("BFGS", "LBFGS", "FIRE")
THERMOSTATS = ("None", "Langevin")
VELOCITY_TYPES = ("Random", "Zero")


@dataclass
class OptimizationSettings:
    """``gradients``: convergence threshold on the largest gradient
    component, Hartree/Angstrom (as in AMS)."""

    max_iterations: int = 200
    gradients: float = 1e-3
    method: str = "BFGS"


@dataclass
class DynamicsSettings:
    """Times in fs, temperatures in K, ``friction`` in 1/fs (Langevin)."""

    steps: int = 100
    timestep: float = 0.5
    velocities: str = "Zero"
    initial_temperature: float = 300.0
    seed: int | None = None
    thermostat: str = "None"
    temperature: float = 300.0
    friction: float = 0.01
    thermostat_seed: int | None = None
    sampling_frequency: int = 10


@dataclass
class Job:
    """Everything ``mlpotential run`` needs; ``directory`` is where the
    input file lies (relative paths in it are relative to it)."""

    task: str
    atoms: Atoms
    engine: dict[str, str]
    directory: Path
    source: str
    optimization: OptimizationSettings = field(default_factory=OptimizationSettings)
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)


class _Values:
    """Typed values of one block, with errors naming file and line."""

    def __init__(self, block: Block | None, source: str) -> None:
        self.block = block
        self.source = source

    def _raw(self, key: str) -> tuple[str, int] | None:
        return None if self.block is None else self.block.keys.get(key)

    def error(self, key: str, line: int, message: str) -> InputError:
        return InputError(f"{self.source}, line {line}: {key} {message}")

    def number(self, key: str, default: float, kind: type = float, positive: bool = True) -> float:
        raw = self._raw(key)
        if raw is None:
            return default
        text, line = raw
        try:
            value = kind(text)
        except ValueError:
            raise self.error(key, line, f"needs {'an integer' if kind is int else 'a number'}, not {text!r}") from None
        if positive and value <= 0:
            raise self.error(key, line, f"must be positive, not {text}")
        return value

    def optional_int(self, key: str) -> int | None:
        return None if self._raw(key) is None else int(self.number(key, 0, int, positive=False))

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(key)
        if raw is None:
            return default
        text, line = raw
        chosen = canonical_name(text, allowed)
        if chosen is not None:
            return chosen
        raise self.error(key, line, f"{text!r} is not allowed; allowed: {', '.join(allowed)}")


def _atoms_from_block(system: Block, source: str, directory: Path) -> Atoms:
    atoms_block = system.blocks.get("Atoms")
    geometry_file = system.keys.get("GeometryFile")
    if (atoms_block is None) == (geometry_file is None):
        raise InputError(f"{source}, line {system.line}: System needs either an Atoms block or a GeometryFile")
    if geometry_file is not None:
        import ase.io

        path = directory / geometry_file[0]
        try:
            atoms = ase.io.read(path)
        except Exception as exc:
            raise InputError(f"{source}, line {geometry_file[1]}: cannot read GeometryFile {path}: {exc}") from None
    else:
        symbols, positions = [], []
        for number, line in atoms_block.lines:
            parts = line.split()
            try:
                if len(parts) < 4:
                    raise ValueError
                position = [float(value) for value in parts[1:4]]
            except ValueError:
                raise InputError(
                    f"{source}, line {number}: an atom line is 'Symbol x y z' (Angstrom), not {line!r}"
                ) from None
            if parts[0] not in atomic_numbers or parts[0] == "X":
                raise InputError(f"{source}, line {number}: unknown element symbol {parts[0]!r}")
            symbols.append(parts[0])
            positions.append(position)
        if not symbols:
            raise InputError(f"{source}, line {atoms_block.line}: the Atoms block is empty")
        atoms = Atoms(symbols, positions=positions)
    lattice = system.blocks.get("Lattice")
    if lattice is not None:
        vectors = []
        for number, line in lattice.lines:
            try:
                vector = [float(value) for value in line.split()]
                if len(vector) != 3:
                    raise ValueError
            except ValueError:
                raise InputError(
                    f"{source}, line {number}: a lattice line is 'x y z' (Angstrom), not {line!r}"
                ) from None
            vectors.append(vector)
        if not 1 <= len(vectors) <= 3 or np.linalg.matrix_rank(np.array(vectors)) < len(vectors):
            raise InputError(f"{source}, line {lattice.line}: Lattice needs 1 to 3 independent vectors")
        cell, pbc = cell_from_vectors(np.array(vectors))
        atoms.set_cell(cell)
        atoms.pbc = pbc
    charge = _Values(system, source).number("Charge", 0.0, positive=False)
    if charge:
        atoms.info["charge"] = charge
    return atoms


def read_job(path: str | Path) -> Job:
    """Read and check a job file; :class:`InputError` names the line at fault."""
    path = Path(path)
    root = read_input(path)
    source = str(path)
    task = _Values(root, source).choice("Task", "", TASKS)
    if not task:
        raise InputError(f"{source}: no Task given; use Task {' | '.join(TASKS)}")
    system = root.blocks.get("System")
    if system is None:
        raise InputError(f"{source}: no System block")
    directory = path.resolve().parent
    job = Job(task, _atoms_from_block(system, source, directory), engine_keywords(root), directory, source)

    go = _Values(root.blocks.get("GeometryOptimization"), source)
    convergence = _Values(go.block.blocks.get("Convergence") if go.block else None, source)
    job.optimization = OptimizationSettings(
        max_iterations=int(go.number("MaxIterations", 200, int)),
        gradients=convergence.number("Gradients", 1e-3),
        method=go.choice("Method", "BFGS", OPTIMIZERS),
    )
    md = _Values(root.blocks.get("MolecularDynamics"), source)
    sub = md.block.blocks if md.block else {}
    velocities = _Values(sub.get("InitialVelocities"), source)
    thermostat = _Values(sub.get("Thermostat"), source)
    trajectory = _Values(sub.get("Trajectory"), source)
    tau = thermostat.number("Tau", 0.0)
    job.dynamics = DynamicsSettings(
        steps=int(md.number("NSteps", 100, int)),
        timestep=md.number("TimeStep", 0.5),
        velocities=velocities.choice("Type", "Random" if velocities.block else "Zero", VELOCITY_TYPES),
        initial_temperature=velocities.number("Temperature", 300.0, positive=False),
        seed=velocities.optional_int("RandomSeed"),
        thermostat=thermostat.choice("Type", "None", THERMOSTATS),
        temperature=thermostat.number("Temperature", 300.0),
        friction=1.0 / tau if tau else thermostat.number("Friction", 0.01),
        thermostat_seed=thermostat.optional_int("RandomSeed"),
        sampling_frequency=int(trajectory.number("SamplingFreq", 10, int)),
    )
    return job
