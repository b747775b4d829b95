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
(``tests/test_memory_mapping_reference.py`` checks the trajectories bit for bit). One exception: for an
instance whose conflict graph is too large to materialise (over 60M edges), the occupancy image was a numpy
matrix product and is now the same loop as with a graph, which can differ in the last bit.
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.sim.borrow import borrow

__all__ = [
    "PLACE", "ORDER", "NO_FIT", "IMAGE_BINS", "INST_FIELDS", "STATE_FIELDS",
    "C_CURSOR", "C_N_CANDIDATES", "C_N_DECIDED", "C_N_PLACED", "C_N_AUTO_DISCARDED", "C_PEAK", "N_COUNTERS",
    "T_BENEFIT", "T_AREA", "N_TOTALS", "begin_one", "step_one", "observe_one", "begin_batch", "step_batch", "step_batch_parallel",
    "default_rollout",
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
STATE_FIELDS = ("decided", "placed", "offset", "min_viable_offset", "viable_gap_lo", "viable_gap_hi", "undecided_load",
                "cand_buffer", "cand_offset", "cand_gap_lo", "cand_gap_hi", "counters", "totals")  # fmt: skip


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
def _sorted_placed(nb, placed, offset, size):
    """``(xs, tops)`` of the placed buffers among ``nb``, sorted by offset ``xs`` (ties in any order)."""
    m = 0
    for j in nb:
        if placed[j]:
            m += 1
    out = np.empty((2, m), np.int64)
    xs, tops = out[0], out[1]
    k = 0
    if m <= 48:  # insertion sort: no allocation, fast on the few placed neighbours of most buffers
        for j in nb:
            if placed[j]:
                x = offset[j]
                p = k
                while p > 0 and xs[p - 1] > x:
                    xs[p], tops[p] = xs[p - 1], tops[p - 1]
                    p -= 1
                xs[p], tops[p] = x, x + size[j]
                k += 1
        return xs, tops
    raw = np.empty(m, np.int64)
    for j in nb:
        if placed[j]:
            raw[k] = j
            k += 1
    o = np.argsort(offset[raw])
    for k in range(m):
        j = raw[o[k]]
        xs[k], tops[k] = offset[j], offset[j] + size[j]
    return xs, tops


@numba.njit(cache=True)
def _place_candidates(nb, placed, offset, size, s, a, cap, cand_offset, cand_lo, cand_hi):
    """Place mode: the candidate offsets of a buffer of size ``s`` and alignment ``a`` among its placed
    neighbours ``nb``, written to ``cand_*``; returns how many (at most K = ``len(cand_offset)``).

    The canonical offsets are 0, the top of each placed neighbour ("rest on"), ``x_j - s`` ("hang below")
    and ``cap - s``, aligned, kept where the buffer fits. They are ranked by the size of the free gap they
    sit in (smallest first), ties by lower offset; the K first are shown, except that when the lowest
    feasible offset is not among them it takes the last slot (so first fit stays reachable with any K).
    The free gaps are those between the placed neighbours merged in offset order: a feasible offset's gap
    bounds are the highest top at or below it and the lowest offset at or above its end.
    """
    K = cand_offset.shape[0]
    xs, tops = _sorted_placed(nb, placed, offset, size)
    m = xs.shape[0]
    w = np.empty(4 * m + 4, np.int64)
    raw = w[: 2 * m + 2]
    gap_lo = w[2 * m + 2 : 3 * m + 3]
    gap_hi = w[3 * m + 3 :]
    raw[0] = 0
    if a == 1:  # no division (most instances are byte-aligned)
        raw[1] = cap - s
        for k in range(m):
            raw[2 + k] = tops[k]
            raw[2 + m + k] = xs[k] - s
    else:
        raw[1] = ((cap - s) // a) * a
        for k in range(m):
            raw[2 + k] = -((-tops[k]) // a) * a
            raw[2 + m + k] = ((xs[k] - s) // a) * a
    if raw.shape[0] <= 64:  # insertion sort: numba's quicksort costs more on the few values of most buffers
        for r in range(1, raw.shape[0]):
            v = raw[r]
            p = r
            while p > 0 and raw[p - 1] > v:
                raw[p] = raw[p - 1]
                p -= 1
            raw[p] = v
    else:
        raw.sort()
    n_gaps = 0
    low = 0
    for k in range(m):
        if xs[k] > low:
            gap_lo[n_gaps] = low
            gap_hi[n_gaps] = xs[k]
            n_gaps += 1
        low = max(low, tops[k])
    if low < cap:
        gap_lo[n_gaps] = low
        gap_hi[n_gaps] = cap
        n_gaps += 1
    k = 0
    total = 0
    lowest = -1
    lowest_lo = lowest_hi = 0
    g = 0
    prev = -1
    for r in range(raw.shape[0]):
        c = raw[r]
        if c < 0 or c == prev:
            continue
        prev = c
        while g < n_gaps and gap_hi[g] <= c:
            g += 1
        if g == n_gaps:
            break
        lo, hi = gap_lo[g], gap_hi[g]
        if c < lo or c + s > hi:
            continue
        if total == 0:
            lowest, lowest_lo, lowest_hi = c, lo, hi
        total += 1
        gap = hi - lo
        if k == K and gap >= cand_hi[K - 1] - cand_lo[K - 1]:
            continue
        p = k if k < K else K - 1
        while p > 0 and cand_hi[p - 1] - cand_lo[p - 1] > gap:
            cand_offset[p], cand_lo[p], cand_hi[p] = cand_offset[p - 1], cand_lo[p - 1], cand_hi[p - 1]
            p -= 1
        cand_offset[p], cand_lo[p], cand_hi[p] = c, lo, hi
        if k < K:
            k += 1
    if total > K:
        shown = False
        for p in range(K):
            shown |= cand_offset[p] == lowest
        if not shown:
            cand_offset[K - 1], cand_lo[K - 1], cand_hi[K - 1] = lowest, lowest_lo, lowest_hi
    return k


@numba.njit(cache=True)
def _lowest_fit(nb, placed, offset, size, s, a, cap):
    """Lowest aligned offset where a buffer of size ``s`` fits among its placed neighbours ``nb`` and the
    free gap around it: ``(offset, gap_lo, gap_hi)``, or ``(NO_FIT, 0, 0)``."""
    xs, tops = _sorted_placed(nb, placed, offset, size)
    m = xs.shape[0]
    if m == 0:
        if s <= cap:
            return 0, 0, cap
        return NO_FIT, 0, 0
    # Free gaps: [0, xs[0]), [highest top so far, xs[k]) for each k in offset order, then [top, cap). The
    # order among equal offsets does not matter: the gaps between them are empty.
    lo = 0
    for r in range(m + 1):
        hi = xs[r] if r < m else cap
        x = lo if a == 1 else -(-lo // a) * a
        if x + s <= hi:
            return x, lo, hi
        if r < m:
            lo = max(lo, tops[r])
    return NO_FIT, 0, 0


@numba.njit(cache=True)
def _lowest_fit_from(nb, placed, offset, size, s, a, cap, floor):
    """:func:`_lowest_fit` when no offset below ``floor`` fits (the same ``(offset, gap_lo, gap_hi)``), without
    sorting the neighbours: the candidate is pushed above every placed neighbour it overlaps until none
    does (any fitting offset at or above a candidate is above the tops of the neighbours that candidate
    overlaps), then one pass finds the free gap around it. Used after a placement, whose neighbours' old
    lowest fits were the lowest then and are overlapped now, so nothing below the new top fits."""
    x = floor if a == 1 else -(-floor // a) * a
    while True:
        if x + s > cap:
            return NO_FIT, 0, 0
        push = x
        for k in nb:
            if placed[k] and offset[k] < x + s and offset[k] + size[k] > push:
                push = offset[k] + size[k]
        if push == x:
            break
        x = push if a == 1 else -(-push // a) * a
    lo, hi = 0, cap
    for k in nb:
        if placed[k]:
            if offset[k] >= x + s:
                hi = min(hi, offset[k])
            else:  # it ends at or below x: the scan's running maximum of tops below the gap
                lo = max(lo, offset[k] + size[k])
    return x, lo, hi


@numba.njit(cache=True)
def _bin_edges(lo, hi, bins, w):
    """``w[0, q], w[1, q], w[2, q]``: start, end and width (at least 1e-12) of bin ``q`` of ``[lo, hi)`` cut in
    ``bins`` equal bins (edges ``lo + (hi - lo) * q / bins``, as ``np.linspace`` makes them)."""
    for q in range(bins):
        e0 = lo + (hi - lo) * (q / bins)
        e1 = lo + (hi - lo) * ((q + 1) / bins)
        w[0, q] = e0
        w[1, q] = e1
        w[2, q] = max(e1 - e0, 1e-12)


@numba.njit(cache=True)
def _occupancy_image(i, nb, placed, offset, size, start, end, cap, img):
    """``img`` (bins x bins) = occupancy of the time x address plane over buffer ``i``'s live range
    (time-major): the sum over its placed neighbours ``nb`` (in that order) of the share of each cell they
    cover. The caller clips it to [0, 1].

    The share of bin ``q`` (edges of :func:`_bin_edges`) that ``[a, b)`` covers is ``c / width`` with
    ``c = min(b, e1) - max(a, e0)`` if ``c > 0``, else 0. Only non-zero products are added (adding +0.0
    to a sum >= 0 changes nothing). No function is called per neighbour (passing arrays costs reference
    counting).
    """
    bins = img.shape[0]
    w = np.empty((8, bins))
    _bin_edges(float(start[i]), float(end[i]), bins, w[0:3])
    _bin_edges(0.0, float(cap), bins, w[3:6])
    # A neighbour live over all of buffer i's range covers every time bin whole: c == width, share 1.0
    # (when no bin is narrower than 1e-12), and its products are its address shares themselves.
    wide = True
    for q in range(bins):
        wide &= w[2, q] == w[1, q] - w[0, q]
    t_lo, t_hi = w[0, 0], w[1, bins - 1]
    img[:] = 0.0
    for j in nb:
        if not placed[j]:
            continue
        ta, tb = float(start[j]), float(end[j])
        xa, xb = float(offset[j]), float(offset[j] + size[j])
        q0 = bins
        q1 = 0
        for q in range(bins):
            c = min(xb, w[4, q]) - max(xa, w[3, q])
            if c > 0:  # the address bins covered are contiguous: q0 <= q < q1
                w[7, q] = 1.0 if c == w[5, q] else c / w[5, q]  # x / x == 1 exactly
                q0 = min(q0, q)
                q1 = q + 1
        if wide and ta <= t_lo and tb >= t_hi:
            for p in range(bins):
                for q in range(q0, q1):
                    img[p, q] += w[7, q]
            continue
        for q in range(bins):
            c = min(tb, w[1, q]) - max(ta, w[0, q])
            w[6, q] = (1.0 if c == w[2, q] else c / w[2, q]) if c > 0 else 0.0
        for p in range(bins):
            t = w[6, p]
            if t == 0.0:
                continue
            for q in range(q0, q1):
                img[p, q] += t * w[7, q]


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
        # Its old slot was the lowest fit and overlaps [x, top) now: nothing below top fits any more.
        v, lo, hi = _lowest_fit_from(nbj, placed, offset, size, size[j], alignment[j], cap, top)
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
        k = _place_candidates(nb, placed, offset, size, size[b], alignment[b], cap, cand_offset, cand_lo, cand_hi)
        cand_buffer[:k] = b
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


# ---------------------------------------------------------------------------------------------- borrowing
@numba.njit(cache=True)
def _borrow13(t):
    """The 13 arrays of an ``inst`` or ``st`` tuple, borrowed (``schedgym.sim.borrow``): the helpers below
    take the tuples, and passing borrowed arrays costs no atomic reference counting."""
    return (borrow(t[0]), borrow(t[1]), borrow(t[2]), borrow(t[3]), borrow(t[4]), borrow(t[5]), borrow(t[6]),
            borrow(t[7]), borrow(t[8]), borrow(t[9]), borrow(t[10]), borrow(t[11]), borrow(t[12]))  # fmt: skip


# ---------------------------------------------------------------------------------------------- observation
@numba.njit(cache=True)
def observe_one(mode, cap, total_benefit, has_graph, inst, st, obs, mask):
    """Write the flat observation (layout in ``MemoryMappingEnv``'s docstring; float32, clipped to [0, 1])
    into ``obs`` and the action mask (int8) into ``mask``."""
    inst, st = _borrow13(inst), _borrow13(st)
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
    inst, st = _borrow13(inst), _borrow13(st)
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
    inst, st = _borrow13(inst), _borrow13(st)
    obs, mask = borrow(obs), borrow(mask)
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


@numba.njit(cache=True)
def default_rollout(mode, cap, total_benefit, has_graph, inst, st, obs, mask):
    """The return of playing the default action (0 if a candidate exists, else K) from the state ``st`` to
    the episode's end, on a copy: ``st`` is left as it was. The leaf value of a search that uses rollouts
    (AlphaGo's fast rollouts, here the env's own heuristic: best fit in place mode, the lowest viable offset
    in order mode); ``obs``/``mask`` are scratch."""
    st = (st[0].copy(), st[1].copy(), st[2].copy(), st[3].copy(), st[4].copy(), st[5].copy(), st[6].copy(),
          st[7].copy(), st[8].copy(), st[9].copy(), st[10].copy(), st[11].copy(), st[12].copy())  # fmt: skip
    K = st[7].shape[0]
    n = inst[0].shape[0]
    total = 0.0
    for _ in range(n):  # every step decides at least one buffer
        if st[0].all():
            break
        a = 0 if st[11][C_N_CANDIDATES] > 0 else K
        r, done, _, _ = step_one(a, True, 0.0, False, mode, cap, total_benefit, has_graph, inst, st, obs, mask)
        total += r
        if done:
            break
    return total


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
            borrow(cand_offset[e]), borrow(cand_lo[e]), borrow(cand_hi[e]), borrow(counters[e]),
            borrow(totals[e]))  # fmt: skip


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
def _step_row(e, actions, valid, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst, st,
              obs, mask, rewards, terminated, executed, invalid):  # fmt: skip
    """:func:`step_one` on sub-env ``e``'s rows (layout of :func:`begin_batch`); writes row ``e`` only."""
    i = inst_of[e]
    ie = _inst_row(i, n_buf, n_edges, *inst)
    se = _state_row(e, n_buf[i], *st)
    r, done, a, bad = step_one(actions[e], valid[e], penalty, True, mode, cap[i], total_benefit[i],
                               has_graph[i], ie, se, borrow(obs[e]), borrow(mask[e]))  # fmt: skip
    rewards[e] = r
    terminated[e] = done
    executed[e] = a
    invalid[e] = bad


@numba.njit(cache=True)
def step_batch(actions, valid, skip, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst, st,
               obs, mask, rewards, terminated, executed, invalid):  # fmt: skip
    """:func:`step_one` for every sub-env ``e`` with ``skip[e] == False`` (layout of :func:`begin_batch`)."""
    for e in range(actions.shape[0]):
        if not skip[e]:
            _step_row(e, actions, valid, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst,
                      st, obs, mask, rewards, terminated, executed, invalid)  # fmt: skip


@numba.njit(cache=True, parallel=True)
def step_batch_parallel(actions, valid, skip, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges,
                        inst, st, obs, mask, rewards, terminated, executed, invalid):  # fmt: skip
    """:func:`step_batch` with the sub-envs spread over numba's threads (each writes its own rows only, so
    the result is the same bit for bit)."""
    for e in numba.prange(actions.shape[0]):
        if not skip[e]:
            _step_row(e, actions, valid, penalty, mode, inst_of, cap, total_benefit, has_graph, n_buf, n_edges, inst,
                      st, obs, mask, rewards, terminated, executed, invalid)  # fmt: skip
