"""Hyperparameter fitting and training-set filtering, as aenet-gpr 3.7.9
does them (so that ``fit_scale``/``fit_weight`` pick the same values).

* scale: the best of ``scale * 2^{-1, 0, 1}`` by log marginal likelihood
  plus a log-normal prior on the scale (centred at 0.4, width 0.5 in log
  space: aenet-gpr's choice, whatever the starting scale);
* weight: the closed-form maximum-likelihood signal amplitude,
  ``weight * sqrt((y - m)' K^-1 (y - m) / M)``, refused above 100;
* filter: drop structures whose flattened coordinates lie within a
  threshold (Angstrom) of an earlier kept one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlpotential.backends.gpr.dataset import StructureSubset
from mlpotential.backends.gpr.gp import GaussianProcess, IllConditionedError

SCALE_PRIOR_CENTER = 0.4
SCALE_PRIOR_WIDTH = 0.5
MAX_WEIGHT = 100.0


def fit_hyperparameters(gp: GaussianProcess, scale: bool, weight: bool, log: Callable[[str], None] = print) -> None:
    """Fit the scale and/or the weight as aenet-gpr does (the same choices),
    leaving ``gp`` fitted, with fewer factorisations: aenet-gpr factorises
    once before fitting, once per candidate scale, again for the best one and
    again for the new weight (six times); here a candidate scale's fit is the
    starting fit, the data-fit term of the best candidate gives the weight,
    and only the final hyperparameters are factorised again (four times)."""
    data_fit = choose_scale(gp, log=log) if scale else None
    if weight:
        if data_fit is None:
            gp.ensure_fitted()
            data_fit = gp.data_fit_term()
        set_weight(gp, data_fit, log=log)
    gp.ensure_fitted()


def choose_scale(
    gp: GaussianProcess, candidates: int = 3, factor: float = 2.0, log: Callable[[str], None] = print
) -> float | None:
    """Set the kernel scale to the best of ``candidates`` values spaced by
    ``factor`` around the current one; ``gp`` is left fitted with the last
    candidate that could be fitted. Returns the data-fit term (y - m)' K^-1
    (y - m) of the chosen scale, or None when no candidate could be fitted
    (the scale is then kept)."""
    current = gp.hyper.scale
    exponents = np.linspace(-1.0, 1.0, candidates) if candidates > 1 else np.zeros(1)
    choices = [current * factor**e for e in exponents]
    log(f"  candidate scales: {', '.join(f'{c:.6g}' for c in choices)}")
    best_scale, best_score, best_data_fit = current, -math.inf, None
    center = math.log(SCALE_PRIOR_CENTER)
    for scale in choices:
        gp.hyper.scale = scale
        try:
            gp.fit()
        except IllConditionedError as exc:
            log(f"  scale {scale:.6g} skipped: {exc}")
            continue
        log_scale = math.log(scale)
        log_prior = -0.5 * ((log_scale - center) / SCALE_PRIOR_WIDTH) ** 2 - log_scale
        score = gp.log_marginal_likelihood() + log_prior
        if score > best_score:
            best_scale, best_score, best_data_fit = scale, score, gp.data_fit_term()
    gp.hyper.scale = best_scale
    log(f"  scale: {best_scale:.6g}")
    return best_data_fit


def fit_scale(
    gp: GaussianProcess, candidates: int = 3, factor: float = 2.0, log: Callable[[str], None] = print
) -> float:
    """Choose the kernel scale among ``candidates`` values spaced by
    ``factor`` around the current one; leaves ``gp`` fitted with it."""
    choose_scale(gp, candidates, factor, log)
    gp.ensure_fitted()
    return gp.hyper.scale


def set_weight(gp: GaussianProcess, data_fit: float, log: Callable[[str], None] = print) -> float:
    """Set the kernel weight to its maximum-likelihood value given the
    data-fit term (y - m)' K^-1 (y - m) at the current weight (the covariance
    is weight^2 times a fixed matrix, up to the noise); keeps the old weight
    when the new one would exceed :data:`MAX_WEIGHT`. Does not refit."""
    old = gp.hyper.weight
    new = old * math.sqrt(data_fit / gp.num_observations)
    if not math.isfinite(new) or new >= MAX_WEIGHT:
        log(f"  weight {new:.6g} would be too high (limit {MAX_WEIGHT:g}); kept {old:.6g}")
        new = old
    gp.hyper.weight = new
    log(f"  weight: {new:.6g}")
    return new


def fit_weight(gp: GaussianProcess, log: Callable[[str], None] = print) -> float:
    """Scale the kernel weight to its maximum-likelihood value (see
    :func:`set_weight`); leaves ``gp`` fitted with it."""
    gp.ensure_fitted()
    new = set_weight(gp, gp.data_fit_term(), log)
    gp.ensure_fitted()
    return new


def filter_near_duplicates(subset: StructureSubset, threshold: float) -> tuple[StructureSubset, list[str]]:
    """Keep structures whose flattened coordinates are at least
    ``threshold`` (Angstrom) from every earlier kept one; returns the kept
    subset and the sources of the removed structures."""
    flat = subset.positions.reshape(len(subset), -1)
    kept: list[int] = []
    removed: list[int] = []
    for index in range(len(subset)):
        if kept and np.min(np.linalg.norm(flat[kept] - flat[index], axis=1)) < threshold:
            removed.append(index)
        else:
            kept.append(index)
    return subset.select(kept), [subset.sources[i] for i in removed]
