"""The end of a molecular-dynamics run: its statistics (temperature, energy
drift, uncertainty) and a plot of energies and temperature against time.

Energies in eV, times in fs, temperatures in K; the drift is the slope of a
straight line fitted to the conserved energy, per atom, in eV/atom/ps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlpotential.driver.results import replace_atomically


@dataclass
class MDSeries:
    """One row per step: time (fs), potential, kinetic and total energy
    (eV), the integrator's conserved energy (eV, NaN where it has none) and
    the temperature (K)."""

    time_fs: list[float] = field(default_factory=list)
    potential: list[float] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    conserved: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)

    def add(
        self, time_fs: float, potential: float, kinetic: float, conserved: float | None, temperature: float
    ) -> None:
        self.time_fs.append(time_fs)
        self.potential.append(potential)
        self.kinetic.append(kinetic)
        self.conserved.append(np.nan if conserved is None else conserved)
        self.temperature.append(temperature)

    def __len__(self) -> int:
        return len(self.time_fs)


def drift_per_atom_per_ps(time_fs: np.ndarray, energy: np.ndarray, atoms: int) -> float | None:
    """Slope of the least-squares line through ``energy`` (eV) against time,
    in eV per atom per ps; None with fewer than two finite points."""
    finite = np.isfinite(energy)
    if finite.sum() < 2 or np.ptp(time_fs[finite]) == 0:
        return None
    slope_per_fs = np.polyfit(time_fs[finite], energy[finite], 1)[0]
    return float(slope_per_fs * 1000.0 / atoms)


def md_statistics(series: MDSeries, atoms: int, dof: int) -> dict[str, Any]:
    """Mean and standard deviation of the temperature (from the second row
    on: the first is the initial state), and the drift of the conserved
    energy (None for Langevin and Berendsen, which conserve nothing)."""
    temperature = np.array(series.temperature[1:] or series.temperature)
    time_fs = np.array(series.time_fs)
    return {
        "degrees_of_freedom": dof,
        "temperature_mean_k": float(temperature.mean()),
        "temperature_std_k": float(temperature.std()),
        "kinetic_energy_std_ev": float(np.std(series.kinetic[1:] or series.kinetic)),
        "conserved_energy_drift_ev_per_atom_per_ps": drift_per_atom_per_ps(time_fs, np.array(series.conserved), atoms),
        "simulated_time_ps": float(time_fs[-1] - time_fs[0]) / 1000.0 if len(time_fs) else 0.0,
    }


@dataclass
class MDRun:
    """An MD run as the driver records it, summarised however it ends
    (completed, failed or interrupted): its steps, degrees of freedom, the
    thermostat's target temperature (K; None without one) and its settings
    for the summary."""

    series: MDSeries
    dof: int
    target_temperature: float | None
    settings: dict[str, Any]

    def finish(self, directory: Path, atoms: int) -> dict[str, Any]:
        """Print the statistics of the steps done and write ``md.png`` in
        ``directory``; returns the settings and statistics for the summary."""
        found = dict(self.settings)
        if len(self.series):
            statistics = md_statistics(self.series, atoms, self.dof)
            for line in describe_statistics(statistics):
                print(line, flush=True)
            found.update(statistics)
        if len(self.series) > 1:
            write_md_plot(self.series, directory / "md.png", self.target_temperature)
        return found


def describe_statistics(statistics: dict[str, Any]) -> list[str]:
    """The lines ``mlpotential run`` prints at the end of an MD run."""
    lines = [
        f"Temperature: mean {statistics['temperature_mean_k']:.2f} K, "
        f"standard deviation {statistics['temperature_std_k']:.2f} K "
        f"({statistics['degrees_of_freedom']} degrees of freedom)"
    ]
    drift = statistics["conserved_energy_drift_ev_per_atom_per_ps"]
    if drift is not None:
        lines.append(f"Conserved-energy drift: {drift:.3e} eV/atom/ps")
    return lines


def write_md_plot(series: MDSeries, path: Path, target_temperature: float | None) -> None:
    """Energies (relative to their first value) and temperature against
    time, as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time_ps = np.array(series.time_fs) / 1000.0
    figure, (energy_axes, temperature_axes) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    potential = np.array(series.potential)
    kinetic = np.array(series.kinetic)
    total = potential + kinetic
    energy_axes.plot(time_ps, potential - potential[0], label="potential")
    energy_axes.plot(time_ps, kinetic - kinetic[0], label="kinetic")
    energy_axes.plot(time_ps, total - total[0], label="total")
    conserved = np.array(series.conserved)
    if np.isfinite(conserved).all():
        energy_axes.plot(time_ps, conserved - conserved[0], label="conserved", linestyle="--")
    energy_axes.set_ylabel("energy - first value (eV)")
    energy_axes.legend(loc="best")
    temperature_axes.plot(time_ps, series.temperature, label="temperature")
    if target_temperature is not None:
        temperature_axes.axhline(target_temperature, color="black", linestyle=":", label="target")
    temperature_axes.set_xlabel("time (ps)")
    temperature_axes.set_ylabel("temperature (K)")
    temperature_axes.legend(loc="best")
    figure.tight_layout()
    try:
        replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    finally:
        plt.close(figure)
