"""``ServingFleet``: the Python face of the serving core (what env families call).

An env builds one fleet per episode (or ``E`` fleets for a native vector env), launches, drains and
caps replicas, calls :meth:`ServingFleet.advance` to a time, and reads telemetry. Everything mutable is
in ``fleet.state`` (a :class:`~schedgym.sim.serving.state.FleetState`), which is what env snapshots copy.
"""

from __future__ import annotations

import numpy as np

from schedgym.sim.serving import kernels
from schedgym.sim.serving.params import ServingParams
from schedgym.sim.serving.profile import LatencyProfile, build_profile
from schedgym.sim.serving.state import (
    EF_GONE_BILLED_S,
    EF_GONE_BUSY_S,
    EF_GONE_ENERGY_J,
    EF_NOW,
    R_DRAINING,
    R_EMPTY,
    R_PROVISIONING,
    R_READY,
    RF_BUSY_S,
    RF_ENERGY_J,
    RF_FREQ,
    RF_LAZY_UNTIL,
    RF_LAUNCH_T,
    RF_READY_T,
    RI_BUSY,
    RI_FREE,
    RI_NRUN,
    RI_NWAIT,
    RI_OUTSTANDING,
    RI_STATE,
    FleetState,
    allocate_state,
)

__all__ = ["ServingFleet"]


class ServingFleet:
    """``E`` independent fleets of identical replicas serving their own request streams."""

    def __init__(
        self,
        params: ServingParams,
        workloads: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        n_slots: int,
        profile: LatencyProfile | None = None,
    ) -> None:
        self.params = params
        self.profile = profile or build_profile(params)
        self.pi = params.int_array()
        self.pf = params.float_array()
        self.prof = self.profile.arrays
        self.state: FleetState = allocate_state(workloads, n_slots, params.max_num_seqs)

    # ------------------------------------------------------------------ lifecycle
    def launch(self, e: int, now: float, ready_t: float) -> int:
        """Start provisioning a replica (billed from ``now``); returns its slot, or -1 if none is free."""
        ri, rf = self.state.ri[e], self.state.rf[e]
        free = np.flatnonzero(ri[:, RI_STATE] == R_EMPTY)
        if free.size == 0:
            return -1
        r = int(free[0])
        ri[r, RI_STATE] = R_PROVISIONING if ready_t > now else R_READY
        ri[r, RI_FREE] = self.params.kv_blocks
        rf[r, RF_LAUNCH_T] = now
        rf[r, RF_READY_T] = ready_t
        rf[r, RF_FREQ] = 1.0
        return r

    def cancel(self, e: int, r: int, now: float) -> None:
        """Stop a provisioning replica (billed until ``now``)."""
        if self.state.ri[e, r, RI_STATE] != R_PROVISIONING:
            raise ValueError(f"replica slot {r} is not provisioning")
        self.state.ri[e, r, RI_STATE] = R_DRAINING
        kernels.release_if_idle(e, r, now, self.state.ri, self.state.rf, self.state.ef)

    def drain(self, e: int, r: int, now: float) -> None:
        """Stop routing to a ready replica; it is released once it has finished what it holds."""
        if self.state.ri[e, r, RI_STATE] != R_READY:
            raise ValueError(f"replica slot {r} is not ready")
        self.state.ri[e, r, RI_STATE] = R_DRAINING
        kernels.release_if_idle(e, r, now, self.state.ri, self.state.rf, self.state.ef)

    def set_frequency(self, e: int, r: int, freq: float) -> None:
        """Frequency cap of a replica as a fraction of the maximum clock, (0, 1] (PowerCapping)."""
        if not 0.0 < freq <= 1.0:
            raise ValueError(f"freq must be in (0, 1], got {freq!r}")
        self.state.rf[e, r, RF_FREQ] = float(freq)
        self.state.rf[e, r, RF_LAZY_UNTIL] = 0.0  # a new clock ends the decode run at the next boundary

    def advance(self, until: float | np.ndarray) -> None:
        until_arr = np.broadcast_to(np.asarray(until, dtype=np.float64), (self.state.n_envs,))
        kernels.advance(self.state, until_arr, self.pi, self.pf, self.prof)

    # ------------------------------------------------------------------ telemetry
    def slots(self, e: int, *states: int) -> np.ndarray:
        return np.flatnonzero(np.isin(self.state.ri[e, :, RI_STATE], states))

    def count(self, e: int, state: int) -> int:
        return int(np.count_nonzero(self.state.ri[e, :, RI_STATE] == state))

    def counts(self, e: int) -> tuple[int, int, int]:
        """(provisioning, ready, draining) replicas."""
        s = self.state.ri[e, :, RI_STATE]
        return (int(np.count_nonzero(s == R_PROVISIONING)), int(np.count_nonzero(s == R_READY)),
                int(np.count_nonzero(s == R_DRAINING)))

    def billed_s(self, e: int) -> float:
        """Replica-seconds billed so far (launch to release, or to now)."""
        st = self.state
        alive = st.ri[e, :, RI_STATE] != R_EMPTY
        now = st.ef[e, EF_NOW]
        return float(st.ef[e, EF_GONE_BILLED_S] + np.sum(now - st.rf[e, alive, RF_LAUNCH_T]))

    def busy_s(self, e: int) -> float:
        st = self.state
        alive = st.ri[e, :, RI_STATE] != R_EMPTY
        return float(st.ef[e, EF_GONE_BUSY_S] + np.sum(st.rf[e, alive, RF_BUSY_S]))

    def busy_energy_j(self, e: int) -> float:
        st = self.state
        alive = st.ri[e, :, RI_STATE] != R_EMPTY
        return float(st.ef[e, EF_GONE_ENERGY_J] + np.sum(st.rf[e, alive, RF_ENERGY_J]))

    def kv_used_frac(self, e: int) -> float:
        """KV blocks in use / KV blocks of the ready and draining replicas."""
        st = self.state
        serving = np.isin(st.ri[e, :, RI_STATE], (R_READY, R_DRAINING))
        total = self.params.kv_blocks * int(serving.sum())
        return float((total - st.ri[e, serving, RI_FREE].sum()) / total) if total else 0.0

    def running(self, e: int) -> int:
        return int(self.state.ri[e, :, RI_NRUN].sum())

    def waiting(self, e: int) -> int:
        return int(self.state.ri[e, :, RI_NWAIT].sum())

    def outstanding_tokens(self, e: int) -> int:
        return int(self.state.ri[e, :, RI_OUTSTANDING].sum())

    def idle(self, e: int) -> bool:
        """Nothing running or waiting anywhere in fleet ``e``."""
        return not self.state.ri[e, :, RI_BUSY].any() and self.waiting(e) == 0
