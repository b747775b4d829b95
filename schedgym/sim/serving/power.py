"""Power telemetry of serving fleets at any instant, and clock changes that keep the energy exact.

The kernels account a replica's energy when an iteration *ends*, at the phase power of that iteration
(:func:`~schedgym.sim.serving.kernels.phase_power_w`: idle + dynamic SM power ~ f^alpha, decode keeping
its HBM share). A power meter reads energy continuously, so this module adds the part of the iteration
in flight:

    E_dyn(t) = E_accounted - idle x GPUs x busy_accounted                 (released replicas included)
             + (t - iteration_start) x GPUs x (phase_power(kind, f) - idle)   if busy at t

``E_dyn`` is the cumulative *dynamic* GPU energy (above idle) of a fleet; the power over ``[t0, t1)`` is
``(E_dyn(t1) - E_dyn(t0)) / (t1 - t0)`` plus the idle draw. :func:`set_frequency_at` changes a
replica's clock at ``t`` in the middle of an iteration: the iteration keeps the duration it was composed
with (the new clock shapes the next iteration's time), but its power switches at ``t``, so the energy the
kernel will account at the iteration's end is corrected by ``(t - start) x GPUs x (P(f_old) - P(f_new))``.
With that, the per-interval powers sum exactly to the fleet's accounted energy (tested).

Used by PowerCapping (per-second row power, frequency caps and the power brake); nothing here changes
what GPUAutoscaling or AgentScheduling simulate.
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.sim.serving.kernels import phase_power_w
from schedgym.sim.serving.params import PF_IDLE_W, PI_GPUS
from schedgym.sim.serving.state import (
    EF_GONE_BUSY_S,
    EF_GONE_ENERGY_J,
    EF_GONE_PREFILL_S,
    KIND_MIXED,
    R_EMPTY,
    RF_BUSY_S,
    RF_ENERGY_J,
    RF_FREQ,
    RF_ITER_START,
    RF_LAZY_UNTIL,
    RF_PREFILL_S,
    RI_BUSY,
    RI_KIND,
    RI_STATE,
)

__all__ = ["dynamic_energy_j", "set_frequency_at"]


@numba.njit(cache=True)
def dynamic_energy_j(t: float, pi: np.ndarray, pf: np.ndarray, ri: np.ndarray, rf: np.ndarray, ef: np.ndarray,
                     out_energy_j: np.ndarray, out_prefill_s: np.ndarray) -> None:
    """Per fleet ``e``: cumulative dynamic GPU energy (J, above idle) and prefill seconds up to ``t``.

    Every fleet must have been advanced to ``t`` (iterations ending at or before ``t`` accounted).
    """
    gpus = pi[PI_GPUS]
    idle = pf[PF_IDLE_W]
    for e in range(ri.shape[0]):
        energy = ef[e, EF_GONE_ENERGY_J] - idle * gpus * ef[e, EF_GONE_BUSY_S]
        prefill = ef[e, EF_GONE_PREFILL_S]
        for r in range(ri.shape[1]):
            if ri[e, r, RI_STATE] == R_EMPTY:
                continue
            energy += rf[e, r, RF_ENERGY_J] - idle * gpus * rf[e, r, RF_BUSY_S]
            prefill += rf[e, r, RF_PREFILL_S]
            if ri[e, r, RI_BUSY] == 1:
                dt = t - rf[e, r, RF_ITER_START]
                if dt > 0.0:
                    kind = ri[e, r, RI_KIND]
                    energy += dt * gpus * (phase_power_w(kind, rf[e, r, RF_FREQ], pf) - idle)
                    if kind == KIND_MIXED:
                        prefill += dt
        out_energy_j[e] = energy
        out_prefill_s[e] = prefill


@numba.njit(cache=True)
def set_frequency_at(e: int, r: int, t: float, freq: float, pi: np.ndarray, pf: np.ndarray, ri: np.ndarray,
                     rf: np.ndarray) -> None:
    """Set replica ``r`` of fleet ``e`` to clock ``freq`` (fraction of max, (0, 1]) at time ``t``.

    The fleet must have been advanced to ``t``. See the module docstring for the energy correction.
    """
    old = rf[e, r, RF_FREQ]
    if old == freq:
        return
    if ri[e, r, RI_BUSY] == 1:
        dt = t - rf[e, r, RF_ITER_START]
        if dt > 0.0:
            kind = ri[e, r, RI_KIND]
            rf[e, r, RF_ENERGY_J] += dt * pi[PI_GPUS] * (phase_power_w(kind, old, pf) - phase_power_w(kind, freq, pf))
    rf[e, r, RF_FREQ] = freq
    rf[e, r, RF_LAZY_UNTIL] = 0.0  # a new clock ends the decode run at the next boundary
