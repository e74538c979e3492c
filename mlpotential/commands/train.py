"""``mlpotential train CONFIG``: train a native HDNNP model from a YAML
config (format: docs/hdnnp.md, or mlpotential.backends.hdnnp.config)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from mlpotential.backends.runtime import THREAD_COUNTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential train",
        description="Train a native HDNNP (Behler-Parrinello) model on energies and forces. "
        "The config (YAML) names the data, the descriptor, the network and the training stages; "
        "see docs/hdnnp.md.",
    )
    parser.add_argument("config", help="training config file (YAML)")
    parser.add_argument("--device", help="override training.device (cpu, cuda, cuda:N)")
    parser.add_argument(
        "--threads", type=int, help=f"override training.threads (CPU threads, {THREAD_COUNTS.describe()})"
    )
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from mlpotential.atomistic.structures import DataError
    from mlpotential.backends.hdnnp.config import ConfigError, load_config
    from mlpotential.backends.hdnnp.training import train
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
    }
    try:
        # the config's own checks judge the options too
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    except BadValue as exc:
        parser.error(f"--{exc.key} {exc.problem}")
    try:
        result = train(config)
    except (ConfigError, DataError) as exc:
        print(f"mlpotential train: error: {exc}", file=sys.stderr)
        return 2
    except EngineSetupError as exc:
        print(f"mlpotential train: error: {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, FloatingPointError) as exc:
        print(f"mlpotential train: error: {exc}", file=sys.stderr)
        return 1

    print(_summary(result))
    return 0


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
    seconds = result.report["seconds"]
    rows.append(
        f"descriptors {seconds['descriptors']:.1f} s (cache hits {result.report['descriptor_cache']['hits']}), "
        f"fit {seconds['fit']:.1f} s, {result.report['epochs']} epochs (best {result.report['best_epoch']})"
    )
    rows.append(f"model: {result.model_path}")
    if result.parity_plot is not None:
        rows.append(f"parity plot: {result.parity_plot}")
    return "\n".join(rows)
