"""Typed data of the memory-mapping game: the instance (immutable) and the episode state."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Instance"]


@dataclass(frozen=True)
class Instance:
    """Buffers to place in a fast memory of ``capacity`` bytes.

    Buffer ``i`` is live on the half-open schedule interval ``[start[i], end[i])`` and occupies
    ``size[i]`` bytes at an offset that is a multiple of ``alignment[i]``.
    """

    ids: np.ndarray  # (n,) int64, unique buffer ids from the source
    start: np.ndarray  # (n,) int64, first schedule step the buffer is live
    end: np.ndarray  # (n,) int64, one past the last live step (end > start)
    size: np.ndarray  # (n,) int64 bytes, > 0
    benefit: np.ndarray  # (n,) float64 >= 0, time saved if the buffer lives in fast memory
    alignment: np.ndarray  # (n,) int64 >= 1
    capacity: int | None  # bytes of fast memory; None until resolved (files without one)
    name: str = "instance"
    benefit_source: str = "area"  # "area" (size x lifetime), "file" or "roofline"
    optimum: float | None = None  # known optimal benefit_placed_frac (planted instances), else None
    #: Offsets of a known packing (planted instances): buffer i at planted_offset[i], or -1 if unknown.
    planted_offset: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        for name in ("start", "end", "size", "benefit", "alignment"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Instance.{name} must have shape ({n},)")
        if self.capacity is not None and self.capacity <= 0:
            raise ValueError(f"capacity must be > 0 bytes, got {self.capacity}")

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.end.max()) if self.n else 0

    def peak_live_bytes(self) -> int:
        """Largest total size of buffers live at the same schedule step."""
        if self.n == 0:
            return 0
        times = np.concatenate([self.start, self.end])
        deltas = np.concatenate([self.size, -self.size])
        order = np.lexsort((deltas, times))  # at equal times, frees (negative) before allocations
        return int(np.max(np.cumsum(deltas[order])))


def _counter(index: int, doc: str) -> property:
    def get(self: MappingState) -> int:
        return int(self.counters[index])

    def set(self: MappingState, value: int) -> None:
        self.counters[index] = value

    return property(get, set, doc=doc)


def _total(index: int, doc: str) -> property:
    def get(self: MappingState) -> float:
        return float(self.totals[index])

    def set(self: MappingState, value: float) -> None:
        self.totals[index] = value

    return property(get, set, doc=doc)


@dataclass
class MappingState:
    """Mutable state of one episode (everything `get_state` snapshots), as the arrays the numba dynamics
    (``dynamics.py``) update in place; the scalars live in ``counters``/``totals`` and read as attributes."""

    prep: object  # PreparedInstance (immutable, shared by snapshots)
    decided: np.ndarray  # (n,) bool, buffer placed or sent to slow memory
    placed: np.ndarray  # (n,) bool, buffer in fast memory
    offset: np.ndarray  # (n,) int64 byte offset of placed buffers, -1 otherwise
    min_viable_offset: np.ndarray  # (n,) int64 lowest offset where each undecided buffer fits (order mode)
    viable_gap_lo: np.ndarray  # (n,) int64 lower end of the free gap around that offset (order mode)
    viable_gap_hi: np.ndarray  # (n,) int64 upper end of that gap (order mode)
    undecided_load: np.ndarray  # (n_time_bins,) float64 bytes of undecided buffers per coarse time bin
    cand_buffer: np.ndarray  # (K,) int64 buffer of each candidate action, -1 if none
    cand_offset: np.ndarray  # (K,) int64 offset of each candidate action
    cand_gap_lo: np.ndarray  # (K,) int64 lower bound of the free gap the candidate sits in
    cand_gap_hi: np.ndarray  # (K,) int64 upper bound of that gap
    counters: np.ndarray  # (6,) int64: the int attributes below, in dynamics.C_* order
    totals: np.ndarray  # (2,) float64: benefit_placed, area_placed

    cursor = _counter(0, "place mode: position in the presentation order of the current buffer")
    n_candidates = _counter(1, "candidate actions shown (the first n_candidates of cand_*)")
    n_decided = _counter(2, "buffers placed or sent to slow memory")
    n_placed = _counter(3, "buffers placed")
    n_auto_discarded = _counter(4, "order mode: buffers that no longer fit anywhere")
    peak_fast_bytes = _counter(5, "highest byte used")
    benefit_placed = _total(0, "benefit of the buffers placed")
    area_placed = _total(1, "size x lifetime of the buffers placed")
