"""The dynamics of MemoryMapping-v0 as numba kernels: one call per step, for one env or a batch.

A step of the game (place or discard a buffer, refresh the candidate actions, write the observation and
the action mask) is :func:`step_one`; :func:`begin_one` starts an episode on an instance. The single env
(``env.py``) calls them on its :class:`~schedgym.envs.memory_mapping.types.MappingState` arrays;
the native vector env (``vector.py``) calls :func:`step_batch` / :func:`begin_batch`, which run the very
same core functions on row ``e`` of arrays with a leading env axis.

Arguments are grouped in two tuples so that every caller passes the same things in the same order:

- ``inst`` (:data:`INST_FIELDS`): the instance's arrays, constant over an episode;
- ``st`` (:data:`STATE_FIELDS`): the episode's state arrays, updated in place.

Scalars: ``mode`` (:data:`PLACE` or :data:`ORDER`), ``cap`` (capacity, bytes), ``total_benefit``,
``has_graph`` (the conflict graph is materialised as CSR in ``indptr``/``indices``; otherwise the
neighbours of a buffer are found by a scan of every buffer).

Every number is computed by the same operations in the same order as the Python/numpy code it replaced
(``tests/test_memory_mapping_reference.py`` checks the trajectories bit for bit).
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.sim.borrow import borrow

__all__ = [
    "PLACE", "ORDER", "NO_FIT", "IMAGE_BINS", "INST_FIELDS", "STATE_FIELDS",
    "C_CURSOR", "C_N_CANDIDATES", "C_N_DECIDED", "C_N_PLACED", "C_N_AUTO_DISCARDED", "C_PEAK", "N_COUNTERS",
    "T_BENEFIT", "T_AREA", "N_TOTALS", "begin_one", "step_one", "observe_one", "begin_batch", "step_batch",
]  # fmt: skip

PLACE, ORDER = 0, 1
NO_FIT = np.iinfo(np.int64).max // 4  # "does not fit below the capacity"
IMAGE_BINS = 16
#: ``state.counters`` (int64): position of the current buffer in the order (place mode), candidates
#: shown, buffers decided, buffers placed, buffers sent to slow memory automatically, highest byte used.
C_CURSOR, C_N_CANDIDATES, C_N_DECIDED, C_N_PLACED, C_N_AUTO_DISCARDED, C_PEAK = range(6)
N_COUNTERS = 6
#: ``state.totals`` (float64): benefit placed, area (size x lifetime) placed.
T_BENEFIT, T_AREA = range(2)
N_TOTALS = 2

INST_FIELDS = ("size", "start", "end", "alignment", "benefit", "order", "rank", "bin_lo", "bin_hi", "features",
               "indptr", "indices", "load0")  # fmt: skip
STATE_FIELDS = ("decided", "placed", "offset", "min_viable_offset", "viable_gap_lo", "viable_gap_hi",
                "undecided_load", "cand_buffer", "cand_offset", "cand_gap_lo", "cand_gap_hi", "counters", "totals")  # fmt: skip


# ---------------------------------------------------------------------------------------------- geometry
@numba.njit(cache=True)
def _neighbours(i, start, end, indptr, indices, has_graph):
    """Buffers whose live range overlaps buffer ``i``'s (CSR order, or ascending without a graph)."""
    if has_graph:
        return indices[indptr[i] : indptr[i + 1]]
    m = 0
    for j in range(start.shape[0]):
        if j != i and start[j] < end[i] and end[j] > start[i]:
            m += 1
    out = np.empty(m, indices.dtype)
    m = 0
    for j in range(start.shape[0]):
        if j != i and start[j] < end[i] and end[j] > start[i]:
            out[m] = j
            m += 1
    return out


@numba.njit(cache=True)
def _candidate_offsets(i, nb, placed, offset, size, s, a, cap):
    """Canonical feasible offsets of buffer ``i`` (size ``s``, alignment ``a``) among its placed
    neighbours ``nb``: 0, on top of each, just below each and ``cap - s``, aligned, kept where the buffer
    fits; sorted by the size of the free gap they sit in, ties by lower offset. ``(offsets, gap_lo, gap_hi)``."""
    m = 0
    for j in nb:
        if placed[j]:
            m += 1
    xs = np.empty(m, np.int64)
    tops = np.empty(m, np.int64)
    k = 0
    for j in nb:
        if placed[j]:
            xs[k] = offset[j]
            tops[k] = offset[j] + size[j]
            k += 1
    raw = np.empty(2 * m + 2, np.int64)
    raw[0] = 0
    raw[1] = ((cap - s) // a) * a
    for k in range(m):
        raw[2 + k] = -((-tops[k]) // a) * a
        raw[2 + m + k] = ((xs[k] - s) // a) * a
    raw = np.unique(raw)
    cand = np.empty(raw.shape[0], np.int64)
    below = np.empty(raw.shape[0], np.int64)
    above = np.empty(raw.shape[0], np.int64)
    n = 0
    for c in raw:
        if c < 0 or c + s > cap:
            continue
        lo = 0
        hi = cap
        ok = True
        for k in range(m):
            if c < tops[k] and c + s > xs[k]:
                ok = False
                break
            if tops[k] <= c and tops[k] > lo:
                lo = tops[k]
            if xs[k] >= c + s and xs[k] < hi:
                hi = xs[k]
        if ok:
            cand[n] = c
            below[n] = lo
            above[n] = hi
            n += 1
    cand, below, above = cand[:n], below[:n], above[:n]
    o = np.argsort(above - below, kind="mergesort")  # `cand` ascending already (np.unique): stable
    return cand[o], below[o], above[o]


@numba.njit(cache=True)
def _lowest_fit(nb, placed, offset, size, s, a, cap):
    """Lowest aligned offset where a buffer of size ``s`` fits among its placed neighbours ``nb`` and the
    free gap around it: ``(offset, gap_lo, gap_hi)``, or ``(NO_FIT, 0, 0)``."""
    m = 0
    for j in nb:
        if placed[j]:
            m += 1
    if m == 0:
        if s <= cap:
            return 0, 0, cap
        return NO_FIT, 0, 0
    xs = np.empty(m, np.int64)
    ends = np.empty(m, np.int64)
    k = 0
    for j in nb:
        if placed[j]:
            xs[k] = offset[j]
            ends[k] = offset[j] + size[j]
            k += 1
    # Free gaps: [0, xs[0]), [highest top so far, xs[k]) for each k in offset order, then [top, cap). The
    # order among equal offsets does not matter: the gaps between them are empty.
    o = np.argsort(xs)
    lo = 0
    for r in range(m + 1):
        hi = xs[o[r]] if r < m else cap
        x = -(-lo // a) * a
        if x + s <= hi:
            return x, lo, hi
        if r < m:
            lo = max(lo, ends[o[r]])
    return NO_FIT, 0, 0


@numba.njit(cache=True)
def _coverage_1d(a, b, lo, hi, bins, out):
    """``out[k, q]``: fraction of bin ``q`` of ``[lo, hi)`` cut in ``bins`` equal bins that ``[a[k], b[k])``
    covers (edges ``lo + (hi - lo) * q / bins``, as ``np.linspace`` makes them)."""
    for q in range(bins):
        e0 = lo + (hi - lo) * (q / bins)
        e1 = lo + (hi - lo) * ((q + 1) / bins)
        width = max(e1 - e0, 1e-12)
        for k in range(a.shape[0]):
            c = min(b[k], e1) - max(a[k], e0)
            out[k, q] = c / width if c > 0 else 0.0


@numba.njit(cache=True)
def _occupancy_image(i, nb, placed, offset, size, start, end, cap, img):
    """``img`` (bins x bins) = occupancy of the time x address plane over buffer ``i``'s live range
    (time-major): the share of each cell covered by its placed neighbours ``nb``, clipped to [0, 1]."""
    bins = img.shape[0]
    m = 0
    for j in nb:
        if placed[j]:
            m += 1
    t0 = np.empty(m)
    t1 = np.empty(m)
    x0 = np.empty(m)
    x1 = np.empty(m)
    k = 0
    for j in nb:
        if placed[j]:
            t0[k] = start[j]
            t1[k] = end[j]
            x0[k] = offset[j]
            x1[k] = offset[j] + size[j]
            k += 1
    tc = np.empty((m, bins))
    ac = np.empty((m, bins))
    _coverage_1d(t0, t1, float(start[i]), float(end[i]), bins, tc)
    _coverage_1d(x0, x1, 0.0, float(cap), bins, ac)
    img[:] = 0.0
    for k in range(m):
        # Cells a product of 0 would add to are skipped (adding +0.0 to a sum >= 0 changes nothing).
        q0 = 0
        while q0 < bins and ac[k, q0] == 0.0:
            q0 += 1
        q1 = bins
        while q1 > q0 and ac[k, q1 - 1] == 0.0:
            q1 -= 1
        for p in range(bins):
            if tc[k, p] == 0.0:
                continue
            for q in range(q0, q1):
                img[p, q] += tc[k, p] * ac[k, q]


# ---------------------------------------------------------------------------------------------- moves
@numba.njit(cache=True)
def _mark_decided(b, inst, st):
    bin_lo, bin_hi = inst[7], inst[8]
    size = inst[0]
    decided, load, counters = st[0], st[6], st[11]
    decided[b] = True
    counters[C_N_DECIDED] += 1
    for t in range(bin_lo[b], bin_hi[b]):
        load[t] -= size[b]


@numba.njit(cache=True)
def _place(b, x, total_benefit, inst, st):
    size, start, end, benefit = inst[0], inst[1], inst[2], inst[4]
    placed, offset, counters, totals = st[1], st[2], st[11], st[12]
    placed[b] = True
    offset[b] = x
    totals[T_BENEFIT] += benefit[b]
    totals[T_AREA] += float(size[b] * (end[b] - start[b]))
    counters[C_N_PLACED] += 1
    counters[C_PEAK] = max(counters[C_PEAK], x + size[b])
    _mark_decided(b, inst, st)
    return benefit[b] / total_benefit if total_benefit > 0 else 0.0


@numba.njit(cache=True)
def _update_viable_offsets(b, x, cap, has_graph, inst, st):
    """Order mode: only undecided neighbours of the buffer just placed can change. Those whose viable
    slot it overlaps are recomputed (in neighbour order; a buffer that fits nowhere goes to slow memory);
    for the others it can only narrow the free gap around the slot."""
    size, start, end, alignment, indptr, indices = inst[0], inst[1], inst[2], inst[3], inst[10], inst[11]
    decided, placed, offset, mvo, gap_lo, gap_hi, counters = st[0], st[1], st[2], st[3], st[4], st[5], st[11]
    nb = _neighbours(b, start, end, indptr, indices, has_graph)
    top = x + size[b]
    for j in nb:
        if decided[j]:
            continue
        v = mvo[j]
        if v < top and v + size[j] > x:
            continue
        if top <= v:
            gap_lo[j] = max(gap_lo[j], top)
        else:
            gap_hi[j] = min(gap_hi[j], x)
    for j in nb:
        if decided[j]:
            continue
        v = mvo[j]
        if not (v < top and v + size[j] > x):
            continue
        nbj = _neighbours(j, start, end, indptr, indices, has_graph)
        v, lo, hi = _lowest_fit(nbj, placed, offset, size, size[j], alignment[j], cap)
        mvo[j], gap_lo[j], gap_hi[j] = v, lo, hi
        if v == NO_FIT:
            _mark_decided(j, inst, st)
            counters[C_N_AUTO_DISCARDED] += 1


@numba.njit(cache=True)
def _refresh_candidates(mode, cap, has_graph, inst, st):
    size, start, end, alignment, order, rank, indptr, indices = (
        inst[0], inst[1], inst[2], inst[3], inst[5], inst[6], inst[10], inst[11])  # fmt: skip
    decided, placed, offset, mvo, gap_lo, gap_hi = st[0], st[1], st[2], st[3], st[4], st[5]
    cand_buffer, cand_offset, cand_lo, cand_hi, counters = st[7], st[8], st[9], st[10], st[11]
    n = size.shape[0]
    K = cand_buffer.shape[0]
    cand_buffer[:] = -1
    cand_offset[:] = -1
    cand_lo[:] = 0
    cand_hi[:] = 0
    if mode == PLACE:
        cursor = counters[C_CURSOR]
        if cursor >= n:
            counters[C_N_CANDIDATES] = 0
            return
        b = order[cursor]
        nb = _neighbours(b, start, end, indptr, indices, has_graph)
        offs, lo, hi = _candidate_offsets(b, nb, placed, offset, size, size[b], alignment[b], cap)
        c = offs.shape[0]
        k = min(K, c)
        for j in range(k):
            cand_buffer[j] = b
            cand_offset[j], cand_lo[j], cand_hi[j] = offs[j], lo[j], hi[j]
        if c > K:
            # The last slot shows the lowest feasible offset when the K best-fit ones miss it, so that
            # first fit (and MiniMalloc-style canonical packings) stay reachable with any K.
            lowest = np.argmin(offs)
            if lowest >= K:
                cand_offset[K - 1], cand_lo[K - 1], cand_hi[K - 1] = offs[lowest], lo[lowest], hi[lowest]
        counters[C_N_CANDIDATES] = k
        return
    # Order mode: the K undecided buffers with the lowest (min viable offset, rank), ascending (the keys
    # are distinct: ranks are).
    keys = np.empty(K, np.int64)
    k = 0
    for j in range(n):
        if decided[j]:
            continue
        key = mvo[j] * n + rank[j]
        if k == K and key >= keys[K - 1]:
            continue
        p = k if k < K else K - 1
        while p > 0 and keys[p - 1] > key:
            keys[p] = keys[p - 1]
            cand_buffer[p] = cand_buffer[p - 1]
            p -= 1
        keys[p] = key
        cand_buffer[p] = j
        if k < K:
            k += 1
    for p in range(k):
        j = cand_buffer[p]
        cand_offset[p], cand_lo[p], cand_hi[p] = mvo[j], gap_lo[j], gap_hi[j]
    counters[C_N_CANDIDATES] = k


# ---------------------------------------------------------------------------------------------- observation
@numba.njit(cache=True)
def observe_one(mode, cap, total_benefit, has_graph, inst, st, obs, mask):
    """Write the flat observation (layout in ``MemoryMappingEnv``'s docstring; float32, clipped to [0, 1])
    into ``obs`` and the action mask (int8) into ``mask``."""
    size, start, end, order, features, indptr, indices = inst[0], inst[1], inst[2], inst[5], inst[9], inst[10], inst[11]
    placed, offset, load = st[1], st[2], st[6]
    cand_buffer, cand_offset, cand_lo, cand_hi, counters, totals = st[7], st[8], st[9], st[10], st[11], st[12]
    n = size.shape[0]
    K = cand_buffer.shape[0]
    k = counters[C_N_CANDIDATES]
    mask[:] = 0
    mask[:k] = 1
    mask[K] = 1
    if mode == PLACE:
        focus = order[counters[C_CURSOR]] if counters[C_CURSOR] < n else -1
    else:
        focus = cand_buffer[0] if k > 0 else -1
    capf = float(cap)
    obs[:] = 0.0
    nf = features.shape[1]
    if focus >= 0:
        for f in range(nf):
            obs[f] = min(max(features[focus, f], 0.0), 1.0)
    width = nf + 5
    for j in range(k):
        b = cand_buffer[j]
        base = nf + j * width
        for f in range(nf):
            obs[base + f] = min(max(features[b, f], 0.0), 1.0)
        x, lo, hi, s = cand_offset[j], cand_lo[j], cand_hi[j], size[b]
        gap = hi - lo
        touches = ((1.0 if x == lo else 0.0) + (1.0 if x + s == hi else 0.0)) / 2.0
        vals = (x / capf, gap / capf, (gap - s) / capf, touches, max(x - lo, hi - x - s) / capf)
        for f in range(5):
            obs[base + nf + f] = min(max(vals[f], 0.0), 1.0)
    pos = nf + K * width
    if focus >= 0:
        img = np.empty((IMAGE_BINS, IMAGE_BINS))
        nb = _neighbours(focus, start, end, indptr, indices, has_graph)
        _occupancy_image(focus, nb, placed, offset, size, start, end, cap, img)
        for p in range(IMAGE_BINS):
            for q in range(IMAGE_BINS):
                obs[pos + p * IMAGE_BINS + q] = min(img[p, q], 1.0)
    pos += IMAGE_BINS * IMAGE_BINS
    decided_frac = counters[C_N_DECIDED] / max(n, 1)
    benefit_frac = totals[T_BENEFIT] / total_benefit if total_benefit > 0 else 0.0
    load_frac = min(np.max(load) / capf, 4.0) / 4.0
    obs[pos] = min(max(decided_frac, 0.0), 1.0)
    obs[pos + 1] = min(max(benefit_frac, 0.0), 1.0)
    obs[pos + 2] = min(max(load_frac, 0.0), 1.0)


# ---------------------------------------------------------------------------------------------- episode
@numba.njit(cache=True)
def begin_one(mode, cap, total_benefit, has_graph, inst, st, obs, mask):
    """Start an episode: nothing placed; in order mode the buffers larger than the capacity go to slow
    memory at once. Writes the first observation and mask."""
    size = inst[0]
    load0 = inst[12]
    decided, placed, offset, mvo, gap_lo, gap_hi, load = st[0], st[1], st[2], st[3], st[4], st[5], st[6]
    cand_buffer, cand_offset, cand_lo, cand_hi, counters, totals = st[7], st[8], st[9], st[10], st[11], st[12]
    decided[:] = False
    placed[:] = False
    offset[:] = -1
    for b in range(size.shape[0]):
        mvo[b] = 0 if size[b] <= cap else NO_FIT
    gap_lo[:] = 0
    gap_hi[:] = cap
    load[:] = load0
    cand_buffer[:] = -1
    cand_offset[:] = -1
    cand_lo[:] = 0
    cand_hi[:] = 0
    counters[:] = 0
    totals[:] = 0.0
    if mode == ORDER:
        for b in range(size.shape[0]):
            if mvo[b] == NO_FIT:
                _mark_decided(b, inst, st)
                counters[C_N_AUTO_DISCARDED] += 1
    _refresh_candidates(mode, cap, has_graph, inst, st)
    observe_one(mode, cap, total_benefit, has_graph, inst, st, obs, mask)


@numba.njit(cache=True)
def step_one(action, valid, penalty, observe, mode, cap, total_benefit, has_graph, inst, st, obs, mask):
    """One step of SchedEnv's contract: an action that is not ``valid`` (not integral), out of range or
    masked is replaced by the default action (0 if a candidate exists, else K) and costs ``penalty``.
    Writes the next observation and mask if ``observe``; returns ``(reward, terminated, action executed,
    invalid)``."""
    order = inst[5]
    cand_buffer, cand_offset, counters = st[7], st[8], st[11]
    n = order.shape[0]
    K = cand_buffer.shape[0]
    k = counters[C_N_CANDIDATES]
    ok = valid and 0 <= action <= K and (action == K or action < k)
    a = action if ok else (0 if k > 0 else K)
    reward = 0.0
    if mode == PLACE:
        b = order[counters[C_CURSOR]]
        if a < K:
            reward = _place(b, cand_offset[a], total_benefit, inst, st)
        else:
            _mark_decided(b, inst, st)
        counters[C_CURSOR] += 1
        terminated = counters[C_CURSOR] >= n
    else:
        if a < K:
            b = cand_buffer[a]
            x = st[3][b]
            reward = _place(b, x, total_benefit, inst, st)
            _update_viable_offsets(b, x, cap, has_graph, inst, st)
        else:
            _mark_decided(cand_buffer[0], inst, st)
        terminated = counters[C_N_DECIDED] >= n
    if not terminated:
        _refresh_candidates(mode, cap, has_graph, inst, st)
    else:
        counters[C_N_CANDIDATES] = 0
    if not ok:
        reward -= penalty
    if observe:
        observe_one(mode, cap, total_benefit, has_graph, inst, st, obs, mask)
    return reward, terminated, a, not ok


# ---------------------------------------------------------------------------------------------- batches
@numba.njit(cache=True)
def _inst_row(e, n_buf, n_edges, size, start, end, alignment, benefit, order, rank, bin_lo, bin_hi, features,
              indptr, indices, load0):  # fmt: skip
    n, m = n_buf[e], n_edges[e]
    return (borrow(size[e, :n]), borrow(start[e, :n]), borrow(end[e, :n]), borrow(alignment[e, :n]),
            borrow(benefit[e, :n]), borrow(order[e, :n]), borrow(rank[e, :n]), borrow(bin_lo[e, :n]),
            borrow(bin_hi[e, :n]), borrow(features[e, :n]), borrow(indptr[e, : n + 1]), borrow(indices[e, :m]),
            borrow(load0[e]))  # fmt: skip


@numba.njit(cache=True)
def _state_row(e, n, decided, placed, offset, mvo, gap_lo, gap_hi, load, cand_buffer, cand_offset, cand_lo, cand_hi,
               counters, totals):  # fmt: skip
    return (borrow(decided[e, :n]), borrow(placed[e, :n]), borrow(offset[e, :n]), borrow(mvo[e, :n]),
            borrow(gap_lo[e, :n]), borrow(gap_hi[e, :n]), borrow(load[e]), borrow(cand_buffer[e]),
            borrow(cand_offset[e]), borrow(cand_lo[e]), borrow(cand_hi[e]), borrow(counters[e]), borrow(totals[e]))  # fmt: skip


@numba.njit(cache=True)
def begin_batch(which, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst, st, obs, mask):
    """:func:`begin_one` for every sub-env ``e`` with ``which[e]``; sub-env ``e`` plays instance
    ``inst_of[e]`` (a row of the ``inst`` arrays, padded to the largest instance) on row ``e`` of ``st``."""
    for e in range(which.shape[0]):
        if not which[e]:
            continue
        i = inst_of[e]
        ie = _inst_row(i, n_buf, n_edges, *inst)
        se = _state_row(e, n_buf[i], *st)
        begin_one(mode, cap[i], total_benefit[i], has_graph[i], ie, se, borrow(obs[e]), borrow(mask[e]))


@numba.njit(cache=True)
def step_batch(actions, valid, skip, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst, st,
               obs, mask, rewards, terminated, executed, invalid):  # fmt: skip
    """:func:`step_one` for every sub-env ``e`` with ``skip[e] == False`` (layout of :func:`begin_batch`)."""
    for e in range(actions.shape[0]):
        if skip[e]:
            continue
        i = inst_of[e]
        ie = _inst_row(i, n_buf, n_edges, *inst)
        se = _state_row(e, n_buf[i], *st)
        r, done, a, bad = step_one(actions[e], valid[e], penalty, True, mode, cap[i], total_benefit[i], has_graph[i], ie, se,
                                   borrow(obs[e]), borrow(mask[e]))  # fmt: skip
        rewards[e] = r
        terminated[e] = done
        executed[e] = a
        invalid[e] = bad
