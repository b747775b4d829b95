"""Load calibration of PowerCapping rows against POLCA's production figures (Patel et al., ASPLOS'24).

POLCA measured inference rows that peak at 79 % of their provisioned power and whose largest power rise
within 40 s (the cap actuation delay) is 11.8 % of it. :func:`reference_row_power` runs the uncapped
reference row of an episode; :func:`largest_rise` measures the rise POLCA's thresholds are designed
around (T2 = 89 % + 11.8 % ~ the budget). ``benchmarks/power_calibration.py`` prints both per trace and
replication mode; ``tests/test_power_capping.py`` checks them.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from schedgym.envs.power_capping import power_model as pm

__all__ = ["POLCA_PEAK_FRAC", "POLCA_MAX_RISE_40S", "reference_row_power", "largest_rise"]

#: POLCA: an inference row peaks at 79 % of its provisioned power.
POLCA_PEAK_FRAC = 0.79
#: POLCA: the largest inference power rise within 40 s is 11.8 % of provisioned.
POLCA_MAX_RISE_40S = 0.118


def reference_row_power(workload: str, replication: str, seed: int, n_servers: int = 40) -> np.ndarray:
    """1-s power of the uncapped reference row (budget fractions) over one episode of a 40-server budget."""
    env = gym.make("schedgym/PowerCapping-v2", n_servers=n_servers, provisioned_servers=40, workload=workload,
                   trace_replication=replication)
    env.reset(seed=seed)
    u = env.unwrapped
    uncapped = u.action_for_caps(pm.F_MAX_MHZ, pm.F_MAX_MHZ)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(uncapped)
        done = terminated or truncated
    return u.state.ref_power_w[: u.horizon_s] / u.params.budget_w


def largest_rise(power_frac: np.ndarray, window_s: int = 10, within_s: int = 40) -> float:
    """Largest increase of the ``window_s`` mean power from one second to ``within_s`` seconds later."""
    mean = np.convolve(power_frac, np.ones(window_s) / window_s, mode="valid")
    return float(np.max(mean[within_s:] - mean[:-within_s]))
