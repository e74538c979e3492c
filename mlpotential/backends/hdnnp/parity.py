"""Parity plots of a trained model: predicted against reference energies
(per atom, relative to the fitted element reference energies) and force
components, one colour per data set, RMSEs in the legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_COLOURS = {"train": "tab:blue", "validation": "tab:orange", "test": "tab:red"}


def parity_plot(
    predictions: dict[str, dict[str, np.ndarray]], errors: dict[str, dict[str, float]], path: str | Path
) -> Path:
    """Write a PNG with an energy panel and, when forces exist, a force
    panel. ``predictions``/``errors`` as in :class:`~mlpotential.backends.hdnnp.training.TrainingResult`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    with_forces = any("forces_reference" in arrays for arrays in predictions.values())
    figure, axes = plt.subplots(1, 2 if with_forces else 1, figsize=(10 if with_forces else 5, 4.8), squeeze=False)
    panels = [("energy_per_atom", "energy per atom (eV)", "energy_rmse", 1000.0, "meV/atom")]
    if with_forces:
        panels.append(("forces", "force component (eV/Å)", "force_rmse", 1.0, "eV/Å"))
    for axis, (key, label, error_key, factor, unit) in zip(axes[0], panels):
        low, high = np.inf, -np.inf
        for name, arrays in predictions.items():
            if f"{key}_reference" not in arrays:
                continue
            reference, predicted = arrays[f"{key}_reference"], arrays[f"{key}_predicted"]
            rmse = errors[name].get(error_key, float("nan")) * factor
            axis.scatter(
                reference, predicted, s=6, alpha=0.6, color=_COLOURS.get(name), label=f"{name}: RMSE {rmse:.3g} {unit}"
            )
            low, high = min(low, reference.min(), predicted.min()), max(high, reference.max(), predicted.max())
        if np.isfinite(low):
            axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        axis.set_xlabel(f"reference {label}")
        axis.set_ylabel(f"predicted {label}")
        axis.legend(fontsize=8)
    axes[0][0].set_title("energies relative to element references")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
