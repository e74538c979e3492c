"""``mlpotential train CONFIG``: train a native HDNNP model from a YAML
config (format: docs/hdnnp.md, or mlpotential.backends.hdnnp.config), in
one process, on ``--nproc`` local ranks, or as one rank of a torchrun job;
``--committee K`` trains K members."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.inputs import Range

PROCESS_COUNTS = Range(1, 4096)
COMMITTEE_SIZES = Range(2, 1000)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential train",
        description="Train a native HDNNP (Behler-Parrinello) model on energies and forces. "
        "The config (YAML) names the data, the descriptor, the network and the training stages; "
        "see docs/hdnnp.md. Started by torchrun, each process is one rank of a distributed run.",
    )
    parser.add_argument("config", help="training config file (YAML)")
    parser.add_argument("--device", help="override training.device (cpu, cuda, cuda:N)")
    parser.add_argument(
        "--threads", type=int, help=f"override training.threads (CPU threads, {THREAD_COUNTS.describe()})"
    )
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument(
        "--nproc",
        type=int,
        help="processes on this machine: ranks of distributed data-parallel training (one GPU each on CUDA), "
        "or with --committee how many members train at once (default: as many as there are cores)",
    )
    parser.add_argument(
        "--committee", type=int, metavar="K", help="train K members (seeds seed, seed+1, ...) on one split"
    )
    parser.add_argument("--bootstrap", action="store_true", help="with --committee: each member on a resample")
    parser.add_argument("--store", help="descriptor store file (overrides output.descriptor_store)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for option, allowed in (("nproc", PROCESS_COUNTS), ("committee", COMMITTEE_SIZES)):
        value = getattr(args, option)
        if value is not None and value not in allowed:
            parser.error(f"--{option} must be {allowed.describe()}, not {value}")
    if args.bootstrap and args.committee is None:
        parser.error("--bootstrap needs --committee K")

    from mlpotential.atomistic.structures import DataError
    from mlpotential.backends.hdnnp.config import ConfigError, load_config
    from mlpotential.backends.hdnnp.processes import ProcessFailed
    from mlpotential.errors import EngineSetupError
    from mlpotential.inputs import BadValue

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mlpotential train: error: {exc}", file=sys.stderr)
        return 2
    overrides = {
        "device": args.device,
        "threads": args.threads,
        "seed": args.seed,
        "progress": False if args.quiet else None,
        "descriptor_store": Path(args.store).absolute() if args.store else None,
    }
    try:
        # the config's own checks judge the options too
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    except BadValue as exc:
        parser.error(f"--{exc.key} {exc.problem}")
    try:
        results, is_main = _run(config, args)
    except (ConfigError, DataError) as exc:
        print(f"mlpotential train: error: {exc}", file=sys.stderr)
        return 2
    except EngineSetupError as exc:
        print(f"mlpotential train: error: {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, FloatingPointError, OSError, ProcessFailed) as exc:
        print(f"mlpotential train: error: {exc}", file=sys.stderr)
        return 1
    if is_main:
        print("\n\n".join(_summary(result) for result in results))
        if args.committee is not None:
            from mlpotential.backends.hdnnp.parallel_training import engine_block

            print(f"\nthe committee's engine block:\n{engine_block(results)}")
    return 0


def _run(config, args) -> tuple[list, bool]:
    """Train as asked: the results and whether this process reports them
    (rank 0 of a torchrun job; always otherwise)."""
    from mlpotential.backends.hdnnp import parallel_training
    from mlpotential.backends.hdnnp.ranks import joined, launched_ranks
    from mlpotential.backends.hdnnp.training import train
    from mlpotential.backends.runtime import torch_device

    if launched_ranks().distributed:
        if args.nproc is not None:
            raise ValueError("--nproc is for starting ranks here; under torchrun, torchrun starts them")
        with joined(torch_device(config.device)) as ranks:
            if args.committee is not None:
                members = parallel_training.train_committee_on_ranks(config, args.committee, args.bootstrap, ranks)
                return members, ranks.is_main
            return [train(config, ranks=ranks)], ranks.is_main
    if args.committee is not None:
        return parallel_training.train_committee(config, args.committee, args.bootstrap, args.nproc), True
    if args.nproc is not None and args.nproc > 1:
        return [parallel_training.train_in_processes(config, args.nproc)], True
    return [train(config)], True


def _summary(result) -> str:
    rows = ["set         structures  E RMSE (meV/atom)  E MAE (meV/atom)  F RMSE (eV/A)  F MAE (eV/A)"]
    for name, errors in result.errors.items():
        force_rmse = errors.get("force_rmse")
        force_mae = errors.get("force_mae")
        rows.append(
            f"{name:<11s} {errors['structures']:>10d}  {errors['energy_rmse'] * 1000:>17.3f}  "
            f"{errors['energy_mae'] * 1000:>16.3f}  "
            f"{'-' if force_rmse is None else f'{force_rmse:.4f}':>13s}  "
            f"{'-' if force_mae is None else f'{force_mae:.4f}':>12s}"
        )
    report = result.report
    seconds = report["seconds"]
    rows.append(
        f"descriptors {seconds['descriptors']:.1f} s (cache hits {report['descriptor_cache']['hits']}), "
        f"fit {seconds['fit']:.1f} s, {report['epochs']} epochs (best {report['best_epoch']}), "
        f"{report['ranks']} rank(s)"
    )
    rows.append(_store_line(report["descriptor_cache"]))
    rows.append(f"model: {result.model_path}")
    if result.parity_plot is not None:
        rows.append(f"parity plot: {result.parity_plot}")
    return "\n".join(rows)


def _store_line(cache: dict) -> str:
    if cache["path"] is None:
        return "descriptor store: none (in memory)"
    paths = cache.get("paths") or [cache["path"]]
    where = paths[0] if len(paths) == 1 else f"{len(paths)} files, one per rank, {paths[0]} ..."
    return f"descriptor store: {where} ({cache['bytes'] / 1e6:.1f} MB)"
