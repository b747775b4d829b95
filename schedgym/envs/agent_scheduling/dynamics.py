"""Dynamics of AgentScheduling-v1: LLM cores with continuous batching and a paged KV cache whose admission
and preemption choices are made by the scheduler (the policy), compiled with numba.

This is a family kernel over the serving core's models (``schedgym.sim.serving``): KV sizing and swap
bandwidth from :class:`~schedgym.sim.serving.ServingParams`, iteration latency from
:func:`~schedgym.sim.serving.profile.iteration_s` over the SplitwiseSim profile, the same request
columns and iteration rules (Orca OSDI'22 / vLLM SOSP'23 continuous batching; Sarathi-Serve OSDI'24
chunked prefill; vLLM's paged KV with swap or recompute preemption). It does not reuse the core's event
loop, whose admission (FCFS) and victim choice (newest) are fixed inside the kernel: here those two are
the decisions the env exposes. Rules (one core; every core runs the same way):

- At each iteration boundary the core *composes* its next iteration in three phases, each of which may
  stop for a decision of the scheduler (and resumes after the action):

  1. **KV growth**: every running sequence past its prefill whose KV blocks are full needs one more
     block (``kv == blocks x block_tokens``; oldest first). With no free block the scheduler must free
     memory: a **KV-preemption decision** picks a victim among the core's running sequences and whether
     to *swap* its KV to host memory (copy time ``blocks x swap_s_per_block`` now and again when it is
     readmitted, PCIe bandwidth ``swap_bandwidth_gbs``) or *drop* it and *recompute* later (re-prefill of
     prompt + generated tokens, timed by the profile) -- the AIOS context snapshot / FastSwitch trade-off.
  2. **Time slices** (AIOS round robin, ``time_slice_s > 0``): while requests wait, a running sequence whose
     slice has expired raises a **slice-end decision**: keep it (a new slice starts) or preempt it
     (swap or recompute) so that a waiting request can take its place.
  3. **Admission**: while requests wait, fewer than ``max_num_seqs`` run, no KV preemption happened at
     this boundary (vLLM does not admit then) and some offered request fits (its blocks: ``ceil(prompt /
     block)`` for a (re)prefill, its swapped blocks for a swapped one; a prefill also needs token budget
     left), an **admission decision** picks which waiting request the core admits next -- or none.

- The iteration then runs: decodes of every running sequence past its prefill (one token each), prompt
  chunks of sequences in prefill within ``max_num_batched_tokens`` (oldest first), and KV copies of this
  boundary's swaps. Its length is the core's ``iteration_s(prefill tokens, cross attention, batch,
  context)``, but never less than the pure-decode iteration of the same batch (the weights are read once
  per iteration either way; the core's model lets a few decode tokens riding on a tiny prompt chunk cost
  only the chunk's compute), plus the copy time. Decode time grows with batch and with total context
  (KV reads), as the core models it.
- When the iteration ends, prefill chunks enter the KV; a sequence whose prefill completes emits a token
  (the first sets TTFT); each decode stores one token and emits one. A request that has emitted its
  output finishes and frees its blocks; its agent then runs a tool for ``tool_s`` and submits its next
  request (a longer context: prompt = system prompt + history + tool outputs so far), or finishes.
- An idle core composes as soon as a request is waiting. Requests wait in one queue shared by the cores.

Everything mutable is in the arrays of :class:`~schedgym.envs.agent_scheduling.types.AgentSchedState`.
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.envs.agent_scheduling.types import (
    ADMIT,
    CF_BUSY_S,
    CF_ITER_END,
    CF_ITER_START,
    CF_KV_BLOCK_S,
    CI_BUSY,
    CI_FREE,
    CI_ITERS,
    CI_KV_PREEMPTED,
    CI_NEED_COMPOSE,
    CI_NO_ADMIT,
    CI_NRUN,
    CI_SWAP_BLOCKS,
    DONE,
    GF_AGENT_S,
    GF_CLOCK,
    GF_NEXT_SUBMIT,
    GF_REWARD,
    GF_SWAP_S,
    GI_CORE,
    GI_FIRST_READY,
    GI_FIRST_WAITING,
    GI_KIND,
    GI_N_AGENTS_ARRIVED,
    GI_N_AGENTS_DONE,
    GI_N_DECISIONS,
    GI_N_DONE,
    GI_N_KV_CONSTRAINED,
    GI_N_KV_PREEMPT,
    GI_N_RECOMPUTES,
    GI_N_SLICE_PREEMPT,
    GI_N_SWAPS,
    GI_N_WAITING,
    GI_RECOMPUTE_TOKENS,
    GI_REQ,
    NO_DECISION,
    PENDING,
    PREEMPT,
    QF_ENQ,
    QF_FINISH,
    QF_FIRST,
    QF_READY,
    QF_RUN_START,
    QF_SLICE_START,
    QF_WAITED,
    QI_BLOCKS,
    QI_CORE,
    QI_GENERATED,
    QI_INPUT_CREDIT,
    QI_JUST_IN,
    QI_KV,
    QI_PREEMPTS,
    QI_PREFILLED,
    QI_RECOMPUTES,
    QI_STATE,
    QI_SWAPPED,
    QI_SWAPS,
    QI_TARGET,
    RUNNING,
    SLICE_END,
    WAITING,
)
from schedgym.sim.borrow import borrow
from schedgym.sim.serving.profile import iteration_s, prefill_s

# ---- parameter arrays
P_BT, P_BLOCKS, P_MAX_SEQS, P_BUDGET, P_K = range(5)
N_P = 5
PF_SWAP_S_PER_BLOCK, PF_TIME_SLICE, PF_MAX_SIM, PF_REWARD_SCALE, PF_WINDOW = range(5)
N_PF = 5
# ---- workload int columns (wq)
W_AGENT, W_STEP, W_PROMPT, W_OUTPUT, W_TENANT, W_LAST, W_TYPE = range(7)
N_W = 7

#: Per-request service weights of VTC (Sheng et al., OSDI'24): w_p = 1 per input token, w_q = 2 per output token.
VTC_INPUT_WEIGHT = 1.0
VTC_OUTPUT_WEIGHT = 2.0


@numba.njit(cache=True)
def need_blocks(q, qi, bt):
    """Blocks request ``q`` needs to be admitted: its swapped blocks, or its (re)prefill target's."""
    if qi[q, QI_SWAPPED] == 1:
        return qi[q, QI_BLOCKS]
    return (qi[q, QI_TARGET] + bt - 1) // bt


@numba.njit(cache=True)
def budget_left(c, p, qi, ci, running):
    """Token budget left on core ``c`` after the decodes and prompt chunks of its running sequences."""
    budget = p[P_BUDGET]
    for i in range(ci[c, CI_NRUN]):
        q = running[c, i]
        if qi[q, QI_JUST_IN] == 1:
            continue
        if qi[q, QI_PREFILLED] >= qi[q, QI_TARGET]:
            budget -= 1
    for i in range(ci[c, CI_NRUN]):
        q = running[c, i]
        if qi[q, QI_JUST_IN] == 0 and qi[q, QI_PREFILLED] < qi[q, QI_TARGET]:
            budget -= min(qi[q, QI_TARGET] - qi[q, QI_PREFILLED], budget)
    return budget


@numba.njit(cache=True)
def fill_visible(visible, qi, qf, wq, n_ten, n_wait, gi):
    """The waiting requests offered to the scheduler: the oldest waiting request of every backlogged tenant
    (in queue order), then the oldest remaining ones, up to K. Queue order: (time entered the queue, id).

    One pass over the requests from the first waiting one (``gi[GI_FIRST_WAITING]``, moved past the
    finished and running requests below it) up to the last of the ``n_wait`` waiting ones, no sort of the
    queue: the tenants' heads (``n_ten`` tenants) and the K + T first waiting requests in queue order (a
    bounded insertion buffer) are all the offer can draw from."""
    visible[:] = -1
    if n_wait <= 0:
        return
    k = visible.shape[0]
    head = np.full(n_ten, -1, dtype=np.int64)
    head_key = np.empty(n_ten)
    size = k + n_ten
    buf = np.empty(size, dtype=np.int64)
    buf_key = np.empty(size)
    m = 0  # entries in buf, sorted by (key, id)
    seen = 0
    first = gi[GI_FIRST_WAITING]
    while first < qi.shape[0] and qi[first, QI_STATE] != WAITING:
        first += 1
    gi[GI_FIRST_WAITING] = first
    for q in range(first, qi.shape[0]):  # ids increase, so "key strictly smaller" is the (key, id) order
        if qi[q, QI_STATE] != WAITING:
            continue
        key = qf[q, QF_ENQ]
        t = wq[q, W_TENANT]
        if head[t] < 0 or key < head_key[t]:
            head[t] = q
            head_key[t] = key
        if m < size or key < buf_key[m - 1]:
            pos = m if m < size else size - 1
            while pos > 0 and key < buf_key[pos - 1]:
                if pos < size:
                    buf[pos] = buf[pos - 1]
                    buf_key[pos] = buf_key[pos - 1]
                pos -= 1
            buf[pos] = q
            buf_key[pos] = key
            if m < size:
                m += 1
        seen += 1
        if seen == n_wait:
            break
    # tenants' heads in queue order (insertion sort of at most T entries)
    heads = np.empty(n_ten, dtype=np.int64)
    nh = 0
    for t in range(n_ten):
        h = head[t]
        if h < 0:
            continue
        hk = head_key[t]
        pos = nh
        while pos > 0 and (hk < qf[heads[pos - 1], QF_ENQ] or (hk == qf[heads[pos - 1], QF_ENQ] and h < heads[pos - 1])):
            heads[pos] = heads[pos - 1]
            pos -= 1
        heads[pos] = h
        nh += 1
    nh = min(nh, k)
    j = 0
    for i in range(nh):
        visible[j] = heads[i]
        j += 1
    for i in range(m):
        if j >= k:
            break
        q = buf[i]
        taken = False
        for r in range(nh):
            if heads[r] == q:
                taken = True
                break
        if not taken:
            visible[j] = q
            j += 1


@numba.njit(cache=True)
def _compose(c, t, p, pf, wq, qi, qf, ci, running, visible, victims, mask, gi, n_ten):
    """Phases 1-3 of the module docstring at core ``c``'s boundary ``t``; returns the decision kind raised
    (its candidates and mask filled in), or NO_DECISION when the iteration can start."""
    bt = p[P_BT]
    k = p[P_K]
    nrun = ci[c, CI_NRUN]
    # 1. KV growth, oldest first
    for i in range(nrun):
        q = running[c, i]
        if qi[q, QI_JUST_IN] == 1 or qi[q, QI_PREFILLED] < qi[q, QI_TARGET]:
            continue
        if qi[q, QI_KV] >= qi[q, QI_BLOCKS] * bt:
            if ci[c, CI_FREE] > 0:
                ci[c, CI_FREE] -= 1
                qi[q, QI_BLOCKS] += 1
            else:
                visible[:] = -1
                victims[:] = -1
                mask[:] = False
                for j in range(min(k, nrun)):
                    v = running[c, nrun - 1 - j]
                    victims[j] = v
                    mask[j] = True
                    mask[k + j] = True
                gi[GI_REQ] = q
                gi[GI_N_KV_CONSTRAINED] += 1
                return PREEMPT
    n_wait = gi[GI_N_WAITING]
    # 2. slice ends
    if pf[PF_TIME_SLICE] > 0.0 and n_wait > 0:
        best = -1
        for i in range(nrun):
            q = running[c, i]
            if qi[q, QI_JUST_IN] == 1:
                continue
            if t - qf[q, QF_SLICE_START] >= pf[PF_TIME_SLICE] - 1e-9:
                if best == -1 or qf[q, QF_SLICE_START] < qf[best, QF_SLICE_START]:
                    best = q
        if best >= 0:
            fill_visible(visible, qi, qf, wq, n_ten, n_wait, gi)
            victims[:] = -1
            victims[0] = best
            mask[:] = False
            mask[0] = True
            mask[k] = True
            mask[2 * k] = True
            gi[GI_REQ] = best
            free_after = ci[c, CI_FREE] + qi[best, QI_BLOCKS]
            for j in range(k):
                v = visible[j]
                if v >= 0 and need_blocks(v, qi, bt) > free_after:
                    gi[GI_N_KV_CONSTRAINED] += 1
                    break
            return SLICE_END
    # 3. admission
    if ci[c, CI_NO_ADMIT] == 0 and ci[c, CI_KV_PREEMPTED] == 0 and n_wait > 0 and nrun < p[P_MAX_SEQS]:
        fill_visible(visible, qi, qf, wq, n_ten, n_wait, gi)
        budget = budget_left(c, p, qi, ci, running)
        mask[:] = False
        any_legal = False
        kv_short = False
        for j in range(k):
            v = visible[j]
            if v < 0:
                continue
            fits = need_blocks(v, qi, bt) <= ci[c, CI_FREE]
            if not fits:
                kv_short = True
            if fits and (qi[v, QI_SWAPPED] == 1 or budget > 0):
                mask[j] = True
                any_legal = True
        if any_legal:
            victims[:] = -1
            mask[2 * k] = nrun > 0
            gi[GI_REQ] = -1
            if kv_short:
                gi[GI_N_KV_CONSTRAINED] += 1
            return ADMIT
    return NO_DECISION


@numba.njit(cache=True)
def _launch(c, t, p, pf, prof, qi, ci, cf, running, sched):
    """Start core ``c``'s composed iteration at ``t`` (or leave it idle)."""
    budget = p[P_BUDGET]
    b = 0
    ctx = 0
    nrun = ci[c, CI_NRUN]
    for i in range(nrun):
        q = running[c, i]
        sched[c, i] = 0
        if qi[q, QI_JUST_IN] == 1:
            continue
        if qi[q, QI_PREFILLED] >= qi[q, QI_TARGET]:
            sched[c, i] = -1
            b += 1
            ctx += qi[q, QI_KV] + 1
            budget -= 1
    p_tokens = 0
    cross = 0.0
    for i in range(nrun):
        q = running[c, i]
        if qi[q, QI_JUST_IN] == 0 and qi[q, QI_PREFILLED] < qi[q, QI_TARGET]:
            ch = min(qi[q, QI_TARGET] - qi[q, QI_PREFILLED], budget)
            sched[c, i] = ch
            p_tokens += ch
            cross += float(ch) * float(qi[q, QI_PREFILLED])
            budget -= ch
    swap = ci[c, CI_SWAP_BLOCKS]
    lp, lpf, db, sc = prof
    dt = 0.0
    if p_tokens > 0 or b > 0:
        dt = iteration_s(p_tokens, cross, b, float(ctx), 1.0, lp, lpf, db, sc, 0.0)
        if p_tokens > 0 and b > 0:
            dt = max(dt, iteration_s(0, 0.0, b, float(ctx), 1.0, lp, lpf, db, sc, 0.0))
    dt += swap * pf[PF_SWAP_S_PER_BLOCK]
    ci[c, CI_NO_ADMIT] = 0
    ci[c, CI_KV_PREEMPTED] = 0
    ci[c, CI_SWAP_BLOCKS] = 0
    ci[c, CI_NEED_COMPOSE] = 0
    cf[c, CF_ITER_START] = t
    if dt > 0.0:
        ci[c, CI_BUSY] = 1
        ci[c, CI_ITERS] += 1
        cf[c, CF_ITER_END] = t + dt
    else:
        ci[c, CI_BUSY] = 0
        cf[c, CF_ITER_END] = t


@numba.njit(cache=True)
def _credit(tenant, amount, t, pf, tenant_service, win_service):
    tenant_service[tenant] += amount
    w = min(int(t / pf[PF_WINDOW]), win_service.shape[0] - 1)
    win_service[w, tenant] += amount


@numba.njit(cache=True)
def _finalize(c, p, pf, wq, tool_s, qi, qf, ci, cf, running, sched, gi, gf, agent_finish, tenant_service, win_service):
    """Apply the effects of core ``c``'s iteration ending at ``cf[CF_ITER_END]``."""
    t_end = cf[c, CF_ITER_END]
    dt = t_end - cf[c, CF_ITER_START]
    cf[c, CF_BUSY_S] += dt
    cf[c, CF_KV_BLOCK_S] += dt * (p[P_BLOCKS] - ci[c, CI_FREE])
    nrun = ci[c, CI_NRUN]
    kept = 0
    for i in range(nrun):
        q = running[c, i]
        s = sched[c, i]
        ten = wq[q, W_TENANT]
        if s > 0:
            qi[q, QI_PREFILLED] += s
            qi[q, QI_KV] += s
            new_input = min(s, wq[q, W_PROMPT] - qi[q, QI_INPUT_CREDIT])
            if new_input > 0:
                qi[q, QI_INPUT_CREDIT] += new_input
                _credit(ten, VTC_INPUT_WEIGHT * new_input, t_end, pf, tenant_service, win_service)
            if qi[q, QI_PREFILLED] >= qi[q, QI_TARGET]:
                if qf[q, QF_FIRST] < 0.0:
                    qf[q, QF_FIRST] = t_end
                qi[q, QI_GENERATED] += 1
                _credit(ten, VTC_OUTPUT_WEIGHT, t_end, pf, tenant_service, win_service)
        elif s == -1:
            qi[q, QI_KV] += 1
            qi[q, QI_GENERATED] += 1
            _credit(ten, VTC_OUTPUT_WEIGHT, t_end, pf, tenant_service, win_service)
        qi[q, QI_JUST_IN] = 0
        sched[c, i] = 0
        if qi[q, QI_GENERATED] >= wq[q, W_OUTPUT]:
            ci[c, CI_FREE] += qi[q, QI_BLOCKS]
            qi[q, QI_BLOCKS] = 0
            qi[q, QI_STATE] = DONE
            qf[q, QF_FINISH] = t_end
            gi[GI_N_DONE] += 1
            a = wq[q, W_AGENT]
            if wq[q, W_LAST] == 1:
                agent_finish[a] = t_end
                gi[GI_N_AGENTS_DONE] += 1
            else:
                ready = t_end + tool_s[q]
                qf[q + 1, QF_READY] = ready
                gi[GI_FIRST_READY] = min(gi[GI_FIRST_READY], q + 1)
                if ready < gf[GF_NEXT_SUBMIT]:
                    gf[GF_NEXT_SUBMIT] = ready
        else:
            running[c, kept] = q
            kept += 1
    for i in range(kept, nrun):
        running[c, i] = -1
    ci[c, CI_NRUN] = kept
    ci[c, CI_BUSY] = 0
    ci[c, CI_NEED_COMPOSE] = 1


@numba.njit(cache=True)
def _submit(t, wq, qi, qf, gi, gf, tenant_waiting):
    """Requests whose submission time has come join the queue; returns how many. Scans from the first
    request pending with a known submission time (``gi[GI_FIRST_READY]``) and moves that mark on."""
    n = qi.shape[0]
    nxt = np.inf
    m = 0
    first = n
    for q in range(gi[GI_FIRST_READY], n):
        if qi[q, QI_STATE] != PENDING:
            continue
        r = qf[q, QF_READY]
        if r != np.inf and r > t and first == n:
            first = q
        if r <= t:
            qi[q, QI_STATE] = WAITING
            gi[GI_FIRST_WAITING] = min(gi[GI_FIRST_WAITING], q)
            qf[q, QF_ENQ] = r
            gi[GI_N_WAITING] += 1
            tenant_waiting[wq[q, W_TENANT]] += 1
            if wq[q, W_STEP] == 0:
                gi[GI_N_AGENTS_ARRIVED] += 1
            m += 1
        elif r < nxt:
            nxt = r
    gf[GF_NEXT_SUBMIT] = nxt
    gi[GI_FIRST_READY] = first
    return m


@numba.njit(cache=True)
def _integrate(t0, t1, pf, gi, gf, tenant_waiting, win_backlog):
    """Reward and fairness bookkeeping over ``[t0, t1)`` (nothing changes state in between)."""
    dt = t1 - t0
    if dt <= 0.0:
        return
    active = gi[GI_N_AGENTS_ARRIVED] - gi[GI_N_AGENTS_DONE]
    gf[GF_AGENT_S] += active * dt
    gf[GF_REWARD] -= active * dt / pf[PF_REWARD_SCALE]
    win = pf[PF_WINDOW]
    n_win = win_backlog.shape[0]
    for ten in range(tenant_waiting.shape[0]):
        if tenant_waiting[ten] == 0:
            continue
        a = t0
        while a < t1:
            w = min(int(a / win), n_win - 1)
            b = t1 if w == n_win - 1 else min(t1, (w + 1) * win)
            if b <= a:  # rounding at a window edge
                b = min(t1, a + 1e-9)
            win_backlog[w, ten] += b - a
            a = b


@numba.njit(cache=True)
def advance(p, pf, prof, wq, tool_s, qi, qf, ci, cf, running, sched, visible, victims, mask, gi, gf, agent_finish,
            tenant_waiting, tenant_service, win_service, win_backlog):  # fmt: skip
    """Run to the next decision point (candidates and mask filled in), the end of the episode, or
    ``max_sim_s``."""
    # Borrowed views (schedgym.sim.borrow): the helpers below take a dozen arrays per call, and numba's
    # atomic reference counting of each would dominate the loop.
    p, pf, wq, tool_s, qi, qf = borrow(p), borrow(pf), borrow(wq), borrow(tool_s), borrow(qi), borrow(qf)
    ci, cf, running, sched, visible, victims = borrow(ci), borrow(cf), borrow(running), borrow(sched), borrow(visible), borrow(victims)
    mask, gi, gf, agent_finish = borrow(mask), borrow(gi), borrow(gf), borrow(agent_finish)
    tenant_waiting, tenant_service = borrow(tenant_waiting), borrow(tenant_service)
    win_service, win_backlog = borrow(win_service), borrow(win_backlog)
    prof = (borrow(prof[0]), borrow(prof[1]), borrow(prof[2]), borrow(prof[3]))
    n_cores = ci.shape[0]
    n_req = qi.shape[0]
    while True:
        clock = gf[GF_CLOCK]
        for c in range(n_cores):
            if ci[c, CI_NEED_COMPOSE] == 1:
                kind = _compose(c, clock, p, pf, wq, qi, qf, ci, running, visible, victims, mask, gi,
                                tenant_waiting.shape[0])
                if kind != NO_DECISION:
                    gi[GI_KIND] = kind
                    gi[GI_CORE] = c
                    gi[GI_N_DECISIONS] += 1
                    return
                _launch(c, clock, p, pf, prof, qi, ci, cf, running, sched)
        gi[GI_KIND] = NO_DECISION
        gi[GI_CORE] = -1
        gi[GI_REQ] = -1
        mask[:] = False
        mask[mask.shape[0] - 1] = True
        if gi[GI_N_DONE] == n_req or clock >= pf[PF_MAX_SIM]:
            return
        t_next = gf[GF_NEXT_SUBMIT]
        for c in range(n_cores):
            if ci[c, CI_BUSY] == 1 and cf[c, CF_ITER_END] < t_next:
                t_next = cf[c, CF_ITER_END]
        if t_next == np.inf:
            return  # nothing can happen any more (cannot occur with validated kwargs)
        t_next = min(t_next, pf[PF_MAX_SIM])
        _integrate(clock, t_next, pf, gi, gf, tenant_waiting, win_backlog)
        gf[GF_CLOCK] = t_next
        for c in range(n_cores):
            if ci[c, CI_BUSY] == 1 and cf[c, CF_ITER_END] <= t_next:
                _finalize(c, p, pf, wq, tool_s, qi, qf, ci, cf, running, sched, gi, gf, agent_finish,
                          tenant_service, win_service)  # fmt: skip
        if gf[GF_NEXT_SUBMIT] <= t_next:
            if _submit(t_next, wq, qi, qf, gi, gf, tenant_waiting) > 0:
                for c in range(n_cores):
                    if ci[c, CI_BUSY] == 0:
                        ci[c, CI_NEED_COMPOSE] = 1


@numba.njit(cache=True)
def _admit(c, q, t, p, pf, wq, qi, qf, ci, running, gi, gf, tenant_waiting):
    qi[q, QI_STATE] = RUNNING
    qi[q, QI_CORE] = c
    qf[q, QF_WAITED] += t - qf[q, QF_ENQ]
    gi[GI_N_WAITING] -= 1
    tenant_waiting[wq[q, W_TENANT]] -= 1
    need = need_blocks(q, qi, p[P_BT])
    ci[c, CI_FREE] -= need
    if qi[q, QI_SWAPPED] == 1:
        qi[q, QI_SWAPPED] = 0
        qi[q, QI_JUST_IN] = 1
        ci[c, CI_SWAP_BLOCKS] += need
        gf[GF_SWAP_S] += need * pf[PF_SWAP_S_PER_BLOCK]
    else:
        qi[q, QI_BLOCKS] = need
    n = ci[c, CI_NRUN]
    running[c, n] = q
    ci[c, CI_NRUN] = n + 1
    qf[q, QF_RUN_START] = t
    qf[q, QF_SLICE_START] = t


@numba.njit(cache=True)
def _preempt(c, q, swap, t, pf, wq, qi, qf, ci, running, gi, gf, tenant_waiting):
    n = ci[c, CI_NRUN]
    k = 0
    for i in range(n):
        if running[c, i] != q:
            running[c, k] = running[c, i]
            k += 1
    for i in range(k, n):
        running[c, i] = -1
    ci[c, CI_NRUN] = k
    blocks = qi[q, QI_BLOCKS]
    ci[c, CI_FREE] += blocks
    qi[q, QI_PREEMPTS] += 1
    if swap:
        qi[q, QI_SWAPPED] = 1
        qi[q, QI_SWAPS] += 1
        ci[c, CI_SWAP_BLOCKS] += blocks
        gf[GF_SWAP_S] += blocks * pf[PF_SWAP_S_PER_BLOCK]
        gi[GI_N_SWAPS] += 1
    else:
        gi[GI_RECOMPUTE_TOKENS] += qi[q, QI_PREFILLED]
        if qi[q, QI_GENERATED] > 0:
            qi[q, QI_TARGET] = wq[q, W_PROMPT] + qi[q, QI_GENERATED]
        qi[q, QI_PREFILLED] = 0
        qi[q, QI_KV] = 0
        qi[q, QI_BLOCKS] = 0
        qi[q, QI_RECOMPUTES] += 1
        gi[GI_N_RECOMPUTES] += 1
    qi[q, QI_STATE] = WAITING
    gi[GI_FIRST_WAITING] = min(gi[GI_FIRST_WAITING], q)
    qf[q, QF_ENQ] = t
    gi[GI_N_WAITING] += 1
    tenant_waiting[wq[q, W_TENANT]] += 1
    for cc in range(ci.shape[0]):
        if ci[cc, CI_BUSY] == 0:
            ci[cc, CI_NEED_COMPOSE] = 1


@numba.njit(cache=True)
def apply_action(action, p, pf, wq, qi, qf, ci, running, visible, victims, gi, gf, tenant_waiting):
    """Apply a legal ``action`` at the current decision point (the env's docstring lists the actions).
    Returns the request preempted (-1 if none) and whether it was swapped."""
    kind = gi[GI_KIND]
    c = gi[GI_CORE]
    k = p[P_K]
    t = gf[GF_CLOCK]
    victim = -1
    swapped = False
    if kind == ADMIT:
        if action == 2 * k:
            ci[c, CI_NO_ADMIT] = 1
        else:
            _admit(c, visible[action], t, p, pf, wq, qi, qf, ci, running, gi, gf, tenant_waiting)
    elif kind == PREEMPT:
        swapped = action < k
        victim = victims[action] if swapped else victims[action - k]
        _preempt(c, victim, swapped, t, pf, wq, qi, qf, ci, running, gi, gf, tenant_waiting)
        ci[c, CI_KV_PREEMPTED] = 1
        gi[GI_N_KV_PREEMPT] += 1
    elif kind == SLICE_END:
        r = gi[GI_REQ]
        if action == 2 * k:
            qf[r, QF_SLICE_START] = t
        else:
            swapped = action == 0
            victim = r
            _preempt(c, r, swapped, t, pf, wq, qi, qf, ci, running, gi, gf, tenant_waiting)
            gi[GI_N_SLICE_PREEMPT] += 1
    gi[GI_KIND] = NO_DECISION
    return victim, swapped


@numba.njit(cache=True)
def observe(obs, p, pf, prof, wq, qi, qf, ci, cf, visible, victims, gi, gf, tenant_waiting, tenant_service,
            n_types, n_active, obs_clip):  # fmt: skip
    """Fill the flat observation (layout in the env's docstring)."""
    obs[:] = 0.0
    k = p[P_K]
    bt = p[P_BT]
    t = gf[GF_CLOCK]
    kind = gi[GI_KIND]
    c = gi[GI_CORE]
    free = ci[c, CI_FREE] if c >= 0 else p[P_BLOCKS]
    f1 = 10 + n_types
    for j in range(k):
        q = visible[j]
        if q < 0:
            continue
        base = j * f1
        ten = wq[q, W_TENANT]
        obs[base] = 1.0
        obs[base + 1] = (t - qf[q, QF_ENQ]) / 10.0
        obs[base + 2] = qi[q, QI_TARGET] / 1000.0
        obs[base + 3] = qi[q, QI_GENERATED] / 1000.0
        obs[base + 4] = wq[q, W_STEP] / 10.0
        obs[base + 5] = qi[q, QI_PREEMPTS]
        obs[base + 6] = qi[q, QI_SWAPPED]
        obs[base + 7] = need_blocks(q, qi, bt) / max(free, 1)
        obs[base + 8] = tenant_service[ten] / 1e5
        obs[base + 9] = tenant_waiting[ten] / 10.0
        obs[base + 10 + wq[q, W_TYPE]] = 1.0
    pos = k * f1
    lp, lpf, db, sc = prof
    for j in range(k):
        q = victims[j]
        if q < 0:
            continue
        base = pos + j * 7
        obs[base] = 1.0
        obs[base + 1] = qi[q, QI_KV] / 1000.0
        obs[base + 2] = qi[q, QI_GENERATED] / 1000.0
        obs[base + 3] = (t - qf[q, QF_RUN_START]) / 10.0
        obs[base + 4] = 2.0 * qi[q, QI_BLOCKS] * pf[PF_SWAP_S_PER_BLOCK]
        obs[base + 5] = prefill_s(float(wq[q, W_PROMPT] + qi[q, QI_GENERATED]), lp, lpf, sc)
        obs[base + 6] = wq[q, W_STEP] / 10.0
    pos += k * 7
    if kind > 0:
        obs[pos + kind - 1] = 1.0
    pos += 3
    n_cores = ci.shape[0]
    for cc in range(n_cores):
        obs[pos] = 1.0 if cc == c else 0.0
        obs[pos + 1] = ci[cc, CI_NRUN] / p[P_MAX_SEQS]
        obs[pos + 2] = (p[P_BLOCKS] - ci[cc, CI_FREE]) / p[P_BLOCKS]
        obs[pos + 3] = max(cf[cc, CF_ITER_END] - t, 0.0) if ci[cc, CI_BUSY] == 1 else 0.0
        pos += 4
    n_wait = gi[GI_N_WAITING]
    obs[pos] = max(n_wait - k, 0) / 10.0
    obs[pos + 1] = t / pf[PF_MAX_SIM]
    obs[pos + 2] = n_active / 10.0
    obs[pos + 3] = n_wait / 10.0
    for i in range(obs.shape[0]):
        obs[i] = min(max(obs[i], -obs_clip), obs_clip)
