"""The active-learning loop: iteration 0 labels the initial structures and
trains the first committee; each further iteration explores with the
committee, selects the frames it is unsure of, labels them (in parallel),
adds them to the dataset, retrains the committee (warm-started from the
previous one) and reports. It stops after ``iterations``, or earlier when
an iteration's explorations all complete without a candidate.

Restart: ``state.json`` in the results folder names the iteration and the
last stage completed, written atomically after each stage together with
what the stage produced (``iteration_NNN/summary.json``, the candidates,
the dataset, the models). An interrupted run, started again with the same
results folder, goes on from the stage after it. The exploration's random
numbers derive from the seed, the iteration and the run, so a resumed run
makes the same choices an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from mlpotential.atomistic.structures import Structure, load_structures
from mlpotential.learning.config import LearnConfig
from mlpotential.learning.dataset import append_frames, as_structures, labelled_frame, read_frames
from mlpotential.learning.exploration import Exploration, committee_engine, explore
from mlpotential.learning.labelling import DaskLabeller, Label, LocalLabeller
from mlpotential.learning.report import plot_errors, plot_uncertainty, read_json, write_json
from mlpotential.learning.selection import select_across
from mlpotential.learning.training import member_path, train_committee

STAGES = ("explored", "labelled", "trained", "reported")
"""An iteration's stages in order (iteration 0 has no exploration)."""


@dataclass(frozen=True)
class State:
    """Where a run stands: the iteration and its last completed stage (None:
    none yet), and whether an exploration found nothing more to learn."""

    iteration: int = 0
    stage: str | None = None
    converged: bool = False

    def done(self, iteration: int, stage: str) -> bool:
        if iteration != self.iteration:
            return iteration < self.iteration
        return self.stage is not None and STAGES.index(stage) <= STAGES.index(self.stage)


class Paths:
    """The files of a results folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state = folder / "state.json"
        self.dataset = folder / "dataset.xyz"
        self.test = folder / "test.xyz"
        self.descriptors = folder / "descriptors.sqlite"
        self.report = folder / "report.json"

    def iteration(self, number: int) -> Path:
        return self.folder / f"iteration_{number:03d}"

    def summary(self, number: int) -> Path:
        return self.iteration(number) / "summary.json"

    def candidates(self, number: int) -> Path:
        return self.iteration(number) / "candidates.xyz"

    def committee(self, number: int, size: int) -> list[Path]:
        return [member_path(self.iteration(number), member) for member in range(size)]


def read_state(paths: Paths) -> State:
    content = read_json(paths.state)
    return State(**content) if content else State()


class ActiveLearning:
    """One run of the loop on a results folder (``say`` prints progress)."""

    def __init__(
        self, config: LearnConfig, folder: Path, scheduler: str | None = None, say: Callable[[str], None] = print
    ) -> None:
        self.config = config
        self.paths = Paths(folder)
        self.say = say
        address = scheduler or config.reference.scheduler
        reference = config.reference.reference
        self.reference_calls = 0
        """Calculations asked of the reference in the current labelling stage."""
        self.labeller = (
            DaskLabeller(reference, address) if address else LocalLabeller(reference, config.reference.processes)
        )

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        """Run (or resume) the loop; returns the report."""
        self.paths.folder.mkdir(parents=True, exist_ok=True)
        state = read_state(self.paths)
        if state.stage is not None:
            self.say(f"resuming: iteration {state.iteration}, after its stage {state.stage!r}")
        last = self.config.iterations
        for iteration in range(state.iteration, last + 1):
            if state.converged and self.config.stop_when_converged:
                break
            self.paths.iteration(iteration).mkdir(parents=True, exist_ok=True)
            steps: list[tuple[str, Callable[[int], bool]]] = [
                ("explored", self._explore),
                ("labelled", self._label),
                ("trained", self._train),
                ("reported", self._report),
            ]
            for stage, action in steps:
                if state.done(iteration, stage) or (iteration == 0 and stage == "explored"):
                    continue
                converged = action(iteration) or state.converged
                state = State(iteration, stage, converged)
                write_json(self.paths.state, state.__dict__)
                if converged and stage == "explored":
                    self._report(iteration)
                    state = State(iteration, "reported", True)
                    write_json(self.paths.state, state.__dict__)
                    break
        report = read_json(self.paths.report)
        self.say(
            f"done: {'converged' if state.converged else 'iteration limit reached'}; "
            f"committee: {', '.join(report.get('final_committee', []))}"
        )
        return report

    # ---------------------------------------------------------------- stages
    def _explore(self, iteration: int) -> bool:
        """MD with the previous committee; writes the candidates and the
        exploration's curves. True when nothing is left to learn."""
        config = self.config
        starts = self._starts()
        committee = self._committee(iteration - 1)
        runs: list[Exploration] = []
        number = 0
        with committee_engine(committee, config.explore.threads) as engine:
            for temperature in config.explore.temperatures:
                for replica in range(config.explore.replicas):
                    rng = np.random.default_rng([config.explore.seed, iteration, number])
                    name, start = starts[int(rng.integers(len(starts)))]
                    run = explore(engine, start, name, temperature, replica, config.explore, config.criteria, rng)
                    runs.append(run)
                    number += 1
                    largest = max(u.max_force_std for u in run.uncertainties)
                    self.say(
                        f"iteration {iteration}: explored {run.name} from {name}: {len(run.frames) - 1} steps, "
                        f"{'completed' if run.completed else 'stopped at a failed frame'}, "
                        f"largest force std {largest:.3f} eV/A, candidates {run.classes.count('candidate')}"
                    )
        chosen = select_across([(run.uncertainties, run.classes) for run in runs], config.criteria)
        frames = []
        for run_number, index in chosen:
            frame = runs[run_number].frames[index].copy()
            frame.info["origin"] = f"iteration {iteration}, {runs[run_number].name}, step {index}"
            frames.append(frame)
        write(self.paths.candidates(iteration), frames, format="extxyz")
        converged = not frames and all(run.completed for run in runs)
        self._update_summary(
            iteration,
            explorations=[_exploration_summary(run) for run in runs],
            candidates=len(frames),
            largest_force_std=max(max(u.max_force_std for u in run.uncertainties) for run in runs),
            largest_energy_std_per_atom=max(max(u.energy_std_per_atom for u in run.uncertainties) for run in runs),
            converged=converged,
        )
        self.say(f"iteration {iteration}: {len(frames)} frames selected" + (" (converged)" if converged else ""))
        return converged

    def _label(self, iteration: int) -> bool:
        """Label the candidates (iteration 0: the initial structures and the
        test set) and rewrite the dataset with them."""
        self.reference_calls = 0
        if iteration == 0:
            frames, failures = self._initial_frames()
        else:
            candidates = read(self.paths.candidates(iteration), index=":", format="extxyz")
            frames, failures = self._labelled(candidates, iteration)
            self._update_summary(iteration, selected_errors=_committee_errors(frames))
        kept = [frame for frame in read_frames(self.paths.dataset) if frame.info["iteration"] < iteration]
        _replace_file(self.paths.dataset, [*kept, *frames])
        self._update_summary(
            iteration,
            frames_labelled=len(frames),
            failed_labels=failures,
            dataset_size=len(kept) + len(frames),
            reference_calls=self.reference_calls,
        )
        self.say(
            f"iteration {iteration}: labelled {len(frames)} frames"
            + (f", {len(failures)} failed" if failures else "")
            + f"; dataset {len(kept) + len(frames)} frames"
        )
        if not kept and not frames:
            raise RuntimeError("no initial structure could be labelled; see the errors above")
        return False

    def _train(self, iteration: int) -> bool:
        structures = as_structures(read_frames(self.paths.dataset))
        previous = self._committee(iteration - 1) if iteration > 0 else []
        results = train_committee(
            structures,
            self.config.model,
            self.paths.iteration(iteration),
            [Path(path) for path in previous],
            self.paths.descriptors,
        )
        train_rmse = [r.errors["train"].get("force_rmse") for r in results]
        training = {
            "members": [{"path": str(r.path), "epochs": r.epochs, "errors": r.errors} for r in results],
            "train_force_rmse": float(np.mean([v for v in train_rmse if v is not None])) if any(train_rmse) else None,
        }
        self._update_summary(iteration, training=training)
        test = read_frames(self.paths.test)
        if test:
            self._update_summary(iteration, test_errors=self._test_errors(iteration, test))
        self.say(f"iteration {iteration}: trained {len(results)} members on {len(structures)} frames")
        return False

    def _report(self, iteration: int) -> bool:
        entries = []
        for number in range(iteration + 1):
            summary = read_json(self.paths.summary(number))
            if summary:
                entries.append({"iteration": number, **summary})
                explorations = summary.get("explorations", [])
                if explorations:
                    plot_uncertainty(
                        explorations,
                        self.config.criteria,
                        self.paths.folder / f"uncertainty_{number:03d}.png",
                        f"iteration {number}: exploration with the committee of iteration {number - 1}",
                    )
        plot_errors(entries, self.paths.folder / "errors.png")
        final = self._final_committee(entries)
        write_json(
            self.paths.report,
            {
                "iterations": entries,
                "converged": bool(entries and entries[-1].get("converged")),
                "reference_calls": sum(e.get("reference_calls", 0) for e in entries),
                "final_committee": [str(path) for path in final],
            },
        )
        return False

    # --------------------------------------------------------------- helpers
    def _committee(self, iteration: int) -> list[str]:
        """The model files of the committee trained in ``iteration`` (or the
        latest before it: an iteration that converged trains none)."""
        for number in range(iteration, -1, -1):
            files = self.paths.committee(number, self.config.model.committee)
            if all(path.exists() for path in files):
                return [str(path) for path in files]
        raise RuntimeError(f"no trained committee up to iteration {iteration} in {self.paths.folder}")

    def _final_committee(self, entries: Sequence[dict[str, Any]]) -> list[str]:
        return self._committee(entries[-1]["iteration"]) if entries else []

    def _starts(self) -> list[tuple[str, Atoms]]:
        """The structures explorations start from: ``explore.start``, or the
        initial structures."""
        config = self.config
        if config.explore.start:
            structures = [s for source in config.explore.start for s in load_structures(source, config.base_dir)]
            return [(s.source, s.to_atoms()) for s in structures]
        initial = [frame for frame in read_frames(self.paths.dataset) if frame.info["iteration"] == 0]
        return [(frame.info.get("origin", f"initial {k}"), frame) for k, frame in enumerate(initial)]

    def _initial_frames(self) -> tuple[list[Atoms], list[str]]:
        """The initial structures with labels (theirs or the reference's);
        the test set is labelled now too."""
        config = self.config
        structures = [s for source in config.initial.sources for s in load_structures(source, config.base_dir)]
        frames, failures = self._with_labels(structures, relabel=config.initial.relabel)
        test = [s for source in config.test for s in load_structures(source, config.base_dir)]
        if test:
            test_frames, test_failures = self._with_labels(test, relabel=config.initial.relabel)
            _replace_file(self.paths.test, test_frames)
            failures += [f"test set: {failure}" for failure in test_failures]
        return frames, failures

    def _with_labels(self, structures: Sequence[Structure], relabel: bool) -> tuple[list[Atoms], list[str]]:
        ready = [s for s in structures if not relabel and s.energy is not None and s.forces is not None]
        frames = [
            labelled_frame(s.to_atoms(), Label(energy=s.energy, forces=s.forces), 0, s.source or "initial")
            for s in ready
        ]
        unlabelled = [s for s in structures if not any(s is r for r in ready)]
        atoms = []
        for s in unlabelled:
            frame = s.to_atoms()
            frame.info["origin"] = s.source or "initial"
            atoms.append(frame)
        labelled, failures = self._labelled(atoms, 0)
        return [*frames, *labelled], failures

    def _labelled(self, candidates: Sequence[Atoms], iteration: int) -> tuple[list[Atoms], list[str]]:
        """Reference labels for ``candidates``; a failed one is reported and
        left out."""
        labels = self.labeller.label(list(candidates))
        self.reference_calls += len(candidates)
        frames, failures = [], []
        for atoms, label in zip(candidates, labels):
            origin = atoms.info.get("origin", "")
            if not label.ok:
                failures.append(f"{origin}: {label.error}")
                self.say(f"iteration {iteration}: the reference failed on {origin}: {label.error}")
                continue
            frame = labelled_frame(atoms, label, iteration, origin)
            for key in ("committee_energy",):
                if key in atoms.info:
                    frame.info[key] = atoms.info[key]
            if "committee_forces" in atoms.arrays:
                frame.arrays["committee_forces"] = atoms.arrays["committee_forces"]
            frames.append(frame)
        return frames, failures

    def _test_errors(self, iteration: int, test: Sequence[Atoms]) -> dict[str, float]:
        """The new committee's errors and largest uncertainty on the test set."""
        committee = self._committee(iteration)
        predicted = []
        largest = 0.0
        with committee_engine(committee, self.config.explore.threads) as engine:
            for frame in test:
                atoms = frame.copy()
                atoms.calc = engine
                forces = atoms.get_forces()
                result = frame.copy()
                result.info["committee_energy"] = float(engine.results["energy"])
                result.arrays["committee_forces"] = np.array(forces)
                largest = max(largest, float(np.linalg.norm(engine.results["forces_std"], axis=1).max()))
                predicted.append(result)
        return {**_committee_errors(predicted), "largest_force_std": largest}

    def _update_summary(self, iteration: int, **facts: Any) -> None:
        path = self.paths.summary(iteration)
        write_json(path, {**read_json(path), **facts})


def _committee_errors(frames: Sequence[Atoms]) -> dict[str, float] | None:
    """Energy (eV/atom) and force (eV/Angstrom) RMSE of the committee's
    predictions stored in ``frames`` against their reference labels."""
    pairs = [f for f in frames if "committee_energy" in f.info and "committee_forces" in f.arrays]
    if not pairs:
        return None
    energy = [(f.info["committee_energy"] - f.info["REF_energy"]) / len(f) for f in pairs]
    forces = np.concatenate([(f.arrays["committee_forces"] - f.arrays["REF_forces"]).ravel() for f in pairs])
    return {
        "frames": len(pairs),
        "energy_rmse_per_atom": float(np.sqrt(np.mean(np.square(energy)))),
        "force_rmse": float(np.sqrt(np.mean(np.square(forces)))),
        "force_max_error": float(np.abs(forces).max()),
    }


def _exploration_summary(run: Exploration) -> dict[str, Any]:
    return {
        "name": run.name,
        "temperature": run.temperature,
        "replica": run.replica,
        "start": run.start,
        "steps_run": len(run.frames) - 1,
        "completed": run.completed,
        "classes": {kind: run.classes.count(kind) for kind in ("accurate", "candidate", "failed")},
        "max_force_std": [u.max_force_std for u in run.uncertainties],
        "energy_std_per_atom": [u.energy_std_per_atom for u in run.uncertainties],
        "min_distance": [u.min_distance for u in run.uncertainties],
    }


def _replace_file(path: Path, frames: Sequence[Atoms]) -> None:
    """Write ``frames`` to ``path`` atomically (extended XYZ)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    append_frames(temporary, frames)
    if not frames:
        temporary.touch()
    os.replace(temporary, path)
