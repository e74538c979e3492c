"""A job for the driver, read from AMS-style input: the task, the system,
the engine keywords and the task's settings, each value checked with an
error that names its line."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from mlpotential.ase_bridge import cell_from_vectors
from mlpotential.backends.keywords import parse_settings
from mlpotential.driver.dynamics import (
    BAROSTATS,
    THERMOSTATS,
    VELOCITY_TYPES,
    BarostatSettings,
    DynamicsError,
    EnsembleSettings,
    ThermostatSettings,
    VelocitySettings,
)
from mlpotential.driver.input_reader import (
    WORKER_COMMAND,
    Block,
    InputError,
    block_keywords,
    engine_keywords,
    read_input,
)
from mlpotential.errors import KeywordError
from mlpotential.inputs import COORDINATES, BadValue, Range, number
from mlpotential.names import canonical_name
from mlpotential.units import PRESSURE_UNIT_TO_PASCAL

TASKS = ("SinglePoint", "GeometryOptimization", "MolecularDynamics")
OPTIMIZERS = ("Auto", "Quasi-Newton", "FIRE", "L-BFGS", "BFGS", "LBFGS")
"""AMS's optimiser names, and ASE's (BFGS is a quasi-Newton method)."""
QUALITIES = ("VeryBasic", "Basic", "Normal", "Good", "VeryGood", "Custom")
YES_NO = ("Yes", "No", "True", "False")

NUMBERS: dict[str, tuple[type[int] | type[float], Range]] = {
    "Charge": (float, Range(-1000, 1000, "e")),
    "MaxIterations": (int, Range(1, 1_000_000)),
    "Energy": (float, Range(0, 1, "Hartree", positive=True)),
    "Gradients": (float, Range(0, 1, "Hartree/Angstrom", positive=True)),
    "Step": (float, Range(0, 10, "Angstrom", positive=True)),
    "StressEnergyPerAtom": (float, Range(0, 1, "Hartree", positive=True)),
    "NSteps": (int, Range(1, 1_000_000_000)),
    "TimeStep": (float, Range(0, 100, "fs", positive=True)),
    "Temperature": (float, Range(0, 100_000, "K")),
    "RandomSeed": (int, Range(0, 2**32 - 1)),  # np.random.seed's range: a seed every generator takes
    "Friction": (float, Range(0, 10, "1/fs", positive=True)),
    "Tau": (float, Range(0.1, 1e9, "fs")),  # 1/Tau is the friction: at most 10/fs
    "ChainLength": (int, Range(1, 100)),
    "Pressure": (float, Range(-1e12, 1e12, "Pa")),  # a TPa is beyond any model's training data
    "BulkModulus": (float, Range(0, 1e13, "Pa", positive=True)),
    "SamplingFreq": (int, Range(1, 1_000_000_000)),
}
"""Every numeric key of a job (any block): the kind of number and the values
it allows. docs/input-reference.md lists them; a test keeps the two alike."""


@dataclass(frozen=True)
class Convergence:
    """AMS's convergence thresholds of a geometry optimisation: ``energy``
    (Hartree per atom, the change between steps), ``gradients``
    (Hartree/Angstrom, the largest component; the RMS must be below 2/3 of
    it), ``step`` (Angstrom, the largest Cartesian step; RMS below 2/3) and
    ``stress_energy_per_atom`` (Hartree, largest stress component times the
    volume per atom; OptimizeLattice only)."""

    energy: float = 1e-5
    gradients: float = 1e-3
    step: float = 0.01
    stress_energy_per_atom: float = 5e-4


QUALITY_PRESETS: dict[str, Convergence] = {
    "VeryBasic": Convergence(1e-3, 1e-1, 1.0, 5e-2),
    "Basic": Convergence(1e-4, 1e-2, 0.1, 5e-3),
    "Normal": Convergence(1e-5, 1e-3, 0.01, 5e-4),
    "Good": Convergence(1e-6, 1e-4, 0.001, 5e-5),
    "VeryGood": Convergence(1e-7, 1e-5, 0.0001, 5e-6),
}
"""AMS's Convergence%Quality: Normal is the default thresholds; each step
of quality multiplies all four by 10 (looser) or 0.1 (tighter). Custom
means the thresholds given (Normal's where none is)."""


@dataclass
class OptimizationSettings:
    """``method`` as given (see :data:`OPTIMIZERS`); ``optimize_lattice``
    relaxes the cell of a 3D-periodic system too."""

    max_iterations: int = 200
    method: str = "Auto"
    convergence: Convergence = field(default_factory=Convergence)
    optimize_lattice: bool = False


@dataclass(frozen=True)
class PropertiesSettings:
    """What is computed at the final geometry (SinglePoint and
    GeometryOptimization): gradients (Hartree/Bohr), the stress tensor
    (Hartree/Bohr^3), the Hessian (Hartree/Bohr^2) and normal modes
    (frequencies in cm^-1), the last two by central finite differences of
    the engine's gradients."""

    gradients: bool = False
    stress_tensor: bool = False
    hessian: bool = False
    normal_modes: bool = False

    @property
    def any(self) -> bool:
        return self.gradients or self.stress_tensor or self.hessian or self.normal_modes


@dataclass
class DynamicsSettings:
    """Times in fs; the ensemble's settings in :mod:`mlpotential.driver.dynamics`."""

    steps: int = 100
    timestep: float = 0.5
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
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
    properties: PropertiesSettings = field(default_factory=PropertiesSettings)
    worker_command: list[str] | None = None
    """``Engine Pipe``'s WorkerCommand: any AMS-compatible worker (None: ours)."""

    @property
    def charge(self) -> float:
        """The system's total charge (e), sent to the engine as totalCharge."""
        return float(self.atoms.info.get("charge", 0.0))


class _Values:
    """Typed values of one block, with errors naming file and line."""

    def __init__(self, block: Block | None, source: str) -> None:
        self.block = block
        self.source = source

    def _raw(self, key: str) -> tuple[str, int] | None:
        return None if self.block is None else self.block.keys.get(key)

    def given(self, key: str) -> bool:
        return self._raw(key) is not None

    def error(self, key: str, line: int, message: str) -> InputError:
        return InputError(f"{self.source}, line {line}: {key} {message}")

    def number(self, key: str, default: float) -> float:
        """The key's value, of the kind and in the range :data:`NUMBERS` gives."""
        raw = self._raw(key)
        if raw is None:
            return default
        text, line = raw
        kind, allowed = NUMBERS[key]
        try:
            return number(key, text, kind, allowed)
        except BadValue as exc:
            raise self.error(key, line, exc.problem) from None

    def flag(self, key: str, default: bool = False) -> bool:
        """A Yes/No key (True/False accepted too)."""
        chosen = self.choice(key, "", YES_NO)
        return default if not chosen else chosen in ("Yes", "True")

    def pressure(self, key: str, default: float) -> float:
        """A pressure in Pa; AMS's notation ``1.0 [bar]`` names another unit
        (:data:`~mlpotential.units.PRESSURE_UNIT_TO_PASCAL`); the range of
        :data:`NUMBERS` applies in Pa."""
        raw = self._raw(key)
        if raw is None:
            return default
        text, line = raw
        value, bracket, unit = text.partition("[")
        factor, name = 1.0, "Pa"
        if bracket:
            name = canonical_name(unit.strip().removesuffix("]").strip(), PRESSURE_UNIT_TO_PASCAL)
            if name is None or not unit.strip().endswith("]"):
                known = ", ".join(f"[{name}]" for name in PRESSURE_UNIT_TO_PASCAL)
                raise self.error(key, line, f"unit [{unit.strip()} is not known; use {known} (default Pa)")
            factor = PRESSURE_UNIT_TO_PASCAL[name]
        kind, allowed = NUMBERS[key]
        try:
            return factor * number(
                key, value.strip(), kind, Range(allowed.minimum / factor, allowed.maximum / factor, name)
            )
        except BadValue as exc:
            raise self.error(key, line, exc.problem) from None

    def optional_int(self, key: str) -> int | None:
        return None if self._raw(key) is None else int(self.number(key, 0))

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(key)
        if raw is None:
            return default
        text, line = raw
        chosen = canonical_name(text, allowed)
        if chosen is not None:
            return chosen
        raise self.error(key, line, f"{text!r} is not allowed; allowed: {', '.join(allowed)}")


def _vector(texts: list[str], where: str) -> list[float]:
    """x, y and z (Angstrom), each a number within :data:`COORDINATES`."""
    try:
        return [float(number(axis, text, float, COORDINATES)) for axis, text in zip("xyz", texts)]
    except BadValue as exc:
        raise InputError(f"{where}: {exc}") from None


def _check_geometry_file(atoms: Atoms, where: str) -> None:
    """A geometry file's positions and cell within :data:`COORDINATES` (an
    xyz file can hold nan as well as a job can)."""
    if len(atoms) == 0:
        raise InputError(f"{where} holds no atoms")
    for what, values in (("a position", atoms.positions), ("a lattice vector", atoms.cell.array)):
        outside = [value for value in values.ravel() if value not in COORDINATES]
        if outside:
            raise InputError(f"{where}: {what} of {outside[0]} Angstrom; coordinates must be {COORDINATES.describe()}")


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
            # one line: some ase.io readers' messages span several
            reason = " ".join(str(exc).split())
            raise InputError(f"{source}, line {geometry_file[1]}: cannot read GeometryFile {path}: {reason}") from None
        _check_geometry_file(atoms, f"{source}, line {geometry_file[1]}: GeometryFile {path}")
    else:
        symbols, positions = [], []
        for row, line in atoms_block.lines:
            parts = line.split()
            if len(parts) < 4:
                raise InputError(f"{source}, line {row}: an atom line is 'Symbol x y z' (Angstrom), not {line!r}")
            if parts[0] not in atomic_numbers or parts[0] == "X":
                raise InputError(f"{source}, line {row}: unknown element symbol {parts[0]!r}")
            symbols.append(parts[0])
            positions.append(_vector(parts[1:4], f"{source}, line {row}: atom {parts[0]}"))
        if not symbols:
            raise InputError(f"{source}, line {atoms_block.line}: the Atoms block is empty")
        atoms = Atoms(symbols, positions=positions)
    lattice = system.blocks.get("Lattice")
    if lattice is not None:
        vectors = []
        for row, line in lattice.lines:
            if len(line.split()) != 3:
                raise InputError(f"{source}, line {row}: a lattice line is 'x y z' (Angstrom), not {line!r}")
            vectors.append(_vector(line.split(), f"{source}, line {row}: lattice vector"))
        if not 1 <= len(vectors) <= 3 or np.linalg.matrix_rank(np.array(vectors)) < len(vectors):
            raise InputError(f"{source}, line {lattice.line}: Lattice needs 1 to 3 independent vectors")
        cell, pbc = cell_from_vectors(np.array(vectors))
        atoms.set_cell(cell)
        atoms.pbc = pbc
    charge = _Values(system, source).number("Charge", 0.0)
    if charge:
        atoms.info["charge"] = charge
    return atoms


def _pipe_worker_command(engine: Block, source: str, directory: Path) -> list[str]:
    """``Engine Pipe``'s WorkerCommand, split as a shell would; a program
    given by a relative path is taken relative to the job file's folder."""
    others = [key for key in engine.keys if key != WORKER_COMMAND]
    if others:
        line = engine.keys[others[0]][1]
        raise InputError(f"{source}, line {line}: Engine Pipe takes only {WORKER_COMMAND}, not {others[0]}")
    if WORKER_COMMAND not in engine.keys:
        raise InputError(f"{source}, line {engine.line}: Engine Pipe needs {WORKER_COMMAND} (the worker to start)")
    text, line = engine.keys[WORKER_COMMAND]
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"{source}, line {line}: {WORKER_COMMAND} {text!r}: {exc}") from None
    if not command:
        raise InputError(f"{source}, line {line}: {WORKER_COMMAND} is empty")
    if "/" in command[0] and not Path(command[0]).expanduser().is_absolute():
        command[0] = str(directory / command[0])
    return command


def _check_engine(engine: Block | None, source: str) -> None:
    """The engine keywords, checked before a worker starts so that the line
    at fault is named; the worker checks the model files (relative paths
    are relative to its directory)."""
    if engine is None:
        return
    if WORKER_COMMAND in engine.keys:
        raise InputError(f"{source}, line {engine.keys[WORKER_COMMAND][1]}: {WORKER_COMMAND} belongs to Engine Pipe")
    try:
        parse_settings(block_keywords(engine), check_files=False)
    except KeywordError as exc:
        # a keyword missing (Model Custom without ParameterFile) is the block's fault
        line = engine.keys[exc.keyword][1] if exc.keyword in engine.keys else engine.line
        raise InputError(f"{source}, line {line}: {exc.message}") from None


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
    engine = root.blocks.get("Engine")
    worker_command = None
    if engine is not None and engine.header.lower() == "pipe":
        worker_command = _pipe_worker_command(engine, source, directory)
        keywords = {}
    else:
        _check_engine(engine, source)
        keywords = engine_keywords(root)
    job = Job(task, _atoms_from_block(system, source, directory), keywords, directory, source)
    job.worker_command = worker_command
    job.optimization = _optimization(root.blocks.get("GeometryOptimization"), source, job.atoms)
    job.properties = _properties(root.blocks.get("Properties"), source, task, job.atoms)
    md = _Values(root.blocks.get("MolecularDynamics"), source)
    sub = md.block.blocks if md.block else {}
    velocities = _Values(sub.get("InitialVelocities"), source)
    thermostat = _Values(sub.get("Thermostat"), source)
    barostat = _Values(sub.get("Barostat"), source)
    trajectory = _Values(sub.get("Trajectory"), source)
    ensemble = EnsembleSettings(
        VelocitySettings(
            type=velocities.choice("Type", "Random" if velocities.block else "Zero", VELOCITY_TYPES),
            temperature=velocities.number("Temperature", 300.0),
            seed=velocities.optional_int("RandomSeed"),
        ),
        ThermostatSettings(
            type=thermostat.choice("Type", "None", THERMOSTATS),
            temperature=thermostat.number("Temperature", 300.0),
            tau=thermostat.number("Tau", 100.0),
            # Friction (1/fs) is Langevin's older spelling of 1/Tau; Tau wins when both are given
            friction=None if thermostat.given("Tau") else (thermostat.number("Friction", 0) or None),
            chain_length=int(thermostat.number("ChainLength", 3)),
            seed=thermostat.optional_int("RandomSeed"),
        ),
        BarostatSettings(
            type=barostat.choice("Type", "None", BAROSTATS),
            pressure=barostat.pressure("Pressure", 0.0),
            tau=barostat.number("Tau", 1000.0),
            bulk_modulus=barostat.number("BulkModulus", 2.2e9),
        ),
    )
    if task == "MolecularDynamics":
        try:
            ensemble.check(job.atoms)
        except DynamicsError as exc:
            block = barostat.block or thermostat.block or md.block
            raise InputError(f"{source}, line {block.line if block else 1}: {exc}") from None
    job.dynamics = DynamicsSettings(
        steps=int(md.number("NSteps", 100)),
        timestep=md.number("TimeStep", 0.5),
        ensemble=ensemble,
        sampling_frequency=int(trajectory.number("SamplingFreq", 10)),
    )
    return job


def _optimization(block: Block | None, source: str, atoms: Atoms) -> OptimizationSettings:
    go = _Values(block, source)
    convergence = _Values(block.blocks.get("Convergence") if block else None, source)
    preset = QUALITY_PRESETS.get(convergence.choice("Quality", "Normal", QUALITIES), QUALITY_PRESETS["Normal"])
    optimize_lattice = go.flag("OptimizeLattice")
    if optimize_lattice and not atoms.pbc.all():
        raise go.error("OptimizeLattice", go.block.keys["OptimizeLattice"][1], "needs a system with 3 lattice vectors")
    return OptimizationSettings(
        max_iterations=int(go.number("MaxIterations", 200)),
        method=go.choice("Method", "Auto", OPTIMIZERS),
        convergence=Convergence(
            energy=convergence.number("Energy", preset.energy),
            gradients=convergence.number("Gradients", preset.gradients),
            step=convergence.number("Step", preset.step),
            stress_energy_per_atom=convergence.number("StressEnergyPerAtom", preset.stress_energy_per_atom),
        ),
        optimize_lattice=optimize_lattice,
    )


def _properties(block: Block | None, source: str, task: str, atoms: Atoms) -> PropertiesSettings:
    values = _Values(block, source)
    settings = PropertiesSettings(
        gradients=values.flag("Gradients"),
        stress_tensor=values.flag("StressTensor"),
        hessian=values.flag("Hessian"),
        normal_modes=values.flag("NormalModes"),
    )
    if block is None or not settings.any:
        return settings
    if task == "MolecularDynamics":
        raise InputError(
            f"{source}, line {block.line}: Properties are computed for SinglePoint and GeometryOptimization"
        )
    if settings.stress_tensor and not atoms.pbc.all():
        line = block.keys["StressTensor"][1]
        raise values.error("StressTensor", line, "needs a system with 3 lattice vectors")
    return settings
