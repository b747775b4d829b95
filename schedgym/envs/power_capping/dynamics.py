"""Pure dynamics of PowerCapping-v2: build an episode's row, run it second by second, read its telemetry.

One numba call (:func:`run_seconds`) advances both rows over a decision interval. Each second ``t``:

1. cap commands whose actuation delay has elapsed take effect (the latest wins);
2. a scheduled power brake engages and holds every controlled GPU at ``F_BRAKE_MHZ`` for
   ``brake_duration_s``;
3. the controlled servers' clocks are set (:func:`schedgym.sim.serving.power.set_frequency_at`: power
   switches at ``t``, the next iteration runs at the new clock);
4. the serving core advances all ``2N`` fleets to ``t + 1`` (continuous batching, chunked prefill, KV;
   :func:`schedgym.sim.serving.kernels.advance`);
5. each server's power over the second is read like a meter (:func:`schedgym.sim.serving.power.dynamic_energy_j`)
   and summed per row; with batch LP (:mod:`.batch_lp`) each LP server adds its table row's power and
   tokens at its phase (the row of its clock: the cap in force, the brake's, or uncapped in the reference);
6. if the controlled row exceeded its budget, the brake fires ``brake_delay_s`` (<= 5) seconds later
   unless it already holds or is scheduled: one brake event (POLCA: the out-of-band brake acts within 5 s).
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.envs.power_capping import power_model as pm
from schedgym.envs.power_capping.types import (
    C_ACTIVE_HP,
    C_ACTIVE_LP,
    C_BRAKE_EVENTS,
    C_BRAKE_START,
    C_BRAKE_UNTIL,
    C_COMMANDED,
    C_COMMANDED_EFFECTIVE,
    C_SECONDS_OVER,
    C_T,
    N_CTL,
    PowerCappingState,
    RowParams,
)
from schedgym.envs.power_capping.workload import RowRequests
from schedgym.sim.serving import kernels
from schedgym.sim.serving.power import dynamic_energy_j, set_frequency_at
from schedgym.sim.serving.state import (
    EF_NOW,
    EI_N_DONE,
    EI_NEXT_ARRIVAL,
    QF_FINISH_T,
    R_READY,
    RF_FREQ,
    RI_FREE,
    RI_STATE,
    RI_TOKENS,
    allocate_state,
)

__all__ = ["new_state", "command_caps", "run_seconds_py", "request_seconds", "tokens_processed", "controlled_row_copy"]

_SERVER_IDLE_W = pm.SERVER_IDLE_W
_DYN_MULT = pm.SERVER_DYN_MULT
_F_MAX = pm.F_MAX_MHZ


def new_state(
    p: RowParams, reqs: RowRequests, max_num_seqs: int, kv_blocks: int, lp_phase: np.ndarray | None = None
) -> PowerCappingState:
    """Both rows at t = 0, every server ready and empty, no caps, no brake. With batch LP (``p.lp_batch``)
    the fleets are the HP servers' (requests routed to LP servers are not served) and ``lp_phase`` gives
    each LP server's offset into the table."""
    n = p.fleets_per_row
    streams = [reqs.of_server(k) for k in range(n)]
    n_lp = p.n_servers - p.n_hp_servers if p.lp_batch else 0
    if lp_phase is None:
        lp_phase = np.zeros(n_lp, dtype=np.int64)
    if lp_phase.shape != (n_lp,):
        raise ValueError(f"lp_phase must have shape ({n_lp},), got {lp_phase.shape}")
    fleet = allocate_state(streams + streams, 1, max_num_seqs)
    # One ready replica per fleet (a DGX server that is already serving), as ServingFleet.launch does.
    fleet.ri[:, 0, RI_STATE] = R_READY
    fleet.rf[:, 0, RF_FREQ] = 1.0
    fleet.ri[:, 0, RI_FREE] = kv_blocks
    T = p.horizon_s
    k = p.actuation_delay_s // p.decision_interval_s + 2
    ctl = np.zeros(N_CTL, dtype=np.int64)
    ctl[C_BRAKE_START] = -1
    prefix = np.zeros((2 * n, fleet.arrival_s.shape[1] + 1))
    finite = np.where(np.isfinite(fleet.arrival_s), fleet.arrival_s, 0.0)
    prefix[:, 1:] = np.cumsum(finite, axis=1)
    return PowerCappingState(
        fleet=fleet,
        ctl=ctl,
        pending_t=np.full(k, -1, dtype=np.int64),
        pending_a=np.zeros(k, dtype=np.int64),
        energy_prev_j=np.zeros(2 * n),
        prefill_prev_s=np.zeros(2 * n),
        server_w=np.full(2 * n, _SERVER_IDLE_W),
        arrival_prefix=prefix,
        done_seen=np.zeros(2 * n, dtype=np.int64),
        done_acc=np.zeros((2 * n, 2)),
        excess=np.zeros(2),
        tokens_prev=np.zeros(1),
        episode=np.ones(2),
        lp_phase=np.ascontiguousarray(lp_phase, dtype=np.int64),
        lp_tokens=np.zeros(2),
        power_w=np.zeros(T),
        ref_power_w=np.zeros(T),
        hp_power_w=np.zeros(T),
        lp_cap_hist_mhz=np.zeros(T, dtype=np.float32),
        hp_cap_hist_mhz=np.zeros(T, dtype=np.float32),
        brake_fired=np.zeros(T, dtype=bool),
        prefill_share=np.zeros(T, dtype=np.float32),
    )


def command_caps(s: PowerCappingState, p: RowParams, action: int) -> None:
    """Queue a cap command; it takes effect ``actuation_delay_s`` seconds from now, except the episode's
    first (at t = 0), which is in force at once: the row was under its controller before the episode
    began, so it starts with the controller's standing caps rather than 40 s of none (with batch LP
    servers at full power from the first second, no controller could otherwise avoid an early brake)."""
    t = int(s.ctl[C_T])
    effective = t + p.actuation_delay_s if t > 0 else t
    s.ctl[C_COMMANDED] = int(action)
    s.ctl[C_COMMANDED_EFFECTIVE] = effective
    free = np.flatnonzero(s.pending_t < 0)
    # With delay <= K * interval there is always a free slot; overwrite the oldest otherwise.
    slot = int(free[0]) if free.size else int(np.argmin(s.pending_t))
    s.pending_t[slot] = effective
    s.pending_a[slot] = action


@numba.njit(cache=True, nogil=True)  # nogil: the vector env runs rows on several Python threads at once
def _run_seconds(
    t_end, n, nh, budget_w, brake_delay_s, brake_duration_s, lp_f, hp_f, f_brake,
    ctl, pending_t, pending_a, energy_prev, prefill_prev, server_w,
    power_w, ref_power_w, hp_power_w, lp_hist, hp_hist, brake_fired, prefill_share,
    lp_tab_p, lp_tab_t, lp_phase, lp_tokens,
    pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids,
):  # fmt: skip
    # n: fleets per row (every server, or the HP servers with batch LP); nh: HP servers
    n_hp_caps = hp_f.shape[0]
    n2 = ri.shape[0]  # 2n: both rows; n: the controlled row alone (look-ahead)
    has_ref = n2 > n
    n_lp_batch = lp_phase.shape[0]
    tab_len = lp_tab_p.shape[1]
    brake_row = lp_f.shape[0]  # table rows: LP cap levels, the brake's clock, uncapped
    ref_row = lp_f.shape[0] + 1
    until = np.empty(n2)
    energy = np.empty(n2)
    prefill = np.empty(n2)
    while ctl[C_T] < t_end:
        t = ctl[C_T]
        # 1. commands whose delay has elapsed (the latest one wins)
        best = -1
        for k in range(pending_t.shape[0]):
            if pending_t[k] >= 0 and pending_t[k] <= t:
                if best == -1 or pending_t[k] > pending_t[best]:
                    best = k
        if best >= 0:
            a = pending_a[best]
            ctl[C_ACTIVE_LP] = a // n_hp_caps
            ctl[C_ACTIVE_HP] = a % n_hp_caps
            for k in range(pending_t.shape[0]):
                if pending_t[k] >= 0 and pending_t[k] <= t:
                    pending_t[k] = -1
        # 2. the brake engages when scheduled
        if ctl[C_BRAKE_START] == t:
            ctl[C_BRAKE_UNTIL] = t + brake_duration_s
            ctl[C_BRAKE_START] = -1
        braking = t < ctl[C_BRAKE_UNTIL]
        f_lp = f_brake if braking else lp_f[ctl[C_ACTIVE_LP]]
        f_hp = f_brake if braking else hp_f[ctl[C_ACTIVE_HP]]
        # 3. clocks of the controlled servers
        for e in range(n):
            set_frequency_at(e, 0, float(t), f_hp if e < nh else f_lp, pi, pf, ri, rf)
        # 4. advance every fleet one second
        for e in range(n2):
            until[e] = t + 1.0
        kernels._advance_all(until, pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids)
        # 5. meter readings
        dynamic_energy_j(t + 1.0, pi, pf, ri, rf, ef, energy, prefill)
        row0 = 0.0
        row1 = 0.0
        hp0 = 0.0
        pre0 = 0.0
        for e in range(n2):
            w = _SERVER_IDLE_W + _DYN_MULT * (energy[e] - energy_prev[e])
            server_w[e] = w
            if e < n:
                row0 += w
                pre0 += prefill[e] - prefill_prev[e]
                if e < nh:
                    hp0 += w
            else:
                row1 += w
            energy_prev[e] = energy[e]
            prefill_prev[e] = prefill[e]
        # 5b. batch LP servers: their table rows at their phases
        lvl = brake_row if braking else ctl[C_ACTIVE_LP]
        for k in range(n_lp_batch):
            j = (t + lp_phase[k]) % tab_len
            row0 += lp_tab_p[lvl, j]
            lp_tokens[0] += lp_tab_t[lvl, j]
            if has_ref:
                row1 += lp_tab_p[ref_row, j]
                lp_tokens[1] += lp_tab_t[ref_row, j]
        power_w[t] = row0
        ref_power_w[t] = row1
        hp_power_w[t] = hp0
        lp_hist[t] = f_lp * _F_MAX
        hp_hist[t] = f_hp * _F_MAX
        prefill_share[t] = pre0 / n
        # 6. over budget: the brake fires brake_delay_s later unless it holds or is scheduled
        if row0 > budget_w:
            ctl[C_SECONDS_OVER] += 1
            if not braking and ctl[C_BRAKE_START] < 0:
                ctl[C_BRAKE_START] = t + brake_delay_s
                ctl[C_BRAKE_EVENTS] += 1
                brake_fired[t] = True
        ctl[C_T] = t + 1


def run_seconds_py(s: PowerCappingState, p: RowParams, t_end: int, pi: np.ndarray, pf: np.ndarray, prof: tuple) -> None:
    """Advance both rows to second ``t_end`` (module docstring)."""
    fl = s.fleet
    _run_seconds(
        int(t_end), p.fleets_per_row, p.n_hp_servers, float(p.budget_w), p.brake_delay_s, p.brake_duration_s,
        p.lp_caps_mhz / pm.F_MAX_MHZ, p.hp_caps_mhz / pm.F_MAX_MHZ, pm.F_BRAKE_MHZ / pm.F_MAX_MHZ,
        s.ctl, s.pending_t, s.pending_a, s.energy_prev_j, s.prefill_prev_s, s.server_w,
        s.power_w, s.ref_power_w, s.hp_power_w, s.lp_cap_hist_mhz, s.hp_cap_hist_mhz, s.brake_fired, s.prefill_share,
        p.lp_power_tab, p.lp_tokens_tab, s.lp_phase, s.lp_tokens,
        pi, pf, prof, fl.arrival_s, fl.prompt_tokens, fl.output_tokens, fl.qi, fl.qf, fl.ri, fl.rf,
        fl.running, fl.sched, fl.ei, fl.ef, fl.done_ids,
    )  # fmt: skip


@numba.njit(cache=True)
def _request_seconds(t, arrival, qf, ei, done_ids, prefix, done_seen, done_acc, out):
    for e in range(arrival.shape[0]):
        nd = ei[e, EI_N_DONE]
        for i in range(done_seen[e], nd):
            q = done_ids[e, i]
            done_acc[e, 0] += qf[e, q, QF_FINISH_T]
            done_acc[e, 1] += arrival[e, q]
        done_seen[e] = nd
        na = ei[e, EI_NEXT_ARRIVAL]
        n_in = na - nd
        out[e] = done_acc[e, 0] - done_acc[e, 1] + t * n_in - (prefix[e, na] - done_acc[e, 1])


def request_seconds(s: PowerCappingState) -> np.ndarray:
    """Per fleet: the time-integral of its requests in system up to now (sum of each arrived request's
    time in system so far; Little's law: mean latency x arrivals)."""
    fl = s.fleet
    out = np.zeros(fl.arrival_s.shape[0])
    t = float(fl.ef[0, EF_NOW])
    _request_seconds(t, fl.arrival_s, fl.qf, fl.ei, fl.done_ids, s.arrival_prefix, s.done_seen, s.done_acc, out)
    return out


def tokens_processed(s: PowerCappingState) -> np.ndarray:
    """Per fleet: prompt and output tokens processed so far."""
    return s.fleet.ri[:, 0, RI_TOKENS].astype(np.float64)


def controlled_row_copy(s: PowerCappingState, p: RowParams) -> PowerCappingState:
    """A deep copy of the controlled row alone (the reference row dropped), for look-ahead with
    :func:`run_seconds_py`: the controlled row's dynamics do not depend on the reference row."""
    import dataclasses

    n = p.fleets_per_row
    fl = s.fleet
    fleet = dataclasses.replace(
        fl,
        **{f.name: getattr(fl, f.name)[:n].copy() for f in dataclasses.fields(fl)},
    )
    out = dataclasses.replace(
        s,
        fleet=fleet,
        ctl=s.ctl.copy(),
        pending_t=s.pending_t.copy(),
        pending_a=s.pending_a.copy(),
        energy_prev_j=s.energy_prev_j[:n].copy(),
        prefill_prev_s=s.prefill_prev_s[:n].copy(),
        server_w=s.server_w[:n].copy(),
        power_w=s.power_w.copy(),
        ref_power_w=s.ref_power_w.copy(),
        hp_power_w=s.hp_power_w.copy(),
        lp_cap_hist_mhz=s.lp_cap_hist_mhz.copy(),
        hp_cap_hist_mhz=s.hp_cap_hist_mhz.copy(),
        brake_fired=s.brake_fired.copy(),
        prefill_share=s.prefill_share.copy(),
        lp_phase=s.lp_phase.copy(),
        lp_tokens=s.lp_tokens.copy(),
    )
    return out
