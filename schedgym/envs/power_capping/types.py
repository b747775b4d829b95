"""Typed data of PowerCapping-v2: the row's immutable parameters and the episode state.

The row is simulated by the serving core (:mod:`schedgym.sim.serving`) as ``2N`` fleets of one replica
each (``N = n_servers``): fleet ``e < N`` is server ``e`` of the controlled row (caps, power brake) and
fleet ``N + e`` the same server in an uncapped, brake-free reference row fed the same requests, against
which ``hp_perf_loss``/``lp_perf_loss`` are measured. Servers ``0 .. n_hp - 1`` of each row are HP.
With ``lp_workload="batch"`` only the HP servers are fleets (``F = n_hp`` per row instead of ``N``); the
LP servers are read from a table of a backlogged server (:mod:`.batch_lp`).
``T = horizon_s``; ``K`` = command slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schedgym.sim.serving.state import FleetState

__all__ = ["RowParams", "PowerCappingState", "N_CTL"]

# Columns of PowerCappingState.ctl (int64), read by the numba loop (dynamics.py).
(
    C_T,  # seconds since the episode start (the next second to simulate)
    C_ACTIVE_LP,  # index into lp_caps_mhz in force
    C_ACTIVE_HP,  # index into hp_caps_mhz in force
    C_BRAKE_START,  # second at which a scheduled brake engages, -1 if none
    C_BRAKE_UNTIL,  # the brake holds while t < this
    C_BRAKE_EVENTS,
    C_SECONDS_OVER,
    C_COMMANDED,  # last commanded action
    C_COMMANDED_EFFECTIVE,  # second at which it takes effect
) = range(9)
N_CTL = 9


@dataclass(frozen=True)
class RowParams:
    """What does not change within an episode (kept on the env, not in the state)."""

    n_servers: int
    n_hp_servers: int
    budget_w: float
    horizon_s: int
    decision_interval_s: int
    actuation_delay_s: int
    brake_delay_s: int
    brake_duration_s: int
    lp_caps_mhz: np.ndarray  # (n_lp,) float64
    hp_caps_mhz: np.ndarray  # (n_hp,) float64
    #: ``lp_workload="batch"``: LP servers are backlogged batch servers read from a table
    #: (:mod:`.batch_lp`), not simulated request by request; the fleets of each row are its HP servers.
    lp_batch: bool = False
    #: Batch LP: 1-s server power and tokens per table row: the LP caps' levels, then the brake's clock,
    #: then the uncapped clock (the reference row). Shape (n_lp + 2, L); (0, 1) without batch LP.
    lp_power_tab: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    lp_tokens_tab: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))

    @property
    def fleets_per_row(self) -> int:
        """Servers of a row simulated by the serving core: all of them, or the HP ones with batch LP."""
        return self.n_hp_servers if self.lp_batch else self.n_servers


@dataclass
class PowerCappingState:
    """Everything that changes during an episode (deep-copied by ``get_state``)."""

    fleet: FleetState  # 2F one-replica fleets (controlled row, then reference row; F = fleets_per_row)
    ctl: np.ndarray  # (N_CTL,) int64, C_* columns
    pending_t: np.ndarray  # (K,) int64 effective second of queued cap commands, -1 = free slot
    pending_a: np.ndarray  # (K,) int64 their actions
    energy_prev_j: np.ndarray  # (2F,) float64 cumulative dynamic GPU energy at C_T (power meter)
    prefill_prev_s: np.ndarray  # (2F,) float64 cumulative prefill seconds at C_T
    server_w: np.ndarray  # (2F,) float64 server power in the last second (simulated servers)
    arrival_prefix: np.ndarray  # (2F, n + 1) float64 prefix sums of each fleet's arrival times
    done_seen: np.ndarray  # (2F,) int64 completions already folded into done_acc
    done_acc: np.ndarray  # (2F, 2) float64 sum of finish times, sum of arrival times of completed requests
    excess: np.ndarray  # (2,) float64 HP/LP loss beyond the tolerance at the last decision (reward)
    tokens_prev: np.ndarray  # (1,) float64 tokens processed by the controlled row at the last decision
    episode: np.ndarray  # (2,) float64 expected tokens per decision (reward scale), requests in the episode
    lp_phase: np.ndarray  # (n_lp,) int64 batch LP: each LP server's offset into the table; (0,) otherwise
    lp_tokens: np.ndarray  # (2,) float64 batch LP: tokens processed by the LP servers, controlled and reference
    # --- per-second history of the row -------------------------------------------------------------
    power_w: np.ndarray  # (T,) float64 controlled row power
    ref_power_w: np.ndarray  # (T,) float64 reference row power
    hp_power_w: np.ndarray  # (T,) float64 controlled row, HP servers
    lp_cap_hist_mhz: np.ndarray  # (T,) float32 LP clock in force (F_BRAKE while braking)
    hp_cap_hist_mhz: np.ndarray  # (T,) float32 HP clock in force
    brake_fired: np.ndarray  # (T,) bool, a brake event was triggered by this second
    prefill_share: np.ndarray  # (T,) float32 mean share of the second the controlled (simulated) servers spent in prefill
