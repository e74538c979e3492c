"""Training in several processes on this machine: one model on N ranks
(``mlpotential train --nproc N``) and committees (``--committee K``), whose
members train in parallel processes where there are cores for them.

>>> from mlpotential.backends.hdnnp.parallel_training import train_committee, train_in_processes
>>> result = train_in_processes(load_config("train.yaml"), nproc=4)
>>> members = train_committee(load_config("train.yaml"), size=4, bootstrap=True)
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import torch

from mlpotential.backends.hdnnp.config import TrainingConfig
from mlpotential.backends.hdnnp.processes import Task, run_tasks
from mlpotential.backends.hdnnp.ranks import Ranks
from mlpotential.backends.hdnnp.training import TrainingResult, store_descriptors, train
from mlpotential.errors import BackendUnavailableError


def train_in_processes(config: TrainingConfig, nproc: int) -> TrainingResult:
    """Train one model on ``nproc`` ranks on this machine (gloo on CPU, one
    GPU per rank on CUDA); each rank gets an equal share of the CPU threads
    unless ``config.threads`` says. Raises
    :class:`~mlpotential.backends.hdnnp.processes.ProcessFailed` naming the
    first rank that fails."""
    if config.device.startswith("cuda") and torch.cuda.device_count() < nproc:
        raise BackendUnavailableError(
            "device", f"{nproc} ranks on CUDA need {nproc} GPUs; {torch.cuda.device_count()} are visible"
        )
    config = dataclasses.replace(config, threads=config.threads or _threads_each(nproc))
    port = _free_port()
    tasks = [
        Task(
            f"rank {rank}",
            _train_rank,
            (config,),
            {
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(nproc),
                "LOCAL_WORLD_SIZE": str(nproc),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
        )
        for rank in range(nproc)
    ]
    return run_tasks(tasks, at_once=nproc)[0]


def _train_rank(config: TrainingConfig) -> TrainingResult | None:
    """A rank's work: train; rank 0 sends the result back (all ranks hold the same)."""
    result = train(config)
    return result if int(os.environ["RANK"]) == 0 else None


def committee_configs(config: TrainingConfig, size: int, bootstrap: bool) -> list[TrainingConfig]:
    """The members of a committee of ``size``: seeds ``seed``, ``seed + 1``,
    ... (initial weights, batch order and, with ``bootstrap``, the resample),
    one split (the config's), files numbered ``model-0.pt``, ``report-0.json``, ..."""
    split_seed = config.seed if config.split_seed is None else config.split_seed
    return [
        dataclasses.replace(
            config,
            seed=config.seed + member,
            split_seed=split_seed,
            bootstrap=bootstrap,
            model_path=member_path(config.model_path, member),
            report=member_path(config.report, member),
            parity_plot=member_path(config.parity_plot, member),
        )
        for member in range(size)
    ]


def member_path(path: Path | None, member: int) -> Path | None:
    """``model.pt`` -> ``model-0.pt`` (None stays None)."""
    return None if path is None else path.with_name(f"{path.stem}-{member}{path.suffix}")


def train_committee(
    config: TrainingConfig, size: int, bootstrap: bool = False, parallel: int | None = None
) -> list[TrainingResult]:
    """Train the :func:`committee_configs` members, ``parallel`` at a time
    (default: as many as there are cores, at most ``size``), each with an
    equal share of the cores. The descriptors are computed once, first, into
    the store the members then read."""
    members = committee_configs(config, size, bootstrap)
    parallel = max(1, min(size, parallel or os.cpu_count() or 1))
    if config.store_path() is not None:
        store_descriptors(config)
    threads = config.threads or _threads_each(parallel)
    members = [dataclasses.replace(member, threads=threads) for member in members]
    if parallel == 1:
        return [train(member) for member in members]
    return run_tasks([Task(f"member {k}", train, (member,)) for k, member in enumerate(members)], at_once=parallel)


def train_committee_on_ranks(config: TrainingConfig, size: int, bootstrap: bool, ranks: Ranks) -> list[TrainingResult]:
    """The members one after another, each on all the ranks of a torchrun job."""
    return [train(member, ranks=ranks) for member in committee_configs(config, size, bootstrap)]


def engine_block(results: Sequence[TrainingResult]) -> str:
    """The Engine block that serves the trained members as a committee."""
    lines = ["Engine MLPotential", "  Backend HDNNP"]
    lines += [f"  ParameterFile {result.model_path.resolve()}" for result in results]
    return "\n".join([*lines, "EndEngine"])


def _threads_each(processes: int) -> int:
    return max(1, (os.cpu_count() or 1) // processes)


def _free_port() -> int:
    """A TCP port free on the loopback interface now, for rank 0's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
