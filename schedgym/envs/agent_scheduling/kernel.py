"""The event loop of AgentScheduling, compiled with numba (the env's hot path).

``advance`` runs the simulation from the current clock to the next decision point: it finishes
requests, submits requests whose time has come, looks for a decision (a free slot with a waiting
request that fits, or a slice end while requests wait), and otherwise advances decoding to the next
event. ``observe`` fills the flat observation. Both mutate the state arrays in place; see ``env.py``
for the model they implement and ``types.py`` for the arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from schedgym.envs.agent_scheduling.types import ADMIT, DONE, NO_DECISION, SLICE_END, WAITING

EPS_TOKENS = 1e-6  # generated-token tolerance when deciding that a request has finished
N_BASE_FEATURES = 7  # per-request features before the agent-type one-hot


@njit(cache=True)
def _expired_slices(slot_req, slice_end_s, clock, time_slice_s):
    """Running requests whose slice ends now, sorted by (slice end, id), after rolling stale ends."""
    n_cores, max_batch = slot_req.shape
    buf = np.empty(n_cores * max_batch, dtype=np.int64)
    n = 0
    for c in range(n_cores):
        for b in range(max_batch):
            r = slot_req[c, b]
            if r < 0:
                continue
            end = slice_end_s[r]
            # Slice ends are not simulated while the queue is empty: roll any that passed then forward
            # to their next periodic boundary (where a round-robin scheduler would look).
            if end < clock:
                end = end + np.ceil((clock - end) / time_slice_s - 1e-9) * time_slice_s
                slice_end_s[r] = end
            if end <= clock + 1e-9:
                buf[n] = r
                n += 1
    out = buf[:n]
    keys = np.empty(n)
    for i in range(n):
        keys[i] = slice_end_s[out[i]]
    order = np.argsort(out)  # ids ascending, then a stable sort by slice end
    out = out[order]
    keys = keys[order]
    return out[np.argsort(keys, kind="mergesort")]


@njit(cache=True)
def advance(
    agent_arrival_s, req_agent, req_output_tokens, req_tool, req_tool_s, reservation,
    status, ready_s, pending_ready_s, enqueue_s, generated, finish_s, slice_end_s, kv_reserved,
    req_core, req_slot, done_order, agent_finish_s, agent_service,
    slot_req, core_ready_s, core_kv_tokens, visible, mask, decode_step_s,
    clock, n_waiting, n_done, n_agents_done, next_finish_s, busy_slot_s,
    time_slice_s, kv_capacity_tokens, max_sim_s, fairness_weight, reward_norm,
):  # fmt: skip
    """Run to the next decision point or the end; returns the reward and the updated scalars."""
    n_req = status.shape[0]
    n_cores, max_batch = slot_req.shape
    k = visible.shape[0]
    reward = 0.0
    decision_kind, decision_core, decision_req = NO_DECISION, -1, -1
    while True:
        # ---- finishes (only possible once the clock reaches the earliest finish time)
        if clock >= next_finish_s:
            next_finish_s = -np.inf
            for c in range(n_cores):
                if core_ready_s[c] > clock:
                    continue
                for b in range(max_batch):
                    r = slot_req[c, b]
                    if r < 0 or generated[r] < req_output_tokens[r] - EPS_TOKENS:
                        continue
                    slot_req[c, b] = -1
                    core_kv_tokens[c] -= kv_reserved[r]
                    kv_reserved[r] = 0
                    slice_end_s[r] = np.inf
                    req_core[r] = -1
                    req_slot[r] = -1
                    status[r] = DONE
                    generated[r] = req_output_tokens[r]
                    finish_s[r] = clock
                    done_order[n_done] = r
                    n_done += 1
                    if req_tool[r] >= 0:
                        ready_s[r + 1] = clock + req_tool_s[r]
                        pending_ready_s[r + 1] = ready_s[r + 1]
                    else:
                        agent_finish_s[req_agent[r]] = clock
                        n_agents_done += 1
        # ---- submissions
        next_arrival = np.inf
        for r in range(n_req):
            t = pending_ready_s[r]
            if t <= clock:
                pending_ready_s[r] = np.inf
                status[r] = WAITING
                enqueue_s[r] = ready_s[r]
                n_waiting += 1
            elif t < next_arrival:
                next_arrival = t
        # ---- decision point?
        visible[:] = -1
        decision_kind, decision_core, decision_req = NO_DECISION, -1, -1
        if n_waiting > 0:
            free_slots = np.zeros(n_cores, dtype=np.int64)
            for c in range(n_cores):
                for b in range(max_batch):
                    if slot_req[c, b] < 0:
                        free_slots[c] += 1
            have_expired = False
            expired = np.empty(0, dtype=np.int64)
            if free_slots.max() == 0 and time_slice_s > 0:
                expired = _expired_slices(slot_req, slice_end_s, clock, time_slice_s)
                have_expired = True
            if free_slots.max() > 0 or expired.size > 0:
                # The K oldest waiting requests by (enqueue time, id).
                waiting = np.empty(n_waiting, dtype=np.int64)
                w = 0
                for r in range(n_req):
                    if status[r] == WAITING:
                        waiting[w] = r
                        w += 1
                keys = enqueue_s[waiting]
                order = np.argsort(keys, kind="mergesort")
                n_vis = min(k, n_waiting)
                for i in range(n_vis):
                    visible[i] = waiting[order[i]]
                min_need = np.iinfo(np.int64).max
                for i in range(n_vis):
                    min_need = min(min_need, reservation[visible[i]])
                if not have_expired:
                    best = -1
                    for c in range(n_cores):
                        if free_slots[c] > 0 and min_need <= kv_capacity_tokens - core_kv_tokens[c]:
                            if best < 0 or free_slots[c] > free_slots[best]:
                                best = c
                    if best >= 0:
                        decision_kind, decision_core = ADMIT, best
                    elif time_slice_s > 0:
                        expired = _expired_slices(slot_req, slice_end_s, clock, time_slice_s)
                if decision_kind == NO_DECISION:
                    for r in expired:
                        c = req_core[r]
                        if min_need <= kv_capacity_tokens - core_kv_tokens[c] + kv_reserved[r]:
                            decision_kind, decision_core, decision_req = SLICE_END, c, r
                            break
                        slice_end_s[r] = clock + time_slice_s  # nothing could replace it: renew
        if decision_kind != NO_DECISION or n_done == n_req or clock >= max_sim_s:
            break
        # ---- next event
        t_next = next_arrival
        next_finish_s = np.inf
        for c in range(n_cores):
            n_run = 0
            for b in range(max_batch):
                if slot_req[c, b] >= 0:
                    n_run += 1
            if n_run == 0:
                continue
            step = decode_step_s[n_run]
            start = max(core_ready_s[c], clock)
            for b in range(max_batch):
                r = slot_req[c, b]
                if r < 0:
                    continue
                fin = start + max(req_output_tokens[r] - generated[r], 0.0) * step
                if fin < t_next:
                    t_next = fin
                if fin < next_finish_s:
                    next_finish_s = fin
                if n_waiting > 0 and time_slice_s > 0 and slice_end_s[r] < t_next:
                    t_next = slice_end_s[r]
        t_next = min(t_next, max_sim_s)
        # Guard against a zero-length step from floating-point rounding.
        t_next = max(t_next, clock + max(abs(clock) * 1e-15, 1e-12))
        # ---- progress decoding to t_next
        dt = t_next - clock
        running_total = 0
        for c in range(n_cores):
            n_run = 0
            for b in range(max_batch):
                if slot_req[c, b] >= 0:
                    n_run += 1
            if n_run == 0:
                continue
            running_total += n_run
            tokens = max(t_next - max(core_ready_s[c], clock), 0.0) / decode_step_s[n_run]
            for b in range(max_batch):
                r = slot_req[c, b]
                if r < 0:
                    continue
                tk = min(tokens, req_output_tokens[r] - generated[r])
                generated[r] += tk
                agent_service[req_agent[r]] += 2.0 * tk
        n_active = np.searchsorted(agent_arrival_s, clock, side="right") - n_agents_done
        cost = (n_waiting + n_active) * dt
        if fairness_weight > 0 and n_waiting > 1:
            lo, hi = np.inf, -np.inf
            for r in range(n_req):
                if status[r] == WAITING:
                    s = agent_service[req_agent[r]]
                    lo = min(lo, s)
                    hi = max(hi, s)
            cost += fairness_weight * dt * (hi - lo) / 1e4
        busy_slot_s += running_total * dt
        reward -= cost / reward_norm
        clock = t_next
    # ---- legal actions at the decision point
    mask[:] = False
    if decision_kind == NO_DECISION:
        mask[k] = True
    else:
        free_kv = kv_capacity_tokens - core_kv_tokens[decision_core]
        if decision_kind == SLICE_END:
            free_kv += kv_reserved[decision_req]
            mask[k] = True
        for i in range(k):
            r = visible[i]
            if r >= 0 and reservation[r] <= free_kv:
                mask[i] = True
    return (
        reward, clock, n_waiting, n_done, n_agents_done, next_finish_s, busy_slot_s,
        decision_kind, decision_core, decision_req,
    )  # fmt: skip


@njit(cache=True)
def observe(
    obs, visible, decision_kind, decision_req, clock, status, enqueue_s, req_prompt_tokens, generated,
    req_step, n_preempted, agent_service, req_agent, agent_type, slot_req, core_kv_tokens, core_ready_s,
    kv_capacity_tokens, n_waiting, n_active, max_sim_s, n_types, obs_high,
):  # fmt: skip
    """Fill the flat observation (layout in the env's docstring)."""
    obs[:] = 0.0
    k = visible.shape[0]
    n_feat = N_BASE_FEATURES + n_types
    for i in range(k + 1):
        r = visible[i] if i < k else (decision_req if decision_kind == SLICE_END else -1)
        base = i * n_feat + (2 if i == k else 0)
        if r < 0:
            continue
        obs[base] = 1.0
        if status[r] == WAITING:
            obs[base + 1] = (clock - enqueue_s[r]) / 10.0
        obs[base + 2] = req_prompt_tokens[r] / 1000.0
        obs[base + 3] = generated[r] / 1000.0
        obs[base + 4] = req_step[r] / 10.0
        obs[base + 5] = n_preempted[r]
        obs[base + 6] = agent_service[req_agent[r]] / 1e4
        obs[base + N_BASE_FEATURES + agent_type[req_agent[r]]] = 1.0
    obs[k * n_feat] = 1.0 if decision_kind == ADMIT else 0.0
    obs[k * n_feat + 1] = 1.0 if decision_kind == SLICE_END else 0.0
    n_cores, max_batch = slot_req.shape
    pos = (k + 1) * n_feat + 2
    for c in range(n_cores):
        n_run = 0
        for b in range(max_batch):
            if slot_req[c, b] >= 0:
                n_run += 1
        obs[pos] = n_run / max_batch
        obs[pos + 1] = core_kv_tokens[c] / kv_capacity_tokens
        obs[pos + 2] = max(core_ready_s[c] - clock, 0.0)
        pos += 3
    obs[pos] = max(n_waiting - k, 0) / 10.0
    obs[pos + 1] = clock / max_sim_s
    obs[pos + 2] = n_active / 10.0
    obs[pos + 3] = n_waiting / 10.0
    for i in range(obs.shape[0]):
        obs[i] = min(max(obs[i], 0.0), obs_high)
