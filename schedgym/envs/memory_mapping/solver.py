"""An exact solver for the memory-mapping problem: MiniMalloc-style branch and bound, plus a proven bound.

**Packing (decision).** :func:`solve_packing` decides exactly whether a set of buffers fits in the
capacity, by the depth-first search over *canonical* solutions of MiniMalloc (M. D. Moffitt, "MiniMalloc:
A Lightweight Memory Allocator for Hardware-Accelerated Machine Learning", ASPLOS 2023; Apache-2.0 code at
github.com/google/minimalloc, ``src/solver.cc`` and ``src/sweeper.cc``). This is our own implementation of
the algorithm (numba, iterative), not a port of that code. Its ideas, each sound on its own:

- *Sections.* Time is cut at the distinct end times; section ``k`` holds the buffers live just before the
  ``k``-th end time, so every pair of buffers that overlap in time share a section and a buffer covers a
  contiguous range of sections. Where no buffer crosses a boundary (zero *cuts*) the sides are
  independent subproblems, solved one after the other (also *dynamically*, whenever placing a buffer
  brings a cut to zero).
- *Canonical offsets.* A buffer's minimum offset is the highest top of the placed buffers it overlaps in
  time (0 if none, rounded up to its alignment). Any feasible packing can be pushed down until every
  buffer sits at its minimum offset; the search places buffers only there, in non-decreasing order of
  ``(offset, preorder rank)`` (each node tries the unplaced buffers in that order, *dynamic ordering*),
  which enumerates each pushed-down packing once.
- *Dominance.* Candidates at or above the *minimum height* (min over unplaced buffers of minimum offset +
  size) are skipped: some buffer would fit entirely below, so a packing with lower offsets exists.
- *Section inference.* In every section, (floor: the top of its highest placed buffer, raised to the
  smallest minimum offset of its unplaced buffers and, as placements are monotone, to the current offset)
  + (total size of its unplaced buffers) must not exceed the capacity.
- *Hatless pruning.* If the buffer just placed overlaps no unplaced buffer, its offset can never change,
  so every canonical completion places it here first: when that subtree fails, the node fails.
- *Preorders and restarts.* Three static preorders (lifetime, area, section total: MiniMalloc's
  ``WAT``, ``TAW``, ``TWA``) are tried round robin under a node limit that doubles each round, starting
  at ``2 n``. A search that exhausts its tree proves infeasibility; one that hits the node limit passes
  to the next preorder. (Unlike MiniMalloc, the preorder is computed once, not again per sub-problem.)

**Benefit maximisation below the peak.** :func:`solve_exact` returns a mapping and a *proven* upper bound
on the fraction of benefit placed: the cumulative-knapsack relaxation ``max sum_i w_i y_i`` subject to
``sum_{i live in section k} s_i y_i <= C`` for every section (any packing satisfies it: buffers live
together occupy disjoint bytes of ``[0, C)``), solved as a MILP by HiGHS (scipy); when HiGHS stops at its
time limit its proven dual bound is used. The mapping is the best of: the MiniMalloc packing of every
buffer (when it exists, the mapping is optimal), the packing of the knapsack's chosen set (optimal when it
packs and the MILP was solved to optimality), greedy repairs of that set, and the shipped best-fit /
first-fit heuristics. The status is ``optimal`` only when the mapping's benefit equals the proven bound.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np

from schedgym.envs.memory_mapping.geometry import overlap_csr as _overlaps_csr
from schedgym.envs.memory_mapping.types import Instance

__all__ = [
    "PackResult",
    "ExactResult",
    "solve_packing",
    "solve_exact",
    "knapsack_upper_bound",
    "fit_offsets",
    "sections_of",
]

PREORDERS = ("WAT", "TAW", "TWA")  # MiniMalloc's default round robin (W lifetime, A area, T section total)
_FOUND, _NOTFOUND, _ABORTED, _TIMEOUT = 1, 0, 2, 3
_INF = np.iinfo(np.int64).max // 4


@dataclass
class PackResult:
    """Outcome of :func:`solve_packing`: ``status`` in ``feasible`` (``offsets`` pack every buffer of the
    subset), ``infeasible`` (proven: no packing exists) or ``unknown`` (time limit)."""

    status: str
    offsets: np.ndarray  # (n,) int64 byte offset of each buffer of the subset, -1 elsewhere
    nodes: int
    wall_s: float


@dataclass
class ExactResult:
    """Outcome of :func:`solve_exact` (benefit maximisation).

    ``status``: ``optimal`` (the mapping's benefit equals the proven bound), ``feasible`` (a mapping, not
    proven optimal) or ``unknown`` (no mapping beyond the empty one). ``objective_frac`` is the fraction of
    benefit the mapping places; ``upper_bound_frac`` a proven upper bound on it.
    """

    status: str
    offsets: np.ndarray
    objective_frac: float
    upper_bound_frac: float
    solve_time_s: float
    packing_status: str  # the decision "do all buffers fit?": feasible / infeasible / unknown
    nodes: int = 0

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    @property
    def bound_frac(self) -> float:
        """The proven upper bound (the name the benchmark runner records as a row's ``bound``)."""
        return self.upper_bound_frac


# ---------------------------------------------------------------------------------------------------
# Sweep: sections, overlaps, cuts
# ---------------------------------------------------------------------------------------------------
def sections_of(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Section range ``[lo_i, hi_i)`` of every buffer and the number of sections.

    Section ``k`` is the set of buffers live just before the ``k``-th distinct end time ``E_k``
    (``start_i < E_k <= end_i``): every two buffers that overlap in time share the section of the earlier
    of their end times, and the peak live bytes is the largest section total.
    """
    ends = np.unique(end)
    lo = np.searchsorted(ends, start, side="right").astype(np.int64)
    hi = (np.searchsorted(ends, end, side="left") + 1).astype(np.int64)
    return lo, hi, int(ends.size)


def _members_csr(lo: np.ndarray, hi: np.ndarray, n_sections: int) -> tuple[np.ndarray, np.ndarray]:
    counts = hi - lo
    buf = np.repeat(np.arange(lo.size), counts)
    sec = np.repeat(lo, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    by = np.argsort(sec, kind="stable")
    ptr = np.zeros(n_sections + 1, dtype=np.int64)
    np.cumsum(np.bincount(sec, minlength=n_sections), out=ptr[1:])
    return ptr, buf[by].astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# The search kernel (iterative depth-first search; every change is logged and undone on backtrack)
# ---------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _now() -> float:
    with numba.objmode(t="float64"):
        t = time.perf_counter()
    return t


@numba.njit(cache=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@numba.njit(cache=True)
def _push(log_a, log_b, length, a, v):
    """Append ``(a, v)`` to a pair of growable log arrays; returns the arrays and the new length."""
    log_a = _grow(log_a, length + 1)
    log_b = _grow(log_b, length + 1)
    log_a[length] = a
    log_b[length] = v
    return log_a, log_b, length + 1


@numba.njit(cache=True)
def _unplace(b, size, lo, hi, off, minoff, floor, total, olog_b, olog_v, olen, olen0, slog_s, slog_v, slen, slen0):
    """Undo the placement of buffer ``b``: section floors and totals, neighbours' minimum offsets."""
    while slen > slen0:
        slen -= 1
        floor[slog_s[slen]] = slog_v[slen]
    for s in range(lo[b], hi[b]):
        total[s] += size[b]
    while olen > olen0:
        olen -= 1
        minoff[olog_b[olen]] = olog_v[olen]
    off[b] = -1
    return olen, slen


@numba.njit(cache=True)
def _search(size, align, lo, hi, width, heur, cap, nb_ptr, nb_idx, mem_ptr, mem_buf, by_lo, first_of_sec,
            n_sections, node_limit, deadline, solution, counters):
    """Decide whether all buffers fit. Returns _FOUND (``solution`` filled), _NOTFOUND, _ABORTED (node
    limit) or _TIMEOUT. ``counters[0]`` accumulates the nodes visited.

    ``heur`` is the static preorder (codes 0 = lifetime W, 1 = area A, 2 = section total T, 3 = size Z,
    each descending, ties by index); as in MiniMalloc it is computed afresh for every sub-problem, with
    the section totals of its still unplaced buffers."""
    n = size.shape[0]
    pre = np.zeros(n, np.int64)
    plog_b = np.empty(1024, np.int64)
    plog_v = np.empty(1024, np.int64)
    plen = 0
    tmp = np.empty(n, np.int64)
    keyv = np.empty(n, np.int64)
    off = np.full(n, -1, np.int64)
    minoff = np.zeros(n, np.int64)
    floor = np.zeros(n_sections, np.int64)
    total = np.zeros(n_sections, np.int64)
    for i in range(n):
        for s in range(lo[i], hi[i]):
            total[s] += size[i]
    cuts = np.zeros(max(n_sections - 1, 1), np.int64)
    for i in range(n):
        for s in range(lo[i], hi[i] - 1):
            cuts[s] += 1
    stamp = np.zeros(n_sections, np.int64)
    stamp_id = 0
    # Logs: minimum-offset changes (buffer, old value) and section-floor changes (section, old value).
    olog_b = np.empty(1024, np.int64)
    olog_v = np.empty(1024, np.int64)
    olen = 0
    slog_s = np.empty(1024, np.int64)
    slog_v = np.empty(1024, np.int64)
    slen = 0
    # Frames. kind 0 = search node, 1 = decomposition (a list of section ranges solved in turn).
    depth_max = 2 * n + 4
    f_kind = np.zeros(depth_max, np.int64)
    f_plo = np.zeros(depth_max, np.int64)
    f_phi = np.zeros(depth_max, np.int64)
    f_last_off = np.zeros(depth_max, np.int64)
    f_last_pre = np.zeros(depth_max, np.int64)
    f_minh = np.zeros(depth_max, np.int64)
    f_buf = np.full(depth_max, -1, np.int64)
    f_olog = np.zeros(depth_max, np.int64)
    f_slog = np.zeros(depth_max, np.int64)
    f_hatless = np.zeros(depth_max, np.bool_)
    f_cut = np.zeros(depth_max, np.bool_)  # cuts were decremented for f_buf
    f_cp0 = np.zeros(depth_max, np.int64)  # decomposition: first cutpoint in the cutpoint stack
    f_cpn = np.zeros(depth_max, np.int64)  # number of cutpoints (ranges = cpn - 1)
    f_cpk = np.zeros(depth_max, np.int64)  # next range to solve
    f_plog = np.zeros(depth_max, np.int64)  # decomposition: preorder log length before its children
    cp = np.empty(1024, np.int64)
    cplen = 0

    nodes = 0
    # Root: a decomposition frame over the initial zero-cut boundaries.
    d = 0
    f_kind[0] = 1
    f_cp0[0] = 0
    cp[0] = 0
    cplen = 1
    for s in range(n_sections - 1):
        if cuts[s] == 0:
            cp = _grow(cp, cplen + 1)
            cp[cplen] = s + 1
            cplen += 1
    cp = _grow(cp, cplen + 1)
    cp[cplen] = n_sections
    cplen += 1
    f_cpn[0] = cplen
    f_cpk[0] = 0
    f_plog[0] = 0

    # Control: `entering` a new frame, or `result` returned to the frame at depth d.
    entering = True
    result = _FOUND
    while True:
        if entering:
            entering = False
            if f_kind[d] == 1:
                result = _FOUND  # start the decomposition loop below as if a child succeeded
            else:
                nodes += 1
                if nodes > node_limit or ((nodes & 1023) == 0 and _now() > deadline):
                    result = _ABORTED if nodes > node_limit else _TIMEOUT
                    d -= 1
                    if d < 0:
                        break
                    continue
                # Any unplaced buffer in this partition? And the minimum height.
                plo = f_plo[d]
                phi = f_phi[d]
                minh = _INF
                for q in range(first_of_sec[plo], first_of_sec[phi]):
                    b = by_lo[q]
                    if off[b] < 0:
                        h = minoff[b] + size[b]
                        if h < minh:
                            minh = h
                if minh == _INF:
                    result = _FOUND
                    d -= 1
                    if d < 0:
                        break
                    continue
                f_minh[d] = minh
                f_buf[d] = -1
                result = _NOTFOUND  # "advance to the next candidate" below
        # ---- a result arrives at frame d (or a search frame is to advance)
        if f_kind[d] == 1:
            while plen > f_plog[d]:  # the child sub-problem is done: restore the parent's preorder
                plen -= 1
                pre[plog_b[plen]] = plog_v[plen]
            if result != _FOUND:
                # (the parent search frame restores the cuts when it undoes its placement)
                cplen = f_cp0[d]
                d -= 1
                if d < 0:
                    break
                continue
            k = f_cpk[d]
            started = False
            while k < f_cpn[d] - 1:
                a = cp[f_cp0[d] + k]
                z = cp[f_cp0[d] + k + 1]
                k += 1
                any_unplaced = False
                for q in range(first_of_sec[a], first_of_sec[z]):
                    if off[by_lo[q]] < 0:
                        any_unplaced = True
                        break
                if any_unplaced:
                    # preorder of this sub-problem's unplaced buffers (stable sorts, last key first)
                    m = 0
                    for q in range(first_of_sec[a], first_of_sec[z]):
                        u = by_lo[q]
                        if off[u] < 0:
                            tmp[m] = u
                            m += 1
                    ids = np.sort(tmp[:m])
                    order = np.arange(m)
                    for hk in range(heur.shape[0] - 1, -1, -1):
                        code = heur[hk]
                        for r in range(m):
                            u = ids[order[r]]
                            if code == 0:
                                v = width[u]
                            elif code == 1:
                                v = width[u] * size[u]
                            elif code == 2:
                                v = 0
                                for s in range(lo[u], hi[u]):
                                    if total[s] > v:
                                        v = total[s]
                            else:
                                v = size[u]
                            keyv[r] = -v
                        order = order[np.argsort(keyv[:m], kind="mergesort")]
                    for r in range(m):
                        u = ids[order[r]]
                        plog_b, plog_v, plen = _push(plog_b, plog_v, plen, u, pre[u])
                        pre[u] = r
                    f_cpk[d] = k
                    d += 1
                    f_kind[d] = 0
                    f_plo[d] = a
                    f_phi[d] = z
                    f_last_off[d] = -1
                    f_last_pre[d] = -1
                    entering = True
                    started = True
                    break
            if started:
                continue
            cplen = f_cp0[d]
            result = _FOUND
            d -= 1
            if d < 0:
                break
            continue
        # ---- search frame d: undo the child's placement, then advance
        b = f_buf[d]
        if b >= 0:
            # undo placement of b
            if f_cut[d]:
                for s in range(lo[b], hi[b] - 1):
                    cuts[s] += 1
                f_cut[d] = False
            olen, slen = _unplace(b, size, lo, hi, off, minoff, floor, total, olog_b, olog_v, olen, f_olog[d],
                                  slog_s, slog_v, slen, f_slog[d])
            f_buf[d] = -1
            if result != _NOTFOUND:
                d -= 1
                if d < 0:
                    break
                continue
            if f_hatless[d]:
                result = _NOTFOUND
                d -= 1
                if d < 0:
                    break
                continue
        # advance: the unplaced buffer with the smallest key (minoff, pre) above the last tried key
        plo = f_plo[d]
        phi = f_phi[d]
        placed_one = False
        while True:
            lo_off = f_last_off[d]
            lo_pre = f_last_pre[d]
            best = -1
            best_off = _INF
            best_pre = _INF
            for q in range(first_of_sec[plo], first_of_sec[phi]):
                c = by_lo[q]
                if off[c] >= 0:
                    continue
                o = minoff[c]
                p = pre[c]
                if o < lo_off or (o == lo_off and p <= lo_pre):
                    continue
                if o < best_off or (o == best_off and p < best_pre):
                    best = c
                    best_off = o
                    best_pre = p
            if best < 0 or best_off >= f_minh[d]:
                break  # no candidate left (dominance: nothing at or above the minimum height)
            f_last_off[d] = best_off
            f_last_pre[d] = best_pre
            # place `best` at its minimum offset
            b = best
            x = best_off
            off[b] = x
            solution[b] = x
            f_olog[d] = olen
            f_slog[d] = slen
            hatless = True
            stamp_id += 1
            for e in range(nb_ptr[b], nb_ptr[b + 1]):
                c = nb_idx[e]
                if off[c] >= 0:
                    continue
                hatless = False
                h = x + size[b]
                if minoff[c] >= h:
                    continue
                olog_b, olog_v, olen = _push(olog_b, olog_v, olen, c, minoff[c])
                r = h % align[c]
                minoff[c] = h if r == 0 else h + align[c] - r
                for s in range(lo[c], hi[c]):
                    stamp[s] = stamp_id
            f_hatless[d] = hatless
            top = x + size[b]
            for s in range(lo[b], hi[b]):
                total[s] -= size[b]
                if floor[s] < top:
                    slog_s, slog_v, slen = _push(slog_s, slog_v, slen, s, floor[s])
                    floor[s] = top
            # unallocated floor: a section's floor is at least the smallest minimum offset of its unplaced
            for e in range(nb_ptr[b], nb_ptr[b + 1]):
                c = nb_idx[e]
                if off[c] >= 0:
                    continue
                for s in range(lo[c], hi[c]):
                    if stamp[s] != stamp_id:
                        continue
                    stamp[s] = 0  # visit once
                    m = _INF
                    for t in range(mem_ptr[s], mem_ptr[s + 1]):
                        u = mem_buf[t]
                        if off[u] < 0 and minoff[u] < m:
                            m = minoff[u]
                    if m != _INF and floor[s] < m:
                        slog_s, slog_v, slen = _push(slog_s, slog_v, slen, s, floor[s])
                        floor[s] = m
            f_buf[d] = b
            # section inference with the monotone floor
            ok = True
            for s in range(plo, phi):
                fl = floor[s]
                if fl < x:
                    fl = x
                if fl + total[s] > cap:
                    ok = False
                    break
            if ok:
                # dynamic decomposition: cuts of b's internal boundaries drop; new zero cuts split
                new_cp0 = cplen
                cp = _grow(cp, cplen + 1)
                cp[cplen] = plo
                cplen += 1
                for s in range(lo[b], hi[b] - 1):
                    cuts[s] -= 1
                    if cuts[s] == 0:
                        cp = _grow(cp, cplen + 1)
                        cp[cplen] = s + 1
                        cplen += 1
                f_cut[d] = True
                if cplen - new_cp0 == 1:
                    cplen = new_cp0
                    d += 1
                    f_kind[d] = 0
                    f_plo[d] = plo
                    f_phi[d] = phi
                    f_last_off[d] = x
                    f_last_pre[d] = pre[b]
                else:
                    cp = _grow(cp, cplen + 1)
                    cp[cplen] = phi
                    cplen += 1
                    d += 1
                    f_kind[d] = 1
                    f_plog[d] = plen
                    f_cp0[d] = new_cp0
                    f_cpn[d] = cplen - new_cp0
                    f_cpk[d] = 0
                entering = True
                placed_one = True
                break
            # pruned: undo and try the next candidate
            olen, slen = _unplace(b, size, lo, hi, off, minoff, floor, total, olog_b, olog_v, olen, f_olog[d],
                                  slog_s, slog_v, slen, f_slog[d])
            f_buf[d] = -1
            if hatless:
                break
        if placed_one:
            continue
        result = _NOTFOUND
        d -= 1
        if d < 0:
            break
    counters[0] += nodes
    return result


@numba.njit(cache=True)
def _section_totals(size, lo, hi, n_sections):
    total = np.zeros(n_sections, np.int64)
    for i in range(size.shape[0]):
        for s in range(lo[i], hi[i]):
            total[s] += size[i]
    return total


def solve_packing(
    inst: Instance,
    subset: np.ndarray | None = None,
    time_limit_s: float = 60.0,
    preorders: tuple[str, ...] = PREORDERS,
) -> PackResult:
    """Decide exactly whether the buffers of ``subset`` (a boolean mask; default all) fit in the capacity.

    Returns ``feasible`` with offsets, ``infeasible`` (proven) or ``unknown`` when ``time_limit_s`` runs
    out. Alignments are honoured (minimum offsets are rounded up to each buffer's alignment).
    """
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit_s)
    n_all = inst.n
    sel = np.ones(n_all, dtype=bool) if subset is None else np.asarray(subset, dtype=bool)
    if sel.shape != (n_all,):
        raise ValueError(f"subset must be a boolean mask of shape ({n_all},), got shape {sel.shape}")
    idx = np.flatnonzero(sel)
    offsets = np.full(n_all, -1, dtype=np.int64)
    cap = int(inst.capacity)
    if idx.size == 0:
        return PackResult("feasible", offsets, 0, time.perf_counter() - t0)
    size = inst.size[idx].astype(np.int64)
    if np.any(size > cap):
        return PackResult("infeasible", offsets, 0, time.perf_counter() - t0)
    start, end = inst.start[idx].astype(np.int64), inst.end[idx].astype(np.int64)
    align = inst.alignment[idx].astype(np.int64)
    lo, hi, n_sec = sections_of(start, end)
    sec_total = _section_totals(size, lo, hi, n_sec)
    if int(sec_total.max()) > cap:
        return PackResult("infeasible", offsets, 0, time.perf_counter() - t0)
    nb_ptr, nb_idx = _overlaps_csr(start, end)
    mem_ptr, mem_buf = _members_csr(lo, hi, n_sec)
    by_lo = np.argsort(lo, kind="stable").astype(np.int64)
    first_of_sec = np.searchsorted(lo[by_lo], np.arange(n_sec + 1), side="left").astype(np.int64)
    codes = {"W": 0, "A": 1, "T": 2, "Z": 3}
    for h in preorders:
        if not h or any(c not in codes for c in h):
            raise ValueError(f"preorders must be strings over 'WATZ' (MiniMalloc's keys), got {h!r}")
    heurs = [np.array([codes[c] for c in h], dtype=np.int64) for h in preorders]
    width = end - start
    solution = np.full(idx.size, -1, dtype=np.int64)
    counters = np.zeros(1, dtype=np.int64)
    node_limit = idx.size
    status = "unknown"
    while time.perf_counter() < deadline:
        node_limit *= 2
        for heur in heurs:
            r = _search(size, align, lo, hi, width, heur, cap, nb_ptr, nb_idx, mem_ptr, mem_buf, by_lo, first_of_sec,
                        n_sec, node_limit, deadline, solution, counters)
            if r == _FOUND:
                status = "feasible"
            elif r == _NOTFOUND:
                status = "infeasible"
            elif r == _TIMEOUT:
                break
            if status != "unknown":
                break
        if status != "unknown" or time.perf_counter() >= deadline:
            break
    if status == "feasible":
        offsets[idx] = solution
    return PackResult(status, offsets, int(counters[0]), time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------
# Fast best fit / first fit (the heuristics that seed and complement the exact search)
# ---------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _fit_kernel(size, align, cap, order, nb_ptr, nb_idx, best_fit):
    n = size.shape[0]
    off = np.full(n, -1, np.int64)
    max_deg = 1
    for i in range(n):
        if nb_ptr[i + 1] - nb_ptr[i] > max_deg:
            max_deg = nb_ptr[i + 1] - nb_ptr[i]
    los = np.empty(max_deg, np.int64)
    his = np.empty(max_deg, np.int64)
    for b in order:
        s = size[b]
        a = align[b]
        m = 0
        for e in range(nb_ptr[b], nb_ptr[b + 1]):
            j = nb_idx[e]
            if off[j] >= 0:
                los[m] = off[j]
                his[m] = off[j] + size[j]
                m += 1
        srt = np.argsort(los[:m])
        cur = 0
        found = False
        best_x = 0
        best_gap = 0
        for r in range(m + 1):
            if r < m:
                g_lo = cur
                g_hi = los[srt[r]]
                nxt = his[srt[r]]
                if g_hi <= cur:
                    if nxt > cur:
                        cur = nxt
                    continue
            else:
                g_lo = cur
                g_hi = cap
                nxt = cur
                if cur >= cap:
                    break
            x = ((g_lo + a - 1) // a) * a
            if x + s <= g_hi:
                gap = g_hi - g_lo
                if not found or (best_fit and (gap < best_gap or (gap == best_gap and x < best_x))):
                    found = True
                    best_x = x
                    best_gap = gap
                    if not best_fit:
                        break
            if nxt > cur:
                cur = nxt
        if found:
            off[b] = best_x
    return off


def fit_offsets(
    inst: Instance, order: np.ndarray, best_fit: bool = True, graph: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Best fit (smallest free gap that holds the buffer, lowest offset on ties) or first fit (lowest
    feasible offset) of every buffer in ``order``; -1 for a buffer that fits nowhere (slow memory).

    Compiled (numba) over the time-overlap graph: O(sum of degrees x log degree), not O(n^2) in Python.
    ``graph`` is that graph's CSR ``(indptr, indices)`` when the caller already has it.
    """
    order = np.asarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= inst.n):
        raise ValueError(f"order must hold buffer indices in [0, {inst.n}), got values outside")
    nb_ptr, nb_idx = graph if graph is not None else _overlaps_csr(inst.start, inst.end)
    return _fit_kernel(inst.size.astype(np.int64), inst.alignment.astype(np.int64), int(inst.capacity), order,
                       nb_ptr, nb_idx, bool(best_fit))


# ---------------------------------------------------------------------------------------------------
# Proven upper bound: the cumulative knapsack relaxation (MILP, HiGHS)
# ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_stdout():
    """Send file descriptor 1 to /dev/null for the duration (C libraries print there directly)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def knapsack_upper_bound(
    inst: Instance,
    subset: np.ndarray | None = None,
    time_limit_s: float = 30.0,
    nogoods: list[np.ndarray] | None = None,
) -> tuple[float, np.ndarray, bool]:
    """``(bound, chosen, solved)``: a proven upper bound on the benefit any mapping places.

    Relaxation: choose ``y_i in {0, 1}`` maximising ``sum w_i y_i`` with ``sum_{i in section k} s_i y_i <= C``
    for every section whose total exceeds ``C`` (the others never bind), buffers larger than ``C`` fixed to
    0, and optional no-good cuts ``sum_{i in S} y_i <= |S| - 1`` for subsets ``S`` proven unpackable (every
    superset of an unpackable set is unpackable, so the cuts keep the bound valid). Solved by HiGHS with a
    zero gap; ``solved`` is True when HiGHS proved the MILP optimum, and ``chosen`` is then an optimal
    choice (else the best one found, possibly empty). When the time limit stops HiGHS, ``bound`` is its
    proven dual bound (never below the optimum, within HiGHS's feasibility tolerances).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, vstack

    n, cap = inst.n, int(inst.capacity)
    sel = np.ones(n, dtype=bool) if subset is None else np.asarray(subset, dtype=bool).copy()
    sel &= inst.size <= cap
    w = inst.benefit.astype(np.float64)
    chosen = sel.copy()
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        return 0.0, chosen, True
    lo, hi, n_sec = sections_of(inst.start[idx].astype(np.int64), inst.end[idx].astype(np.int64))
    size = inst.size[idx].astype(np.int64)
    sec_total = _section_totals(size, lo, hi, n_sec)
    over = np.flatnonzero(sec_total > cap)
    if over.size == 0 and not nogoods:
        return float(w[idx].sum()), chosen, True
    # rows: the binding sections; columns: buffers in at least one of them (the rest are free: y = 1)
    counts = hi - lo
    rows = np.repeat(lo, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    cols = np.repeat(np.arange(idx.size), counts)
    row_of = np.full(n_sec, -1, dtype=np.int64)
    row_of[over] = np.arange(over.size)
    keep = row_of[rows] >= 0
    in_cut = np.zeros(idx.size, dtype=bool)
    in_cut[cols[keep]] = True
    for S in nogoods or []:
        in_cut |= np.asarray(S, dtype=bool)[idx]
    var = np.flatnonzero(in_cut)
    free = np.flatnonzero(~in_cut)
    col_of = np.full(idx.size, -1, dtype=np.int64)
    col_of[var] = np.arange(var.size)
    scale = float(w[idx].sum()) or 1.0
    c = -w[idx[var]] / scale
    A = csr_matrix(
        (size[cols[keep]].astype(np.float64), (row_of[rows[keep]], col_of[cols[keep]])), shape=(over.size, var.size)
    )
    ub_rows = [np.full(over.size, float(cap))]
    mats = [A]
    for S in nogoods or []:
        Sv = np.asarray(S, dtype=bool)[idx[var]]
        mats.append(csr_matrix(Sv.astype(np.float64)[None, :]))
        ub_rows.append(np.array([float(Sv.sum() - 1)]))
    with _quiet_stdout():  # HiGHS prints debugging lines on the C-level stdout (breaks `--json` output)
        res = milp(
            c,
            constraints=LinearConstraint(vstack(mats).tocsr(), -np.inf, np.concatenate(ub_rows)),
            integrality=np.ones(var.size),
            bounds=Bounds(0, 1),
            options={"time_limit": max(float(time_limit_s), 0.05), "mip_rel_gap": 0.0, "presolve": True},
        )
    free_benefit = float(w[idx[free]].sum())
    dual = getattr(res, "mip_dual_bound", None)
    solved = res.status == 0
    if res.x is not None:
        yv = np.round(res.x).astype(bool)
        chosen[:] = False
        chosen[idx[free]] = True
        chosen[idx[var[yv]]] = True
    else:
        chosen[:] = False
    if solved:
        bound_var = -float(res.fun) * scale
        if dual is not None and np.isfinite(dual):
            bound_var = max(bound_var, -float(dual) * scale)
    elif dual is not None and np.isfinite(dual):
        bound_var = -float(dual) * scale
    else:
        bound_var = float(w[idx[var]].sum())  # nothing proven beyond the trivial bound
    # Round up by what HiGHS may leave between its reported bound and the true optimum of the normalised
    # objective (at most 1 in absolute value): its default absolute MIP gap (mip_abs_gap = 1e-6, not settable
    # through scipy's milp) plus the integrality tolerance (1e-6 per variable, times sum |c| <= 1). A smaller
    # margin (1e-9) was beaten by 1.1e-6 on torch:mlp_mixer (rollout_search, the memory search agent).
    bound = min(free_benefit + bound_var + MILP_BOUND_SLACK * scale, float(w[idx].sum()))
    return bound, chosen, bool(solved)


#: Slack added to the MILP knapsack bound, as a fraction of the benefit it covers (comment at its use).
MILP_BOUND_SLACK = 2e-6


# ---------------------------------------------------------------------------------------------------
# Benefit maximisation
# ---------------------------------------------------------------------------------------------------
def _heuristic_orders(inst: Instance) -> list[np.ndarray]:
    life = inst.end - inst.start
    dens = inst.benefit / inst.size
    return [
        np.lexsort((inst.ids, inst.start, -life, -inst.size, -dens / np.sqrt(inst.size))),  # XLA
        np.lexsort((inst.ids, -life, -inst.size)),  # spatial
        np.lexsort((inst.ids, -inst.size, -life)),  # temporal
        np.lexsort((inst.ids, -dens)),  # benefit density
    ]


def _drop_from_fullest(inst: Instance, subset: np.ndarray, k: int) -> np.ndarray:
    """Remove ``k`` buffers from ``subset``, each time the one with the least benefit per byte among the
    buffers of the section with the largest total."""
    subset = subset.copy()
    density = inst.benefit / inst.size
    for _ in range(k):
        idx = np.flatnonzero(subset)
        if idx.size == 0:
            break
        lo, hi, n_sec = sections_of(inst.start[idx].astype(np.int64), inst.end[idx].astype(np.int64))
        load = _section_totals(inst.size[idx].astype(np.int64), lo, hi, n_sec)
        s = int(np.argmax(load))
        live = idx[(lo <= s) & (hi > s)]
        subset[live[np.argmin(density[live])]] = False
    return subset


def solve_exact(inst: Instance, time_limit_s: float = 120.0) -> ExactResult:
    """Maximise the benefit placed; returns the best mapping found, a proven upper bound and a status.

    1. Every buffer that fits alone is packed with :func:`solve_packing`; success is optimal.
    2. Otherwise the knapsack relaxation gives a proven bound and a chosen set; the set is packed
       exactly. If it packs and the MILP was solved, the mapping is optimal. If it is proven unpackable, a
       no-good cut excludes it (and its supersets) and the MILP is solved again (a logic-based Benders
       loop), tightening the bound, until the time limit.
    3. The mapping is the best of the exact packings found and best fit / first fit in four orders on
       every buffer and on each chosen set.
    """
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit_s)
    n, cap = inst.n, int(inst.capacity)
    w = inst.benefit.astype(np.float64)
    total = float(w.sum())
    fits = inst.size <= cap

    def frac(off: np.ndarray) -> float:
        return float(w[off >= 0].sum()) / total if total > 0 else 0.0

    def left() -> float:
        return deadline - time.perf_counter()

    nodes = 0
    best = np.full(n, -1, dtype=np.int64)
    # Packing everything gets most of the time when it is possible at all (the peak fits); otherwise the
    # section check answers at once and the time goes to the bound and the subset search.
    pr = solve_packing(inst, fits, time_limit_s=max(0.8 * float(time_limit_s), 1e-3))
    nodes += pr.nodes
    packing_status = pr.status
    if pr.status == "feasible":
        f = frac(pr.offsets)
        ub = float(w[fits].sum()) / total if total > 0 else 0.0
        return ExactResult("optimal", pr.offsets, f, ub, time.perf_counter() - t0, packing_status, nodes)
    if not fits.any():
        return ExactResult("optimal", best, 0.0, 0.0, time.perf_counter() - t0, packing_status, nodes)

    def consider(off: np.ndarray) -> None:
        nonlocal best
        if frac(off) > frac(best):
            best = off

    orders = _heuristic_orders(inst)
    graph = _overlaps_csr(inst.start, inst.end)
    for order in orders:
        for bf in (True, False):
            consider(fit_offsets(inst, order, bf, graph))
    nogoods: list[np.ndarray] = []
    ub_abs, chosen, solved = knapsack_upper_bound(inst, fits, time_limit_s=max(min(0.25 * left(), 30.0), 0.1))
    ub = min(ub_abs / total, 1.0) if total > 0 else 0.0
    packed = False
    while left() > 0.05:
        cf = float(w[chosen].sum()) / total if total > 0 else 0.0
        if cf <= frac(best) + 1e-12:
            break  # the knapsack's choice cannot beat what we have
        for order in orders:  # heuristics on the chosen set: always a valid mapping
            consider(fit_offsets(inst, order[chosen[order]], True, graph))
        p = solve_packing(inst, chosen, time_limit_s=max(0.3 * left(), 1e-3))
        nodes += p.nodes
        if p.status == "feasible":
            consider(p.offsets)
            packed = True
            break
        if p.status == "unknown" or not solved or left() < 0.5 * (deadline - t0):
            break  # keep half of the time for the repair below
        nogoods.append(chosen.copy())
        ub_abs, chosen, solved = knapsack_upper_bound(inst, fits, time_limit_s=max(min(0.25 * left(), 30.0), 0.1), nogoods=nogoods)
        ub = min(ub, ub_abs / total) if total > 0 else 0.0
    # Multi-start best fit: the heuristics' orders with multiplicative log-normal noise on the sort keys,
    # on every buffer and on the chosen set (a few thousand compiled runs a second), for a fifth of the time.
    rng = np.random.default_rng(0)
    life = (inst.end - inst.start).astype(np.float64)
    keys = [inst.benefit / np.sqrt(inst.size), inst.size.astype(np.float64), life, inst.benefit / inst.size]
    noise_until = time.perf_counter() + 0.2 * max(left(), 0.0)
    trial = 0
    while time.perf_counter() < noise_until:
        key = keys[trial % len(keys)] * np.exp(rng.normal(0.0, 0.3, n))
        order = np.argsort(-key, kind="stable")
        for pool in (order, order[chosen[order]]):
            consider(fit_offsets(inst, pool, True, graph))
        trial += 1
    # Repair: drop buffers from the chosen set (lowest benefit per byte in the fullest section first; one
    # more per attempt every third attempt) until the exact search packs it within half a second.
    subset, attempt = chosen.copy(), 0
    while not packed and left() > 0.05 and float(w[subset].sum()) / total > frac(best) + 1e-12:
        subset = _drop_from_fullest(inst, subset, 1 + attempt // 3)
        p = solve_packing(inst, subset, time_limit_s=max(min(0.5, 0.5 * left()), 1e-3))
        nodes += p.nodes
        if p.status == "feasible":
            consider(p.offsets)
            break
        attempt += 1
    f = frac(best)
    # `ub` carries MILP_BOUND_SLACK for HiGHS's tolerances: equal within it (and float sums) is optimal, to
    # the precision the MILP proves.
    status = "optimal" if f >= ub - MILP_BOUND_SLACK - 1e-8 else ("feasible" if (best >= 0).any() else "unknown")
    return ExactResult(status, best, f, ub, time.perf_counter() - t0, packing_status, nodes)
