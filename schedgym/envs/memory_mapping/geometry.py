"""Feasibility in the time x address plane, shared by both action modes and the baselines.

Two buffers conflict when their live ranges overlap; the conflict graph of an instance is fixed, so it is
built once per instance (a CSR adjacency, by a sweep over sorted start times) and each step only looks at
the placed neighbours of one buffer: O(live neighbours) numpy work, never a scan of all n buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from schedgym.envs.memory_mapping.types import Instance

__all__ = ["ORDERS", "priority_order", "PreparedInstance", "prepare", "NO_FIT"]

#: Buffer presentation orders (kwarg ``order``). ``xla`` is XLA's memory-boundedness order; ``size``
#: and ``lifetime`` are the spatial and temporal orders of XLA's heap simulator.
ORDERS = ("xla", "start", "size", "lifetime", "area")
NO_FIT = np.iinfo(np.int64).max // 4  # "does not fit below the capacity"
_MAX_EDGES = 60_000_000  # above this the conflict graph is not materialised (memory), see `neighbours`


def priority_order(inst: Instance, order: str) -> np.ndarray:
    """Buffer indices in presentation order (ties broken deterministically, last by id)."""
    life = inst.end - inst.start
    if order == "xla":
        # -benefit/sqrt(size), then -size, then -lifetime, then start, then id (spec: XLA's MSA order).
        keys = (inst.ids, inst.start, -life, -inst.size, -inst.benefit / np.sqrt(inst.size))
    elif order == "start":
        keys = (inst.ids, -inst.size, inst.start)
    elif order == "size":
        keys = (inst.ids, -life, -inst.size)
    elif order == "lifetime":
        keys = (inst.ids, -inst.size, -life)
    elif order == "area":
        keys = (inst.ids, -(inst.size * life))
    else:
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    return np.lexsort(keys)


@dataclass(frozen=True)
class PreparedInstance:
    """An instance plus the immutable indexes the game needs. Shared, never copied, by snapshots."""

    inst: Instance
    order: np.ndarray  # (n,) buffer indices in presentation order
    rank: np.ndarray  # (n,) position of each buffer in `order`
    indptr: np.ndarray | None  # (n+1,) CSR of the conflict graph, or None if too large
    indices: np.ndarray | None  # (E,) int32 neighbours
    total_benefit: float
    total_area: float
    n_time_bins: int
    bin_lo: np.ndarray  # (n,) first coarse time bin a buffer covers
    bin_hi: np.ndarray  # (n,) one past its last coarse time bin
    max_benefit_density: float
    #: (n, 5) float64 per-buffer observation features: size / C, start and end / horizon, benefit
    #: density / max density, rank / n (fixed per instance, so computed once).
    buffer_features: np.ndarray

    def __deepcopy__(self, memo: dict) -> PreparedInstance:
        return self  # immutable: snapshots share it

    def neighbours(self, i: int) -> np.ndarray:
        """Buffers whose live range overlaps buffer ``i``'s (excluding ``i``)."""
        if self.indptr is not None:
            return self.indices[self.indptr[i] : self.indptr[i + 1]]
        inst = self.inst
        nb = np.flatnonzero((inst.start < inst.end[i]) & (inst.end > inst.start[i]))
        return nb[nb != i]


def overlap_csr(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency ``(indptr, indices)`` of the time-overlap graph of half-open ranges ``[start, end)``,
    by a sweep over sorted start times (vectorised; O(n log n + E))."""
    n = start.shape[0]
    order = np.argsort(start, kind="stable")
    s_sorted = start[order]
    # In start order, buffer p overlaps exactly the later buffers q > p with start_q < end_p.
    hi = np.searchsorted(s_sorted, end[order], side="left")
    counts = np.maximum(hi - np.arange(n) - 1, 0)
    total = int(counts.sum())
    first = np.repeat(np.arange(n) + 1 - (np.cumsum(counts) - counts), counts)
    src = order[np.repeat(np.arange(n), counts)]
    dst = order[first + np.arange(total)]
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src]).astype(np.int64)
    by_src = np.argsort(a, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])
    return indptr, b[by_src]


def _conflict_graph(inst: Instance) -> tuple[np.ndarray, np.ndarray] | None:
    n = inst.n
    # Count the edges first (each buffer overlaps the buffers starting before its end, less the ones
    # before it in start order): above _MAX_EDGES the graph is not materialised (memory).
    edges = int(np.searchsorted(np.sort(inst.start), inst.end, side="left").sum()) - n * (n + 1) // 2
    if 2 * edges > _MAX_EDGES:
        return None
    indptr, indices = overlap_csr(inst.start, inst.end)
    return indptr, indices.astype(np.int32)


def prepare(inst: Instance, order: str, n_time_bins: int = 64) -> PreparedInstance:
    perm = priority_order(inst, order)
    rank = np.empty(inst.n, dtype=np.int64)
    rank[perm] = np.arange(inst.n)
    graph = _conflict_graph(inst)
    horizon = max(inst.horizon, 1)
    t0 = int(inst.start.min()) if inst.n else 0
    span = max(horizon - t0, 1)
    bin_lo = ((inst.start - t0) * n_time_bins) // span
    bin_hi = np.maximum(((inst.end - t0) * n_time_bins + span - 1) // span, bin_lo + 1)
    density = inst.benefit / inst.size
    max_density = float(density.max()) if inst.n else 1.0
    features = np.stack(
        [
            inst.size / float(inst.capacity),
            (inst.start - t0) / span,
            (inst.end - t0) / span,
            density / (max_density if max_density > 0 else 1.0),
            rank / max(inst.n, 1),
        ],
        axis=1,
    )
    return PreparedInstance(
        inst=inst,
        order=perm,
        rank=rank,
        indptr=None if graph is None else graph[0],
        indices=None if graph is None else graph[1],
        total_benefit=float(inst.benefit.sum()),
        total_area=float((inst.size * (inst.end - inst.start)).sum()),
        n_time_bins=n_time_bins,
        bin_lo=bin_lo.astype(np.int64),
        bin_hi=np.minimum(bin_hi, n_time_bins).astype(np.int64),
        max_benefit_density=max_density,
        buffer_features=features,
    )


def placed_neighbours(prep: PreparedInstance, i: int, placed: np.ndarray, offset: np.ndarray):
    """(offsets, sizes) of the placed buffers that conflict with ``i``, sorted by offset."""
    nb = prep.neighbours(i)
    nb = nb[placed[nb]]
    x = offset[nb]
    o = np.argsort(x, kind="stable")
    return x[o], prep.inst.size[nb][o]


@numba.njit(cache=True)
def _candidate_offsets_kernel(i, indptr, indices, placed, offset, size, s, a, cap):
    m = 0
    for e in range(indptr[i], indptr[i + 1]):
        if placed[indices[e]]:
            m += 1
    xs = np.empty(m, np.int64)
    tops = np.empty(m, np.int64)
    k = 0
    for e in range(indptr[i], indptr[i + 1]):
        j = indices[e]
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


def candidate_offsets(
    prep: PreparedInstance, i: int, placed: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical feasible offsets of buffer ``i`` sorted best-fit first, with their gap bounds.

    Candidates: 0, the top of every placed conflicting buffer ("rest on"), ``x_j - s_i`` ("hang below")
    and ``C - s_i``, aligned and kept if the buffer fits there. Sorted by the size of the free gap they sit
    in (smallest first), ties by lower offset. Returns ``(offsets, gap_lo, gap_hi)``. Compiled (numba)
    when the conflict graph is materialised; numpy otherwise.
    """
    inst = prep.inst
    if prep.indptr is not None:
        return _candidate_offsets_kernel(
            int(i), prep.indptr, prep.indices, placed, offset, inst.size, int(inst.size[i]), int(inst.alignment[i]),
            int(inst.capacity),
        )
    s, a, cap = int(inst.size[i]), int(inst.alignment[i]), int(inst.capacity)
    xs, ss = placed_neighbours(prep, i, placed, offset)
    tops = xs + ss
    up = np.concatenate([[0], tops])
    up = -(-up // a) * a  # align up
    down = np.concatenate([xs - s, [cap - s]])
    down = (down // a) * a  # align down
    cand = np.unique(np.concatenate([up, down]))
    cand = cand[(cand >= 0) & (cand + s <= cap)]
    if cand.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    if xs.size:
        clash = (cand[:, None] < tops[None, :]) & (cand[:, None] + s > xs[None, :])
        cand = cand[~clash.any(axis=1)]
        if cand.size == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        # Gap bounds: highest top at or below the candidate, lowest bottom at or above its end.
        below = np.where(tops[None, :] <= cand[:, None], tops[None, :], 0).max(axis=1)
        above = np.where(xs[None, :] >= cand[:, None] + s, xs[None, :], cap).min(axis=1)
    else:
        below = np.zeros_like(cand)
        above = np.full_like(cand, cap)
    gap = above - below
    o = np.lexsort((cand, gap))
    return cand[o], below[o], above[o]


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
def occupancy_image(i, indptr, indices, placed, offset, size, start, end, cap, bins):
    """``bins x bins`` occupancy of the time x address plane over buffer ``i``'s live range (time-major):
    the share of each cell covered by placed buffers that overlap ``i`` in time, clipped to [0, 1]."""
    m = 0
    for e in range(indptr[i], indptr[i + 1]):
        if placed[indices[e]]:
            m += 1
    t0 = np.empty(m)
    t1 = np.empty(m)
    x0 = np.empty(m)
    x1 = np.empty(m)
    k = 0
    for e in range(indptr[i], indptr[i + 1]):
        j = indices[e]
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
    img = np.zeros((bins, bins))
    for k in range(m):
        for p in range(bins):
            if tc[k, p] == 0.0:
                continue
            for q in range(bins):
                img[p, q] += tc[k, p] * ac[k, q]
    return np.minimum(img, 1.0)


def lowest_fit(prep: PreparedInstance, i: int, placed: np.ndarray, offset: np.ndarray) -> tuple[int, int, int]:
    """Lowest aligned offset where buffer ``i`` fits now and the free gap around it:
    ``(offset, gap_lo, gap_hi)``, or ``(NO_FIT, 0, 0)``."""
    inst = prep.inst
    s, a, cap = int(inst.size[i]), int(inst.alignment[i]), int(inst.capacity)
    xs, ss = placed_neighbours(prep, i, placed, offset)
    if xs.size == 0:
        return (0, 0, cap) if s <= cap else (NO_FIT, 0, 0)
    tops = np.maximum.accumulate(xs + ss)
    # Free gaps: [0, xs[0]), [cummax top before k, xs[k]) for each k, then [tops[-1], cap).
    gap_lo = np.concatenate([[0], tops])
    gap_hi = np.concatenate([xs, [cap]])
    starts = -(-gap_lo // a) * a
    ok = np.flatnonzero(starts + s <= gap_hi)
    if not ok.size:
        return NO_FIT, 0, 0
    k = ok[0]
    return int(starts[k]), int(gap_lo[k]), int(gap_hi[k])
