"""Typed data of PowerCapping-v0: the row's immutable parameters and the episode state.

The simulator runs two rows in lockstep on the same arrivals: row 0 is the controlled row (caps, power
brake) and row 1 an uncapped reference row of the same servers (no caps, no brake), against which
``hp_perf_loss``/``lp_perf_loss`` are measured. Servers are numbered globally: row ``r``'s server ``i``
is ``r * n_servers + i``. ``N = n_servers``, ``n = number of requests in the episode``, ``T = horizon_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RowParams", "PowerCappingState", "ROW_CTRL", "ROW_REF"]

ROW_CTRL, ROW_REF = 0, 1

#: Request phases.
PHASE_WAITING, PHASE_QUEUED, PHASE_DECODING, PHASE_DONE = 0, 1, 2, 3


@dataclass(frozen=True)
class RowParams:
    """What does not change within an episode (kept on the env, not in the state)."""

    n_servers: int
    n_hp_servers: int  # servers 0 .. n_hp_servers-1 of each row serve high priority
    budget_w: float
    horizon_s: int
    decision_interval_s: int
    actuation_delay_s: int
    brake_delay_s: int
    brake_duration_s: int
    lp_caps_mhz: np.ndarray  # (n_lp,) float64 cap levels of the low-priority servers
    hp_caps_mhz: np.ndarray  # (n_hp,) float64 cap levels of the high-priority servers
    server_is_hp: np.ndarray  # (2N,) bool, class of each global server
    server_row: np.ndarray  # (2N,) int64, 0 = controlled, 1 = reference
    decode_batch_grid: np.ndarray  # (k,) batch sizes of the perf profile's decode sweep
    decode_step_grid_s: np.ndarray  # (k,) decode iteration time at F_MAX, seconds
    decode_slope_s: float  # extrapolation slope of the decode step time beyond the grid


@dataclass
class PowerCappingState:
    """Everything that changes during an episode (deep-copied by ``get_state``)."""

    t_s: int  # seconds since the episode start (the next tick to simulate)
    # --- the episode's requests (drawn at reset) ------------------------------------------------
    arrival_s: np.ndarray  # (n,) float64
    output_tokens: np.ndarray  # (n,) int64
    prefill_work_s: np.ndarray  # (n,) float64, prefill time of the prompt at F_MAX (perf profile)
    request_is_hp: np.ndarray  # (n,) bool
    next_request: int  # first request not yet admitted
    window_lo: int  # every request before it is done in both rows
    # --- per request, per row ------------------------------------------------------------------------
    server: np.ndarray  # (2, n) int64 global server id, -1 before admission
    phase: np.ndarray  # (2, n) int8, PHASE_*
    prefill_target_s: np.ndarray  # (2, n) float64 cumulative prefill work of its server at which it is prefilled
    decode_target: np.ndarray  # (2, n) float64 cumulative decode iterations of its server at which it is done
    ttft_s: np.ndarray  # (2, n) float64, time to first token, nan until prefilled
    # --- per server (global ids) ------------------------------------------------------------------
    prefill_assigned_s: np.ndarray  # (2N,) float64 cumulative prefill work admitted
    prefill_done_s: np.ndarray  # (2N,) float64 cumulative prefill work done
    decode_iters: np.ndarray  # (2N,) float64 cumulative decode iterations
    n_queued: np.ndarray  # (2N,) int64 requests waiting for prefill
    n_decoding: np.ndarray  # (2N,) int64 sequences in the decode batch
    freq_mhz: np.ndarray  # (2N,) float64 SM clock in force in the last tick
    u_prefill: np.ndarray  # (2N,) float64 share of the last tick in prefill
    u_decode: np.ndarray  # (2N,) float64 share of the last tick in decode
    # --- caps and brake (controlled row) ---------------------------------------------------------
    active_lp: int  # index into lp_caps_mhz in force
    active_hp: int  # index into hp_caps_mhz in force
    commanded_action: int  # last commanded action
    commanded_effective_s: int  # when the last command takes effect
    pending_effective_s: np.ndarray  # (K,) int64 effective time of queued commands, -1 = free slot
    pending_action: np.ndarray  # (K,) int64 their actions
    brake_start_s: int  # when a scheduled brake engages, -1 if none
    brake_until_s: int  # the brake holds while t < brake_until_s
    # --- accumulators ----------------------------------------------------------------------------
    brake_events: int
    seconds_over_budget: int
    energy_j: np.ndarray  # (2,) per row
    request_seconds: np.ndarray  # (2, 2) [row, class(0=HP, 1=LP)] integral of requests in system
    tokens_served: np.ndarray  # (2, 2) [row, class] output tokens generated
    # --- per-second history of the controlled row (observation windows and render) -----------------
    power_w: np.ndarray  # (T,) float64 row power, controlled row
    ref_power_w: np.ndarray  # (T,) float64 row power, reference row
    lp_cap_hist_mhz: np.ndarray  # (T,) float32 LP cap in force (F_BRAKE while braking)
    hp_cap_hist_mhz: np.ndarray  # (T,) float32 HP cap in force
    brake_fired: np.ndarray  # (T,) bool, a brake event was triggered at this second
    u_prefill_hist: np.ndarray  # (T,) float32 mean prefill share over the controlled row
    u_decode_hist: np.ndarray  # (T,) float32 mean decode share over the controlled row
    # --- reward scale ------------------------------------------------------------------------------
    expected_weighted_tokens_per_s: float  # the episode's mean arrival rate of weighted output tokens
