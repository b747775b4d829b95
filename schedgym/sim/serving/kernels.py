"""numba kernels of the serving core: advance every fleet to a time ``t``, event by event.

Semantics (the pure-Python reference in ``tests/serving_reference.py`` implements the same rules one
iteration at a time, and ``tests/test_serving_core.py`` checks they agree exactly):

- **Arrivals** are processed in order. Before request ``q`` arriving at ``a`` is routed, every replica
  completes the iterations that end at or before ``a``. It is routed to a *ready* replica (not
  provisioning, not draining): least outstanding tokens (remaining prompt + output tokens of the requests
  it holds; ties to the lowest slot) or round robin over ready slots in index order. It joins that
  replica's FCFS waiting queue; an idle replica starts an iteration at ``a``. A request that cannot fit
  in an empty replica's KV pool (``ceil((prompt + output) / block) > blocks``) is rejected on arrival.
- **Iterations** (continuous batching, Orca OSDI'22 / vLLM SOSP'23). At each boundary the replica
  composes the next iteration:
  1. every running sequence past its prefill decodes one token, oldest first; a sequence whose KV cache
     needs a new block (``kv % block == 0``) takes a free one, and if none is free the *newest* running
     sequence is preempted until one is (possibly the sequence itself);
  2. running sequences still in prefill get prompt chunks, oldest first, within the token budget
     ``max_num_batched_tokens`` left after the decodes (chunked prefill, Sarathi-Serve OSDI'24);
  3. if nothing was preempted, waiting requests are admitted FCFS while fewer than ``max_num_seqs``
     run, the head's blocks fit (``ceil(target / block)`` for a (re)prefill, its swapped blocks for a
     swapped sequence) and, for a prefill, budget is left; an admitted prefill gets a first chunk.
  The iteration lasts :func:`~schedgym.sim.serving.profile.iteration_s` plus swap copies. When it ends,
  prefill chunks are stored in the KV; a prompt whose prefill completes emits a token (the first one
  sets TTFT); each decode stores one token and emits one; a request that has emitted all its output
  tokens finishes and frees its blocks.
- **Preemption** (vLLM): *recompute* drops the sequence's KV; it rejoins the front of the waiting queue
  and later re-prefills prompt + generated tokens. *swap* (decode-phase sequences only) copies its blocks
  to host memory (``swap_s_per_block`` each, added to the iteration) and back on readmission.
- Block sizes are powers of two (vLLM's 8, 16, 32), so block arithmetic is shifts and masks.
- **Lifecycle**: provisioning -> ready at its ready time -> draining (no new requests; finishes what it
  holds) -> released when empty. Billing runs from launch to release.

- **Decode runs**: back-to-back pure-decode iterations of the same batch at the same clock form a run;
  iteration ``j`` of a run ends at the closed form
  :func:`~schedgym.sim.serving.profile.decode_run_end_s` (the sum of the per-iteration times), which
  both this kernel and the reference simulator evaluate, so their event times are bitwise equal.

Fast path: a replica in a decode run with nothing admissible jumps over all the iterations that end by
the next event (an arrival, the step's end, a completion or a missing block) in O(1): it inverts the
run's quadratic end time for the number of iterations and adds that many tokens to the replica's
counters. The running sequences' own KV / token / block counts catch up in one O(batch) pass
(``_materialize``) before the slow path touches the replica and at the end of every ``advance``, so
Python never sees them stale. Busy time and energy are summed per jump (equal to ~1e-12 relative).

numba's on-disk cache does not notice changes to *other* files: PowerCapping's cached ``_run_seconds``
compiles ``_advance_all`` into itself, so after editing this file run ``make clean-numba-cache``.
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.sim.borrow import borrow
from schedgym.sim.serving.params import (
    PF_ALPHA,
    PF_DECODE_FREQ_SENS,
    PF_DECODE_MEM_SHARE,
    PF_DECODE_W,
    PF_IDLE_W,
    PF_PREFILL_W,
    PF_SWAP_S_PER_BLOCK,
    PI_BLOCK,
    PI_BLOCK_SHIFT,
    PI_BLOCKS,
    PI_BUDGET,
    PI_GPUS,
    PI_MAX_SEQS,
    PI_ROUND_ROBIN,
    PI_SWAP,
)
from schedgym.sim.serving.profile import S_KV_S_PER_TOKEN, decode_run_end_from, iteration_s
from schedgym.sim.serving.state import (
    EF_GONE_BILLED_S,
    EF_GONE_BUSY_S,
    EF_GONE_DECODE_S,
    EF_GONE_ENERGY_J,
    EF_GONE_PREFILL_S,
    EF_NOW,
    EI_FAST_ITERATIONS,
    EI_ITERATIONS,
    EI_N_DONE,
    EI_N_REQUESTS,
    EI_NEXT_ARRIVAL,
    EI_PREEMPTIONS,
    EI_REJECTED,
    EI_RR,
    KIND_DECODE,
    KIND_IDLE,
    KIND_MIXED,
    Q_DONE,
    Q_REJECTED,
    Q_RUNNING,
    Q_WAITING,
    QF_ADMIT_T,
    QF_FINISH_T,
    QF_FIRST_T,
    QI_BLOCKS,
    QI_GENERATED,
    QI_KV,
    QI_NEXT,
    QI_PREEMPT,
    QI_PREFILLED,
    QI_REPLICA,
    QI_STATE,
    QI_SWAPPED,
    QI_TARGET,
    R_DRAINING,
    R_EMPTY,
    R_PROVISIONING,
    R_READY,
    RF_BUSY_S,
    RF_DECODE_S,
    RF_ENERGY_J,
    RF_FREQ,
    RF_ITER_END,
    RF_ITER_START,
    RF_LAUNCH_T,
    RF_PREFILL_S,
    RF_READY_T,
    RF_RUN_ANCHOR,
    RF_LAZY_UNTIL,
    RF_RUN_FIRST_S,
    RF_RUN_FREQ,
    RF_RUN_FREQ_FACTOR,
    RF_RUN_GROWTH_S,
    RI_BUSY,
    RI_DEC_B,
    RI_DEC_CTX,
    RI_FREE,
    RI_HEAD,
    RI_KIND,
    RI_NRUN,
    RI_NWAIT,
    RI_OUTSTANDING,
    RI_PREEMPTS,
    RI_STATE,
    RI_TAIL,
    RI_TOKENS,
    RI_LAST_PREEMPTED,
    RI_RUN_B,
    RI_RUN_C0,
    RI_RUN_J,
    RI_RUN_MAXJ,
    RI_RUN_SYNC_J,
    FleetState,
)

__all__ = ["advance", "release_if_idle", "phase_power_w"]


@numba.njit(cache=True)
def phase_power_w(kind: int, freq: float, pf: np.ndarray) -> float:
    """Watts per GPU while running an iteration of ``kind`` at frequency cap ``freq`` (profile docstring)."""
    idle = pf[PF_IDLE_W]
    fa = freq ** pf[PF_ALPHA]
    if kind == KIND_MIXED:
        return idle + (pf[PF_PREFILL_W] - idle) * fa
    m = pf[PF_DECODE_MEM_SHARE]
    return idle + (pf[PF_DECODE_W] - idle) * (m + (1.0 - m) * fa)


@numba.njit(cache=True)
def _account(e, r, dt, kind, pi, pf, ri, rf):
    rf[e, r, RF_BUSY_S] += dt
    if kind == KIND_MIXED:
        rf[e, r, RF_PREFILL_S] += dt
    else:
        rf[e, r, RF_DECODE_S] += dt
    rf[e, r, RF_ENERGY_J] += dt * pi[PI_GPUS] * phase_power_w(kind, rf[e, r, RF_FREQ], pf)


@numba.njit(cache=True)
def _push_front(e, r, q, qi, ri):
    qi[e, q, QI_NEXT] = ri[e, r, RI_HEAD]
    ri[e, r, RI_HEAD] = q
    if ri[e, r, RI_TAIL] == -1:
        ri[e, r, RI_TAIL] = q
    ri[e, r, RI_NWAIT] += 1
    qi[e, q, QI_STATE] = Q_WAITING


@numba.njit(cache=True)
def _preempt_newest(e, r, pi, prompt, qi, ri, running) -> tuple[int, int]:
    """Preempt the newest running sequence; returns (its id, blocks to swap out)."""
    n = ri[e, r, RI_NRUN] - 1
    v = running[e, r, n]
    running[e, r, n] = -1
    ri[e, r, RI_NRUN] = n
    blocks = qi[e, v, QI_BLOCKS]
    ri[e, r, RI_FREE] += blocks
    qi[e, v, QI_PREEMPT] += 1
    ri[e, r, RI_PREEMPTS] += 1
    swap_out = 0
    if pi[PI_SWAP] == 1 and qi[e, v, QI_PREFILLED] == qi[e, v, QI_TARGET]:
        qi[e, v, QI_SWAPPED] = 1
        swap_out = blocks
    else:
        old_remaining = qi[e, v, QI_TARGET] - qi[e, v, QI_PREFILLED]
        target = prompt[e, v] + qi[e, v, QI_GENERATED]
        ri[e, r, RI_OUTSTANDING] += target - old_remaining
        qi[e, v, QI_TARGET] = target
        qi[e, v, QI_PREFILLED] = 0
        qi[e, v, QI_KV] = 0
        qi[e, v, QI_BLOCKS] = 0
    _push_front(e, r, v, qi, ri)
    return v, swap_out


@numba.njit(cache=True)
def _compose(e, r, t, pi, pf, prof, prompt, qi, qf, ri, rf, running, sched) -> int:
    """Compose the iteration of replica ``r`` starting at ``t``; returns the number of preemptions."""
    bt = pi[PI_BLOCK]
    budget = pi[PI_BUDGET]
    b = 0
    ctx = 0
    preempted = 0
    swap_blocks = 0
    # 1. decodes, oldest first, growing the KV by a block where needed
    i = 0
    while i < ri[e, r, RI_NRUN]:
        q = running[e, r, i]
        sched[e, r, i] = 0
        if qi[e, q, QI_PREFILLED] < qi[e, q, QI_TARGET] or qi[e, q, QI_SWAPPED] == 1:
            i += 1
            continue
        alive = True
        if qi[e, q, QI_KV] & (bt - 1) == 0:
            while ri[e, r, RI_FREE] == 0:
                v, out = _preempt_newest(e, r, pi, prompt, qi, ri, running)
                preempted += 1
                swap_blocks += out
                if v == q:
                    alive = False
                    break
            if alive:
                ri[e, r, RI_FREE] -= 1
                qi[e, q, QI_BLOCKS] += 1
        if not alive:
            break
        sched[e, r, i] = 1
        b += 1
        ctx += qi[e, q, QI_KV] + 1
        budget -= 1
        i += 1
    # 2. prefill chunks of running sequences, oldest first
    p_tokens = 0
    cross = 0.0
    for i in range(ri[e, r, RI_NRUN]):
        q = running[e, r, i]
        rem = qi[e, q, QI_TARGET] - qi[e, q, QI_PREFILLED]
        if rem > 0 and qi[e, q, QI_SWAPPED] == 0:
            c = min(rem, budget)
            sched[e, r, i] = c
            p_tokens += c
            cross += float(c) * float(qi[e, q, QI_PREFILLED])
            budget -= c
    # 3. admission, FCFS, only if nothing was preempted
    if preempted == 0:
        while ri[e, r, RI_NWAIT] > 0 and ri[e, r, RI_NRUN] < pi[PI_MAX_SEQS]:
            h = ri[e, r, RI_HEAD]
            swapped = qi[e, h, QI_SWAPPED] == 1
            if swapped:
                need = qi[e, h, QI_BLOCKS]
            else:
                need = (qi[e, h, QI_TARGET] + bt - 1) >> pi[PI_BLOCK_SHIFT]
                if budget == 0:
                    break
            if need > ri[e, r, RI_FREE]:
                break
            nxt = qi[e, h, QI_NEXT]
            ri[e, r, RI_HEAD] = nxt
            if nxt == -1:
                ri[e, r, RI_TAIL] = -1
            qi[e, h, QI_NEXT] = -1
            ri[e, r, RI_NWAIT] -= 1
            ri[e, r, RI_FREE] -= need
            qi[e, h, QI_BLOCKS] = need
            qi[e, h, QI_STATE] = Q_RUNNING
            if qf[e, h, QF_ADMIT_T] < 0.0:
                qf[e, h, QF_ADMIT_T] = t
            n = ri[e, r, RI_NRUN]
            running[e, r, n] = h
            ri[e, r, RI_NRUN] = n + 1
            if swapped:
                qi[e, h, QI_SWAPPED] = 0
                swap_blocks += need
                sched[e, r, n] = 0
            else:
                c = min(qi[e, h, QI_TARGET], budget)
                sched[e, r, n] = c
                p_tokens += c
                budget -= c
    freq = rf[e, r, RF_FREQ]
    if p_tokens > 0 or (b == 0 and swap_blocks > 0):
        kind = KIND_MIXED
    elif b > 0 and swap_blocks == 0:
        kind = KIND_DECODE
    elif b > 0:
        kind = KIND_MIXED
    else:
        kind = KIND_IDLE
    if kind == KIND_DECODE:
        # a decode run continues while the same batch decodes back to back at the same clock
        if not (ri[e, r, RI_KIND] == KIND_DECODE and ri[e, r, RI_RUN_B] == b and preempted == 0
                and rf[e, r, RF_RUN_FREQ] == freq):
            ri[e, r, RI_RUN_J] = -1
            ri[e, r, RI_RUN_B] = b
            ri[e, r, RI_RUN_C0] = ctx
            ri[e, r, RI_RUN_MAXJ] = -1
            rf[e, r, RF_RUN_ANCHOR] = t
            rf[e, r, RF_RUN_FREQ] = freq
            # the constants of profile.decode_run_end_s, in its arithmetic
            kv = prof[3][S_KV_S_PER_TOKEN]
            rf[e, r, RF_RUN_FIRST_S] = prof[2][b] + kv * float(ctx)
            rf[e, r, RF_RUN_GROWTH_S] = kv * float(b)
            rf[e, r, RF_RUN_FREQ_FACTOR] = 1.0 + pf[PF_DECODE_FREQ_SENS] * (1.0 / freq - 1.0)
        j = ri[e, r, RI_RUN_J] + 1
        ri[e, r, RI_RUN_J] = j
        ri[e, r, RI_RUN_SYNC_J] = j  # the slow path keeps the sequences' state current
        end = _run_end(e, r, j, rf)
    else:
        dt = iteration_s(p_tokens, cross, b, float(ctx), freq, prof[0], prof[1], prof[2], prof[3],
                         pf[PF_DECODE_FREQ_SENS])
        dt += swap_blocks * pf[PF_SWAP_S_PER_BLOCK]
        end = t + dt
    ri[e, r, RI_DEC_B] = b
    ri[e, r, RI_DEC_CTX] = ctx
    ri[e, r, RI_KIND] = kind
    rf[e, r, RF_LAZY_UNTIL] = 0.0
    ri[e, r, RI_LAST_PREEMPTED] = preempted
    rf[e, r, RF_ITER_START] = t
    if kind == KIND_IDLE:
        ri[e, r, RI_BUSY] = 0
        rf[e, r, RF_ITER_END] = t
    else:
        ri[e, r, RI_BUSY] = 1
        rf[e, r, RF_ITER_END] = end
    return preempted


@numba.njit(cache=True)
def _finalize(e, r, pi, pf, output, qi, qf, ri, rf, running, sched, ei, done_ids) -> None:
    """Apply the effects of replica ``r``'s iteration ending at ``rf[RF_ITER_END]``."""
    t_end = rf[e, r, RF_ITER_END]
    _account(e, r, t_end - rf[e, r, RF_ITER_START], ri[e, r, RI_KIND], pi, pf, ri, rf)
    n = ri[e, r, RI_NRUN]
    k = 0
    for i in range(n):
        q = running[e, r, i]
        c = sched[e, r, i]
        if c > 0:
            if qi[e, q, QI_PREFILLED] < qi[e, q, QI_TARGET]:
                qi[e, q, QI_PREFILLED] += c
                qi[e, q, QI_KV] += c
                ri[e, r, RI_OUTSTANDING] -= c
                ri[e, r, RI_TOKENS] += c
                if qi[e, q, QI_PREFILLED] == qi[e, q, QI_TARGET]:
                    if qf[e, q, QF_FIRST_T] < 0.0:
                        qf[e, q, QF_FIRST_T] = t_end
                    qi[e, q, QI_GENERATED] += 1
                    ri[e, r, RI_OUTSTANDING] -= 1
            else:
                qi[e, q, QI_KV] += 1
                qi[e, q, QI_GENERATED] += 1
                ri[e, r, RI_OUTSTANDING] -= 1
                ri[e, r, RI_TOKENS] += 1
        if qi[e, q, QI_GENERATED] >= output[e, q]:
            qf[e, q, QF_FINISH_T] = t_end
            qi[e, q, QI_STATE] = Q_DONE
            ri[e, r, RI_FREE] += qi[e, q, QI_BLOCKS]
            qi[e, q, QI_BLOCKS] = 0
            done_ids[e, ei[e, EI_N_DONE]] = q
            ei[e, EI_N_DONE] += 1
        else:
            running[e, r, k] = q
            sched[e, r, k] = 0
            k += 1
    for i in range(k, n):
        running[e, r, i] = -1
        sched[e, r, i] = 0
    ri[e, r, RI_NRUN] = k


@numba.njit(cache=True)
def _materialize(e, r, pi, qi, ri, running) -> None:
    """Bring the running sequences' KV, tokens and blocks (and the free blocks) of a replica in a decode
    run up to the in-flight iteration after jumps: iterations RI_RUN_SYNC_J.. RI_RUN_J - 1 finalized, each
    sequence one token further per iteration and a block more at every multiple of the block size."""
    k = ri[e, r, RI_RUN_J] - ri[e, r, RI_RUN_SYNC_J]
    if k <= 0 or ri[e, r, RI_KIND] != KIND_DECODE:
        return
    shift = pi[PI_BLOCK_SHIFT]
    taken = 0
    for i in range(ri[e, r, RI_NRUN]):
        q = running[e, r, i]
        kv = qi[e, q, QI_KV]
        grown = ((kv + k) >> shift) - (kv >> shift)
        qi[e, q, QI_BLOCKS] += grown
        taken += grown
        qi[e, q, QI_KV] = kv + k
        qi[e, q, QI_GENERATED] += k
    ri[e, r, RI_FREE] -= taken
    ri[e, r, RI_RUN_SYNC_J] = ri[e, r, RI_RUN_J]


@numba.njit(cache=True)
def _run_event_limit(e, r, pi, output, qi, ri, running, scratch) -> int:
    """The last index of the current decode run that can be composed with no completion before it and no
    missing block: min over the batch of the tokens left, and the free blocks the run's KV growth uses."""
    bt = pi[PI_BLOCK]
    n = ri[e, r, RI_NRUN]
    hist = scratch[:bt]  # running sequences by (kv mod block)
    hist[:] = 0
    m = 1 << 62
    for i in range(n):
        q = running[e, r, i]
        rem = output[e, q] - qi[e, q, QI_GENERATED]
        if rem < m:
            m = rem
        hist[qi[e, q, QI_KV] & (bt - 1)] += 1
    # Composing the run's next K iterations takes Need(K) = n (K // bt) + #{kv mod bt >= bt - K mod bt}
    # blocks (each sequence takes one whenever its KV reaches a multiple of bt). Largest K with Need <= free:
    free = ri[e, r, RI_FREE]
    whole = free // n
    k_blocks = whole * bt
    used = whole * n
    above = 0  # sequences with kv mod bt >= bt - s
    for s in range(1, bt):
        above += hist[bt - s]
        if used + above > free:
            break
        k_blocks = whole * bt + s
    # finalizing the in-flight iteration and the next m - 2 never completes anyone
    return ri[e, r, RI_RUN_J] + min(m - 1, k_blocks)


@numba.njit(cache=True, inline="always")
def _run_end(e, r, j, rf) -> float:
    """End time of iteration ``j`` of replica ``r``'s current decode run."""
    return decode_run_end_from(rf[e, r, RF_RUN_ANCHOR], j, rf[e, r, RF_RUN_FIRST_S], rf[e, r, RF_RUN_GROWTH_S],
                               rf[e, r, RF_RUN_FREQ_FACTOR])


@numba.njit(cache=True, inline="always")
def _last_done(e, r, until, j0, max_j, rf) -> int:
    """Largest run index j in [j0, max_j - 1] whose iteration ends by ``until`` (iteration j0 does):
    invert the run's quadratic end time for a first guess, then walk to the exact answer on the closed
    form itself (the walk is 0-1 steps: the guess is exact but for rounding)."""
    first = rf[e, r, RF_RUN_FIRST_S]
    growth = rf[e, r, RF_RUN_GROWTH_S]
    span = (until - rf[e, r, RF_RUN_ANCHOR]) / rf[e, r, RF_RUN_FREQ_FACTOR]
    # end(j) <= until  <=>  x = j + 1 solves (growth / 2) x^2 + (first - growth / 2) x <= span
    if growth > 0.0:
        lin = first - 0.5 * growth
        x = (-lin + np.sqrt(lin * lin + 2.0 * growth * span)) / growth
    else:
        x = span / first
    j = int(x) - 1 if x < 4.0e18 else max_j - 1
    if j > max_j - 1:
        j = max_j - 1
    if j < j0:
        j = j0
    while j + 1 <= max_j - 1 and _run_end(e, r, j + 1, rf) <= until:
        j += 1
    while j > j0 and _run_end(e, r, j, rf) > until:
        j -= 1
    return j


@numba.njit(cache=True)
def _fast_decode(e, r, until, pi, pf, prof, output, qi, ri, rf, running, ei, scratch) -> None:
    """Jump a replica in a decode run over its iterations that end by ``until``, stopping before any
    completion, missing block or possible admission, in O(1) after the first call of a run (see the
    module docstring): the times come from the run's closed form, so they equal the slow path's."""
    bt = pi[PI_BLOCK]
    n = ri[e, r, RI_NRUN]
    b = ri[e, r, RI_DEC_B]
    if b != n or ri[e, r, RI_LAST_PREEMPTED] > 0 or rf[e, r, RF_FREQ] != rf[e, r, RF_RUN_FREQ]:
        return  # (a new clock starts a new run at the next boundary)
    if ri[e, r, RI_NWAIT] > 0 and n < pi[PI_MAX_SEQS]:
        # A request that joined the queue after this iteration was composed may be admissible at the
        # next boundary; free blocks only shrink in a run, so a head that does not fit now never will.
        h = ri[e, r, RI_HEAD]
        if qi[e, h, QI_SWAPPED] == 1:
            need = qi[e, h, QI_BLOCKS]
        else:
            need = (qi[e, h, QI_TARGET] + bt - 1) >> pi[PI_BLOCK_SHIFT]
            if pi[PI_BUDGET] - b == 0:
                need = 1 << 62
        if need <= ri[e, r, RI_FREE]:  # (RI_FREE may lag and only overstates: make it exact first)
            _materialize(e, r, pi, qi, ri, running)
            if need <= ri[e, r, RI_FREE]:
                return
    j0 = ri[e, r, RI_RUN_J]
    max_j = ri[e, r, RI_RUN_MAXJ]
    if max_j < 0:
        _materialize(e, r, pi, qi, ri, running)
        max_j = _run_event_limit(e, r, pi, output, qi, ri, running, scratch)
        ri[e, r, RI_RUN_MAXJ] = max_j
    if max_j <= j0:
        return
    rf[e, r, RF_LAZY_UNTIL] = _run_end(e, r, max_j, rf)  # safe to leave behind until then
    j = _last_done(e, r, until, j0, max_j, rf)
    k = j - j0 + 1  # iterations j0..j finalize; j + 1 is composed
    last_end = _run_end(e, r, j, rf)
    _account(e, r, last_end - rf[e, r, RF_ITER_START], KIND_DECODE, pi, pf, ri, rf)  # one power level
    ei[e, EI_ITERATIONS] += k
    ei[e, EI_FAST_ITERATIONS] += k
    ri[e, r, RI_OUTSTANDING] -= k * b
    ri[e, r, RI_TOKENS] += k * b
    ri[e, r, RI_DEC_CTX] += k * b
    ri[e, r, RI_RUN_J] = j + 1
    rf[e, r, RF_ITER_START] = last_end
    rf[e, r, RF_ITER_END] = _run_end(e, r, j + 1, rf)


@numba.njit(cache=True)
def _release(e, r, t, ri, rf, ef) -> None:
    ef[e, EF_GONE_BILLED_S] += t - rf[e, r, RF_LAUNCH_T]
    ef[e, EF_GONE_BUSY_S] += rf[e, r, RF_BUSY_S]
    ef[e, EF_GONE_ENERGY_J] += rf[e, r, RF_ENERGY_J]
    ef[e, EF_GONE_PREFILL_S] += rf[e, r, RF_PREFILL_S]
    ef[e, EF_GONE_DECODE_S] += rf[e, r, RF_DECODE_S]
    for c in range(ri.shape[2]):
        ri[e, r, c] = 0
    ri[e, r, RI_HEAD] = -1
    ri[e, r, RI_TAIL] = -1
    for c in range(rf.shape[2]):
        rf[e, r, c] = 0.0
    rf[e, r, RF_FREQ] = 1.0
    ri[e, r, RI_STATE] = R_EMPTY


@numba.njit(cache=True)
def release_if_idle(e, r, t, ri, rf, ef) -> bool:
    """Release a draining replica that holds nothing (at ``t``)."""
    if ri[e, r, RI_STATE] == R_DRAINING and ri[e, r, RI_BUSY] == 0 and ri[e, r, RI_NRUN] == 0 and ri[e, r, RI_NWAIT] == 0:
        _release(e, r, t, ri, rf, ef)
        return True
    return False


@numba.njit(cache=True)
def _advance_replica(e, r, until, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids, scratch):
    """Run replica ``r``'s iterations that end at or before ``until``."""
    while ri[e, r, RI_BUSY] == 1 and rf[e, r, RF_ITER_END] <= until:
        if ri[e, r, RI_KIND] == KIND_DECODE:
            _fast_decode(e, r, until, pi, pf, prof, output, qi, ri, rf, running, ei, scratch)
            if rf[e, r, RF_ITER_END] > until:
                break
        t = rf[e, r, RF_ITER_END]
        _materialize(e, r, pi, qi, ri, running)
        _finalize(e, r, pi, pf, output, qi, qf, ri, rf, running, sched, ei, done_ids)
        ei[e, EI_ITERATIONS] += 1
        ei[e, EI_PREEMPTIONS] += _compose(e, r, t, pi, pf, prof, prompt, qi, qf, ri, rf, running, sched)
        if ri[e, r, RI_BUSY] == 0:
            release_if_idle(e, r, t, ri, rf, ef)


@numba.njit(cache=True, inline="always")
def _outstanding_at(e, r, a, ri, rf) -> int:
    """Replica ``r``'s outstanding tokens at ``a``; for a replica left behind on its decode run (its
    in-flight iteration ended by ``a``), from the run's closed form, without moving it."""
    out = ri[e, r, RI_OUTSTANDING]
    if ri[e, r, RI_BUSY] == 1 and rf[e, r, RF_ITER_END] <= a:
        j0 = ri[e, r, RI_RUN_J]
        j = _last_done(e, r, a, j0, ri[e, r, RI_RUN_MAXJ], rf)
        out -= (j - j0 + 1) * ri[e, r, RI_RUN_B]
    return out


@numba.njit(cache=True)
def _route(e, q, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei) -> int:
    """The replica request ``q`` arriving at ``a`` goes to (-1: rejected, it can never fit)."""
    bt = pi[PI_BLOCK]
    if (prompt[e, q] + output[e, q] + bt - 1) >> pi[PI_BLOCK_SHIFT] > pi[PI_BLOCKS]:
        qi[e, q, QI_STATE] = Q_REJECTED
        ei[e, EI_REJECTED] += 1
        return -1
    n_slots = ri.shape[1]
    best = -1
    if pi[PI_ROUND_ROBIN] == 1:
        n_ready = 0
        for r in range(n_slots):
            if ri[e, r, RI_STATE] == R_READY:
                n_ready += 1
        pick = ei[e, EI_RR] % n_ready
        ei[e, EI_RR] += 1
        for r in range(n_slots):
            if ri[e, r, RI_STATE] == R_READY:
                if pick == 0:
                    best = r
                    break
                pick -= 1
    else:
        best_out = 0
        for r in range(n_slots):
            if ri[e, r, RI_STATE] == R_READY:
                out = _outstanding_at(e, r, a, ri, rf)
                if best == -1 or out < best_out:
                    best = r
                    best_out = out
    return best


@numba.njit(cache=True)
def _enqueue(e, q, r, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei) -> None:
    """Request ``q`` joins replica ``r``'s FCFS queue at ``a``; an idle replica starts an iteration."""
    qi[e, q, QI_REPLICA] = r
    qi[e, q, QI_NEXT] = -1
    qi[e, q, QI_STATE] = Q_WAITING
    if ri[e, r, RI_TAIL] == -1:
        ri[e, r, RI_HEAD] = q
    else:
        qi[e, ri[e, r, RI_TAIL], QI_NEXT] = q
    ri[e, r, RI_TAIL] = q
    ri[e, r, RI_NWAIT] += 1
    ri[e, r, RI_OUTSTANDING] += prompt[e, q] + output[e, q]
    rf[e, r, RF_LAZY_UNTIL] = 0.0  # it may be admissible at the next boundary
    if ri[e, r, RI_BUSY] == 0:
        ei[e, EI_PREEMPTIONS] += _compose(e, r, a, pi, pf, prof, prompt, qi, qf, ri, rf, running, sched)


@numba.njit(cache=True)
def _make_ready(e, t, ri, rf) -> int:
    n_ready = 0
    for r in range(ri.shape[1]):
        if ri[e, r, RI_STATE] == R_PROVISIONING and rf[e, r, RF_READY_T] <= t:
            ri[e, r, RI_STATE] = R_READY
        if ri[e, r, RI_STATE] == R_READY:
            n_ready += 1
    return n_ready


@numba.njit(cache=True)
def _advance_fleet(e, until, pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids):
    """Advance fleet ``e`` to ``until``. Touches row ``e`` of the arrays only, so fleets may run in parallel."""
    scratch = np.zeros(pi[PI_BLOCK], dtype=np.int64)
    # borrowed views: no atomic reference counting in the hot loops (schedgym.sim.borrow)
    pi, pf, arrival, prompt, output = borrow(pi), borrow(pf), borrow(arrival), borrow(prompt), borrow(output)
    qi, qf, ri, rf, running, sched = borrow(qi), borrow(qf), borrow(ri), borrow(rf), borrow(running), borrow(sched)
    ei, ef, done_ids, scratch = borrow(ei), borrow(ef), borrow(done_ids), borrow(scratch)
    prof = (borrow(prof[0]), borrow(prof[1]), borrow(prof[2]), borrow(prof[3]))
    n_slots = ri.shape[1]
    n_req = ei[e, EI_N_REQUESTS]
    while ei[e, EI_NEXT_ARRIVAL] < n_req and arrival[e, ei[e, EI_NEXT_ARRIVAL]] < until:
        q = ei[e, EI_NEXT_ARRIVAL]
        a = arrival[e, q]
        for r in range(n_slots):
            # a replica that can only move along its decode run before `a` is left behind (lazy)
            if ri[e, r, RI_BUSY] == 1 and rf[e, r, RF_ITER_END] <= a and not a < rf[e, r, RF_LAZY_UNTIL]:
                _advance_replica(e, r, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids, scratch)
        if _make_ready(e, a, ri, rf) == 0:
            break  # no ready replica: the request waits for one (arrivals stay queued in order)
        r = _route(e, q, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei)
        if r >= 0:
            if ri[e, r, RI_BUSY] == 1 and rf[e, r, RF_ITER_END] <= a:  # catch the chosen one up first
                _advance_replica(e, r, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids, scratch)
            _enqueue(e, q, r, a, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei)
        ei[e, EI_NEXT_ARRIVAL] = q + 1
    for r in range(n_slots):
        if ri[e, r, RI_BUSY] == 1:
            _advance_replica(e, r, until, pi, pf, prof, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids, scratch)
    _make_ready(e, until, ri, rf)
    for r in range(n_slots):
        _materialize(e, r, pi, qi, ri, running)
    ef[e, EF_NOW] = until


@numba.njit(cache=True)
def _advance_all(until, pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids):
    for e in range(ri.shape[0]):
        _advance_fleet(e, until[e], pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, sched, ei, ef, done_ids)


@numba.njit(cache=True, parallel=True)
def _advance_all_parallel(until, pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, scheduled, ei, ef,
                          done_ids):  # fmt: skip
    # (``scheduled``: numba's parfor lowering names an argument of its own ``sched``)
    for e in numba.prange(ri.shape[0]):
        _advance_fleet(e, until[e], pi, pf, prof, arrival, prompt, output, qi, qf, ri, rf, running, scheduled, ei, ef,
                       done_ids)  # fmt: skip


def advance(state: FleetState, until: np.ndarray, pi: np.ndarray, pf: np.ndarray, prof: tuple,
            parallel: bool = False) -> None:
    """Advance every fleet ``e`` of ``state`` to time ``until[e]`` (seconds). ``parallel``: the fleets run on
    numba's threads (they share nothing, so the result is the same bit for bit; for many fleets, e.g. a
    native vector env; not to be called from several Python threads at once)."""
    (_advance_all_parallel if parallel else _advance_all)(
        np.asarray(until, dtype=np.float64),
        pi,
        pf,
        prof,
        state.arrival_s,
        state.prompt_tokens,
        state.output_tokens,
        state.qi,
        state.qf,
        state.ri,
        state.rf,
        state.running,
        state.sched,
        state.ei,
        state.ef,
        state.done_ids,
    )


