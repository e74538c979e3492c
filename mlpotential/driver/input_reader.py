"""Reader for AMS-style input: keys, blocks closed by ``End``, and the
``Engine MLPotential ... EndEngine`` block.

Names are case-insensitive; comments start with ``#``, ``!`` or ``::``. The
reader knows which keys and blocks exist (:data:`JOB_SCHEMA`), so a
misspelt key or block is an :class:`InputError` naming its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlpotential.backends.keywords import KEYWORDS, REPEATABLE_KEYWORDS
from mlpotential.inputs import read_text
from mlpotential.names import canonical_name


class InputError(ValueError):
    """A problem in an input file; the message names the file and line."""


@dataclass(frozen=True)
class BlockSchema:
    """Which keys and sub-blocks a block may hold. A ``free`` block holds
    raw lines (atoms, lattice vectors). ``end`` is its closing word.
    ``repeatable`` keys may be given on several lines (a committee's
    ParameterFile lines)."""

    keys: tuple[str, ...] = ()
    blocks: dict[str, BlockSchema] = field(default_factory=dict)
    free: bool = False
    end: str = "End"
    header: tuple[str, ...] = ()
    repeatable: tuple[str, ...] = ()


@dataclass
class Block:
    """A parsed block: ``header`` is the text after its name on the opening
    line; ``keys`` maps canonical key names to (value, line number) of their
    first line, ``repeats`` a repeatable key to the (value, line number) of
    its further lines."""

    name: str
    header: str = ""
    line: int = 0
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)
    repeats: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    lines: list[tuple[int, str]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        entry = self.keys.get(key)
        return entry[0] if entry else default


WORKER_COMMAND = "WorkerCommand"
"""The one key of ``Engine Pipe``: the command of any AMS-compatible worker."""

ENGINE_SCHEMA = BlockSchema(
    keys=(*KEYWORDS, WORKER_COMMAND), end="EndEngine", header=("MLPotential", "Pipe"), repeatable=REPEATABLE_KEYWORDS
)
"""``Engine MLPotential`` (the engine keywords) or ``Engine Pipe`` (WorkerCommand);
the job reader checks which keys belong to which."""
JOB_SCHEMA = BlockSchema(
    keys=("Task",),
    blocks={
        "System": BlockSchema(
            keys=("GeometryFile", "Charge"),
            blocks={"Atoms": BlockSchema(free=True), "Lattice": BlockSchema(free=True)},
        ),
        "Engine": ENGINE_SCHEMA,
        "GeometryOptimization": BlockSchema(
            keys=("MaxIterations", "Method", "OptimizeLattice"),
            blocks={"Convergence": BlockSchema(keys=("Energy", "Gradients", "Step", "StressEnergyPerAtom", "Quality"))},
        ),
        "Properties": BlockSchema(keys=("Gradients", "StressTensor", "Hessian", "NormalModes")),
        "MolecularDynamics": BlockSchema(
            keys=("NSteps", "TimeStep"),
            blocks={
                "InitialVelocities": BlockSchema(keys=("Type", "Temperature", "RandomSeed")),
                "Thermostat": BlockSchema(keys=("Type", "Temperature", "Tau", "Friction", "ChainLength", "RandomSeed")),
                "Barostat": BlockSchema(keys=("Type", "Pressure", "Tau", "BulkModulus")),
                "Trajectory": BlockSchema(keys=("SamplingFreq",)),
            },
        ),
    },
)

_COMMENT = re.compile(r"(#|!|::).*$")


def parse_input(text: str, source: str = "<input>", schema: BlockSchema = JOB_SCHEMA) -> Block:
    """Parse AMS-style text into a tree of :class:`Block` (the root has name "")."""
    root = Block("", line=0)
    stack: list[tuple[Block, BlockSchema]] = [(root, schema)]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        block, block_schema = stack[-1]
        where = f"{source}, line {number}"
        if len(stack) > 1 and word.lower() == block_schema.end.lower():
            if rest:
                raise InputError(f"{where}: unexpected text after {block_schema.end}: {rest!r}")
            stack.pop()
            continue
        if block_schema.free:
            block.lines.append((number, line))
            continue
        if word.lower() == "end" or word.lower().startswith("end"):
            opened = (
                f"block {block.name} (line {block.line}) is closed by {block_schema.end}"
                if block.name
                else "no block is open"
            )
            raise InputError(f"{where}: unexpected {word}: {opened}")
        block_name = canonical_name(word, block_schema.blocks)
        if block_name is not None:
            child_schema = block_schema.blocks[block_name]
            if block_name in block.blocks:
                raise InputError(
                    f"{where}: block {block_name} given twice (first at line {block.blocks[block_name].line})"
                )
            if child_schema.header and canonical_name(rest, child_schema.header) is None:
                raise InputError(
                    f"{where}: {block_name} {rest!r} is not supported; "
                    f"use {block_name} {' or '.join(child_schema.header)}"
                )
            child = Block(block_name, rest, number)
            block.blocks[block_name] = child
            stack.append((child, child_schema))
            continue
        key = canonical_name(word, block_schema.keys)
        if key is None:
            inside = f"block {block.name}" if block.name else "the input"
            allowed = list(block_schema.keys) + [f"{name} (block)" for name in block_schema.blocks]
            raise InputError(f"{where}: unknown key or block {word!r} in {inside}; allowed: {', '.join(allowed)}")
        if key in block.keys and key in block_schema.repeatable:
            block.repeats.setdefault(key, []).append((rest, number))
            continue
        if key in block.keys:
            raise InputError(f"{where}: key {key} given twice (first at line {block.keys[key][1]})")
        block.keys[key] = (rest, number)
    if len(stack) > 1:
        block, block_schema = stack[-1]
        raise InputError(
            f"{source}: block {block.name} opened at line {block.line} is not closed by {block_schema.end}"
        )
    return root


def read_input(path: str | Path) -> Block:
    """Parse an input file (see :func:`parse_input`)."""
    path = Path(path)
    return parse_input(read_text(path, InputError), str(path))


def engine_keywords(root: Block) -> dict[str, str | list[str]]:
    """The keywords of the ``Engine MLPotential`` block (empty when absent)."""
    engine = root.blocks.get("Engine")
    return block_keywords(engine) if engine is not None else {}


def block_keywords(block: Block) -> dict[str, str | list[str]]:
    """A block's keys and values; a key given on several lines (a
    committee's ParameterFile) as a list."""
    keywords: dict[str, str | list[str]] = {key: value for key, (value, _) in block.keys.items()}
    for key, repeats in block.repeats.items():
        keywords[key] = [block.keys[key][0], *(value for value, _ in repeats)]
    return keywords
