"""Feasibility in the time x address plane, shared by both action modes and the baselines.

Two buffers conflict when their live ranges overlap; the conflict graph of an instance is fixed, so it is
built once per instance (a CSR adjacency, by a sweep over sorted start times) and each step only looks at
the placed neighbours of one buffer: O(live neighbours) numpy work, never a scan of all n buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _conflict_graph(inst: Instance) -> tuple[np.ndarray, np.ndarray] | None:
    n = inst.n
    order = np.argsort(inst.start, kind="stable")
    s_sorted = inst.start[order]
    # In start order, buffer p overlaps exactly the later buffers q > p with start_q < end_p.
    hi = np.searchsorted(s_sorted, inst.end[order], side="left")
    counts = np.maximum(hi - np.arange(n) - 1, 0)
    total = int(counts.sum())
    if 2 * total > _MAX_EDGES:
        return None
    first = np.repeat(np.arange(n) + 1 - (np.cumsum(counts) - counts), counts)
    src = order[np.repeat(np.arange(n), counts)]
    dst = order[first + np.arange(total)]
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src]).astype(np.int32)
    by_src = np.argsort(a, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])
    return indptr, b[by_src]


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


def candidate_offsets(
    prep: PreparedInstance, i: int, placed: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical feasible offsets of buffer ``i`` sorted best-fit first, with their gap bounds.

    Candidates: 0, the top of every placed conflicting buffer ("rest on"), ``x_j - s_i`` ("hang below")
    and ``C - s_i``, aligned and kept if the buffer fits there. Sorted by the size of the free gap they sit
    in (smallest first), ties by lower offset. Returns ``(offsets, gap_lo, gap_hi)``.
    """
    inst = prep.inst
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
