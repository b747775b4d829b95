"""Interval estimates for leaderboard scores, as RL papers report them (Agarwal et al., "Deep RL at the
Edge of the Statistical Precipice", NeurIPS 2021): the interquartile mean (IQM) of a policy's episodes,
a 95 % stratified bootstrap confidence interval for it, and the probability of improvement over the
reference policy.

The estimators follow ``rliable`` (Apache-2.0), written here with numpy: ``rliable`` 1.2 pins
``arch < 8``, whose releases for this Python fail to import next to the pandas that Ray installs, so it
does not install cleanly beside our dependencies.

- **IQM**: the mean of the middle 50 % of the samples (``scipy.stats.trim_mean(x, 0.25)``): robust to
  outlier episodes, less noisy than the median.
- **Stratified bootstrap**: strata are the task's instances; each replicate resamples the seeds of every
  instance with replacement (so every instance keeps its weight), and the CI is the percentile interval
  of the replicated IQMs. When an instance has a single seed there is nothing to resample within it, so
  the replicates resample instances instead (an ordinary bootstrap over instances); ``method`` says which.
- **Probability of improvement** P(X > Y): per instance, the Mann-Whitney statistic of X's seeds against
  Y's (ties count 1/2, "better" in the task's direction), averaged over the instances both ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import trim_mean

__all__ = ["IntervalEstimate", "iqm", "interval_estimate", "probability_of_improvement"]

#: Bootstrap replicates: enough that the 2.5 % / 97.5 % percentiles move by < 1 % of the interval width.
BOOTSTRAP_REPS = 2000
CONFIDENCE = 0.95


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half (25 % trimmed from each end)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("iqm of no values")
    return float(trim_mean(x, 0.25))


@dataclass(frozen=True)
class IntervalEstimate:
    iqm: float
    ci_low: float
    ci_high: float
    n_samples: int
    method: str  # "stratified bootstrap over seeds" | "bootstrap over instances" | "single sample"


def interval_estimate(samples: Mapping[str, Sequence[float]], reps: int = BOOTSTRAP_REPS,
                      confidence: float = CONFIDENCE, seed: int = 0) -> IntervalEstimate:
    """IQM of all ``samples`` (instance -> per-seed values) and its bootstrap confidence interval.

    Deterministic for a given ``seed`` (the leaderboard renders byte-identical pages).
    """
    strata = [np.asarray(v, dtype=np.float64) for _, v in sorted(samples.items()) if len(v)]
    if not strata:
        raise ValueError("interval_estimate needs at least one sample")
    pooled = np.concatenate(strata)
    point = iqm(pooled)
    if pooled.size == 1:
        return IntervalEstimate(point, point, point, 1, "single sample")
    rng = np.random.default_rng(seed)
    if all(s.size >= 2 for s in strata):
        method = "stratified bootstrap over seeds"
        # one replicate = every instance's seeds resampled with replacement; all replicates at once
        parts = [s[rng.integers(0, s.size, size=(reps, s.size))] for s in strata]
        replicates = np.concatenate(parts, axis=1)
    else:
        method = "bootstrap over instances"
        replicates = pooled[rng.integers(0, pooled.size, size=(reps, pooled.size))]
    stats = trim_mean(replicates, 0.25, axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return IntervalEstimate(point, float(low), float(high), int(pooled.size), method)


def probability_of_improvement(x: Mapping[str, Sequence[float]], y: Mapping[str, Sequence[float]],
                               direction: str) -> float | None:
    """P(a run of X beats a run of Y) averaged over their common instances; None without one."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    sign = 1.0 if direction == "max" else -1.0
    per_instance = []
    for inst in sorted(set(x) & set(y)):
        a = sign * np.asarray(x[inst], dtype=np.float64)[:, None]
        b = sign * np.asarray(y[inst], dtype=np.float64)[None, :]
        if a.size == 0 or b.size == 0:
            continue
        per_instance.append(float(np.mean((a > b) + 0.5 * (a == b))))
    return float(np.mean(per_instance)) if per_instance else None
