"""The immutable indexes of an instance, shared by both action modes and the baselines.

Two buffers conflict when their live ranges overlap; the conflict graph of an instance is fixed, so it is
built once per instance (a CSR adjacency, by a sweep over sorted start times) and each step (``dynamics.py``)
only looks at the placed neighbours of one buffer, never a scan of all n buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedgym.envs.memory_mapping.dynamics import NO_FIT
from schedgym.envs.memory_mapping.types import Instance

__all__ = ["ORDERS", "priority_order", "PreparedInstance", "prepare", "NO_FIT"]

#: Buffer presentation orders (kwarg ``order``). ``xla`` is XLA's memory-boundedness order; ``size``
#: and ``lifetime`` are the spatial and temporal orders of XLA's heap simulator.
ORDERS = ("xla", "start", "size", "lifetime", "area")
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
    #: (n_time_bins,) float64 bytes of every buffer per coarse time bin (the undecided load at reset).
    load0: np.ndarray
    #: The instance's arrays in ``dynamics.INST_FIELDS`` order, as the kernels take them (an empty CSR
    #: when the conflict graph is not materialised).
    kernel_arrays: tuple

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
    bin_lo = bin_lo.astype(np.int64)
    bin_hi = np.minimum(bin_hi, n_time_bins).astype(np.int64)
    load0 = np.zeros(n_time_bins, dtype=np.float64)
    np.add.at(load0, _expand_bins(bin_lo, bin_hi), np.repeat(inst.size, bin_hi - bin_lo))
    indptr = np.zeros(inst.n + 1, dtype=np.int64) if graph is None else graph[0]
    indices = np.zeros(0, dtype=np.int32) if graph is None else graph[1]
    i64 = [np.ascontiguousarray(x, dtype=np.int64) for x in (inst.size, inst.start, inst.end, inst.alignment)]
    kernel_arrays = (*i64, np.ascontiguousarray(inst.benefit, dtype=np.float64), perm.astype(np.int64), rank, bin_lo,
                     bin_hi, np.ascontiguousarray(features), indptr, indices, load0)  # fmt: skip
    return PreparedInstance(
        inst=inst,
        order=perm,
        rank=rank,
        indptr=None if graph is None else graph[0],
        indices=None if graph is None else graph[1],
        total_benefit=float(inst.benefit.sum()),
        total_area=float((inst.size * (inst.end - inst.start)).sum()),
        n_time_bins=n_time_bins,
        bin_lo=bin_lo,
        bin_hi=bin_hi,
        max_benefit_density=max_density,
        buffer_features=features,
        load0=load0,
        kernel_arrays=kernel_arrays,
    )


def _expand_bins(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    counts = hi - lo
    return np.repeat(lo, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
