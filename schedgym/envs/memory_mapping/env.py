"""MemoryMapping-v0: place tensor buffers in an accelerator's fast memory (an open mallocGame).

Origin: "Optimizing Memory Mapping Using Deep Reinforcement Learning" (Wang et al., DeepMind 2023: the
mallocGame and mallocMuZero) and XLA's memory-space assignment, whose best-fit heuristic is action 0.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numba
import numpy as np

from schedgym.envs.core import SchedEnv, check_bool, check_choice, check_int
from schedgym.envs.memory_mapping import geometry
from schedgym.envs.memory_mapping.geometry import NO_FIT, ORDERS, PreparedInstance, prepare
from schedgym.envs.memory_mapping.instances import resolve_instance
from schedgym.envs.memory_mapping.types import Instance, MappingState

__all__ = ["MemoryMappingEnv"]

ACTION_MODES = ("place", "order")
BUFFER_FEATURES = 5  # size, start, end, benefit density, rank
CANDIDATE_FEATURES = BUFFER_FEATURES + 5  # + offset, gap, waste, touches, leftover
IMAGE_BINS = 16
GLOBAL_FEATURES = 3
_UNIT_EDGES = np.linspace(0.0, 1.0, IMAGE_BINS + 1)


class MemoryMappingEnv(SchedEnv):
    """Place the buffers of a compiled ML program in a small fast memory, maximising the benefit placed.

    ## Description

    An ML compiler decides for every tensor buffer whether it lives in fast on-chip memory (TPU CMEM/VMEM,
    GPU L2/shared memory) or in slow HBM, and at which byte offset. Buffer ``i`` has a size ``s_i``, a
    half-open live range ``[start_i, end_i)`` in schedule steps and a benefit ``w_i`` (time saved in fast
    memory). Buffers alive at the same time may not overlap in address space, and everything placed must
    lie in ``[0, C)``. The game is variant A of the mallocGame (storage allocation with benefits): every
    buffer is decided once, placed or sent to slow memory, with no backtracking.

    Two action modes share one occupancy structure (kwarg ``action_mode``):

    - ``"place"`` (default, XLA-faithful): buffers come one at a time in a fixed ``order``. The candidate
      offsets are the canonical positions (0, on top of a placed conflicting buffer, just below one, and
      ``C - s``) where the buffer fits, sorted best-fit first (smallest enclosing free gap, then lowest
      offset); when there are more than ``K``, the last slot shows the lowest feasible offset if the
      ``K - 1`` best-fit ones miss it (so first fit stays reachable). Always taking action 0 is XLA's
      best-fit heuristic.
    - ``"order"`` (MiniMalloc-like, complete): the decision is which buffer goes next; the candidates are
      the ``K`` undecided buffers with the lowest minimum viable offset (ties by ``order``), and the chosen
      one lands at that offset. Every packing is reachable when ``K`` covers all buffers. A buffer that no
      longer fits anywhere goes to slow memory automatically.

    ## Action Space

    ``Discrete(K + 1)``. In ``place`` mode action ``k < K`` puts the current buffer at candidate offset
    ``k`` and action ``K`` leaves it in slow memory. In ``order`` mode action ``k < K`` places candidate
    buffer ``k`` at its minimum viable offset and action ``K`` sends candidate 0 to slow memory.

    ## Action Mask

    ``info["action_mask"]`` (int8), ``action_masks()`` (bool) and, through
    :class:`~schedgym.envs.core.ActionMaskObservation`, a Dict observation. Actions ``k`` beyond the
    number of existing candidates are masked; action ``K`` is always legal, so there are no dead ends.
    An invalid action is replaced by the default action (0 if a candidate exists, else ``K``),
    penalised by ``invalid_action_penalty``, and flagged ``info["invalid_action"]``.

    ## Observation Space

    ``Box(0, 1, (5 + 10 K + 256 + 3,), float32)`` (424 values for K = 16), independent of the number of
    buffers:

    | slice | meaning |
    |---|---|
    | 0:5 | current buffer (place) or candidate 0 (order): size / C, start and end / horizon, benefit density / max density, rank / n |
    | 5:5+10K | per candidate: the 5 buffer features above, offset / C, free-gap size / C, waste (gap - size) / C, touches (0, 0.5, 1: neighbours touched below/above), largest leftover fragment of the gap / C; zeros for absent candidates |
    | next 256 | 16 x 16 occupancy of the time x address plane over the current buffer's live range (time-major) |
    | last 3 | fraction of buffers decided, fraction of benefit placed, peak load of undecided buffers / C (divided by 4, clipped) |

    ## Rewards

    ``w_i / sum_j w_j`` when buffer ``i`` is placed, 0 when it goes to slow memory, minus the invalid
    action penalty. The episode return is the fraction of the total benefit placed, in ``[0, 1]``.

    ## Starting State

    A fixed instance (``minimalloc:*``, ``somas:*``, ``csv:*``, ``torch:*``) is loaded once at
    construction; ``instance="random"`` draws a new instance from ``reset(seed)``. Nothing is placed.

    ## Episode End

    Terminates when every buffer is decided: exactly ``n`` steps in ``place`` mode, at most ``n`` in
    ``order`` mode (a buffer that no longer fits is sent to slow memory without a step). Never truncated.
    ``gym.make(...).spec.max_episode_steps`` is ``n`` (``horizon_steps``: 200 with the default kwargs,
    ``n_buffers`` for random instances, the file's buffer count otherwise), from a ``TimeLimit`` built
    from the kwargs rather than registered, since a registered 200 would cut larger instances; it never
    fires before the termination (``schedgym.envs.core.horizon``).

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | instance | str | ``"random"`` | ``"minimalloc:A"``..``"minimalloc:K"``, ``"somas:resnet50"``, ``"csv:<path>"``, ``"torch:<model>"`` or ``"random"`` |
    | capacity | int or float | None | int: bytes; float in (0, 1]: fraction of the instance's peak live bytes. Default: the file's capacity; 0.5 for random; required for SOMAS |
    | action_mode | str | ``"place"`` | ``"place"`` or ``"order"`` |
    | order | str | ``"xla"`` | presentation order: ``xla`` (-benefit/sqrt(size), -size, -lifetime, start, id), ``start``, ``size``, ``lifetime``, ``area`` |
    | K | int | 16 | number of candidate actions |
    | n_buffers | int | 200 (40 planted) | random instances: number of buffers |
    | planted | bool | False | random instances: guillotine-cut a C x T rectangle, so the optimum places 100 % |
    | size_distribution | str | ``"loguniform"`` | random instances: ``loguniform`` or ``pareto`` |
    | max_lifetime | int | 100 | random instances: longest live range in steps |
    | hardware | str | ``"tpu_like"`` | torch instances: hardware preset of the roofline benefit model |
    | invalid_action_penalty | float | 0.0 | subtracted from the reward of an invalid action |
    | render_mode | str | None | ``"ansi"`` or ``"rgb_array"`` |

    ``gym.make("schedgym/MemoryMapping-v0", instance="minimalloc:A", action_mode="place", K=16)``

    ## Info / Metrics

    ``info["metrics"]`` at episode end (and ``env.unwrapped.metrics()`` at any time):
    ``benefit_placed_frac``, ``area_placed_frac``, ``buffers_placed``, ``buffers_total``,
    ``peak_fast_bytes`` (highest byte used), ``capacity_bytes``, and ``optimum`` and ``gap_to_optimum``
    when the instance knows its optimum (planted). Every ``info`` holds ``benefit_source``: ``"area"``
    (size x lifetime, when the file has no benefit column), ``"file"`` or ``"roofline"`` (torch).

    ## Version History

    * v0: initial version.
    """

    #: Frames a second ``render()`` keeps up with: 0.20 s per rgb_array frame measured by
    #: ``benchmarks/render_time.py`` (the figure is rebuilt every call).
    metadata = {**SchedEnv.metadata, "render_fps": 4}

    def __init__(
        self,
        instance: str = "random",
        capacity: int | float | None = None,
        action_mode: str = "place",
        order: str = "xla",
        K: int = 16,
        n_buffers: int | None = None,
        planted: bool = False,
        size_distribution: str = "loguniform",
        max_lifetime: int = 100,
        hardware: str = "tpu_like",
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        if not isinstance(instance, str):
            raise ValueError(f"instance must be a string such as 'minimalloc:A' or 'random', got {instance!r}")
        self.action_mode = check_choice("action_mode", action_mode, ACTION_MODES)
        self.order = check_choice("order", order, ORDERS)
        self.K = check_int("K", K, low=1, high=4096)
        self.planted = check_bool("planted", planted)
        self.instance_spec = instance
        self._capacity = capacity
        self._generator_kwargs: dict[str, Any] = {}
        if instance == "random":
            default_n = 40 if planted else 200
            # Bounded so that an episode fits in memory and time: ~1.5 KB a buffer (200k: ~0.3 GB); the
            # planted generator cuts pieces one at a time (quadratic), so it stops at 10k.
            n = check_int("n_buffers", default_n if n_buffers is None else n_buffers, low=1,
                          high=10_000 if planted else 200_000)
            self._generator_kwargs["n_buffers"] = n
            if not planted:
                self._generator_kwargs["size_distribution"] = check_choice(
                    "size_distribution", size_distribution, ("loguniform", "pareto")
                )
                self._generator_kwargs["max_lifetime"] = check_int("max_lifetime", max_lifetime, low=1)
            # Validate the capacity kwarg now rather than at the first reset.
            resolve_instance("random", capacity, np.random.default_rng(0), {**self._generator_kwargs, "n_buffers": 2}, planted)
            self._fixed: PreparedInstance | None = None
        else:
            if n_buffers is not None or planted:
                raise ValueError("n_buffers and planted apply only to instance='random'")
            inst = resolve_instance(instance, capacity, torch_kwargs={"hardware": hardware})
            self._fixed = prepare(inst, self.order)

        K1 = self.K + 1
        self.action_space = gym.spaces.Discrete(K1)
        obs_dim = BUFFER_FEATURES + CANDIDATE_FEATURES * self.K + IMAGE_BINS * IMAGE_BINS + GLOBAL_FEATURES
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(obs_dim,), dtype=np.float32)
        self.state: MappingState | None = None

    # ------------------------------------------------------------------ public read-only views
    @property
    def instance(self) -> Instance:
        """The instance of the current episode (after reset) or the fixed one."""
        if self.state is not None:
            return self.state.prep.inst
        if self._fixed is None:
            raise RuntimeError("a random instance is drawn at reset(): call reset() first")
        return self._fixed.inst

    @property
    def prepared(self) -> PreparedInstance:
        if self.state is None:
            raise RuntimeError("call reset() first")
        return self.state.prep

    @property
    def horizon_steps(self) -> int:
        """``n``: every episode terminates within ``n`` steps (exactly ``n`` in place mode)."""
        if self._fixed is not None:
            return int(self._fixed.inst.n)
        return int(self._generator_kwargs["n_buffers"])

    def current_buffer(self) -> int:
        """Place mode: the buffer being decided (-1 when done)."""
        st = self.state
        return int(st.prep.order[st.cursor]) if st.cursor < st.prep.inst.n else -1

    # ------------------------------------------------------------------ dynamics
    def _reset(self, options: dict[str, Any] | None) -> None:
        if self._fixed is not None:
            prep = self._fixed
        else:
            inst = resolve_instance("random", self._capacity, self.np_random, self._generator_kwargs, self.planted)
            prep = prepare(inst, self.order)
        inst = prep.inst
        n = inst.n
        load = np.zeros(prep.n_time_bins, dtype=np.float64)
        np.add.at(load, _expand_bins(prep.bin_lo, prep.bin_hi), np.repeat(inst.size, prep.bin_hi - prep.bin_lo))
        mvo = np.where(inst.size <= inst.capacity, 0, NO_FIT).astype(np.int64)
        self.state = MappingState(
            prep=prep,
            decided=np.zeros(n, dtype=bool),
            placed=np.zeros(n, dtype=bool),
            offset=np.full(n, -1, dtype=np.int64),
            min_viable_offset=mvo,
            viable_gap_lo=np.zeros(n, dtype=np.int64),
            viable_gap_hi=np.full(n, inst.capacity, dtype=np.int64),
            undecided_load=load,
            cursor=0,
            cand_buffer=np.full(self.K, -1, dtype=np.int64),
            cand_offset=np.full(self.K, -1, dtype=np.int64),
            cand_gap_lo=np.zeros(self.K, dtype=np.int64),
            cand_gap_hi=np.zeros(self.K, dtype=np.int64),
            n_candidates=0,
        )
        if self.action_mode == "order":
            too_big = np.flatnonzero(mvo == NO_FIT)
            if too_big.size == n:
                raise ValueError(
                    f"no buffer of {inst.name} fits in capacity {inst.capacity} bytes: nothing to decide in order mode"
                )
            for b in too_big:
                self._discard(int(b))
            self.state.n_auto_discarded = int(too_big.size)
        self._refresh_candidates()

    def _refresh_candidates(self) -> None:
        st = self.state
        prep = st.prep
        st.cand_buffer[:] = -1
        st.cand_offset[:] = -1
        st.cand_gap_lo[:] = 0
        st.cand_gap_hi[:] = 0
        if self.action_mode == "place":
            if st.cursor >= prep.inst.n:
                st.n_candidates = 0
                return
            b = int(prep.order[st.cursor])
            offs, lo, hi = geometry.candidate_offsets(prep, b, st.placed, st.offset)
            k = min(self.K, offs.size)
            if offs.size > self.K:
                # The last slot shows the lowest feasible offset when the K best-fit ones miss it, so
                # that first fit (and MiniMalloc-style canonical packings) stay reachable with any K.
                lowest = int(np.argmin(offs))
                if lowest >= self.K:
                    keep = np.r_[np.arange(self.K - 1), lowest]
                    offs, lo, hi = offs[keep], lo[keep], hi[keep]
            st.cand_buffer[:k] = b
            st.cand_offset[:k], st.cand_gap_lo[:k], st.cand_gap_hi[:k] = offs[:k], lo[:k], hi[:k]
            st.n_candidates = k
            return
        live = np.flatnonzero(~st.decided)
        if live.size == 0:
            st.n_candidates = 0
            return
        key = st.min_viable_offset[live] * prep.inst.n + prep.rank[live]
        k = min(self.K, live.size)
        if live.size > k:
            part = np.argpartition(key, k - 1)[:k]
            part = part[np.argsort(key[part])]
        else:
            part = np.argsort(key)
        chosen = live[part]
        st.cand_buffer[:k] = chosen
        st.cand_offset[:k] = st.min_viable_offset[chosen]
        st.cand_gap_lo[:k] = st.viable_gap_lo[chosen]
        st.cand_gap_hi[:k] = st.viable_gap_hi[chosen]
        st.n_candidates = k

    def _action_mask(self) -> np.ndarray:
        mask = np.zeros(self.K + 1, dtype=bool)
        mask[: self.state.n_candidates] = True
        mask[self.K] = True
        return mask

    def _default_action(self) -> int:
        return 0 if self.state.n_candidates > 0 else self.K

    def _place(self, b: int, x: int) -> float:
        st = self.state
        inst = st.prep.inst
        st.placed[b] = True
        st.offset[b] = x
        st.benefit_placed += float(inst.benefit[b])
        st.area_placed += float(inst.size[b] * (inst.end[b] - inst.start[b]))
        st.n_placed += 1
        st.peak_fast_bytes = max(st.peak_fast_bytes, int(x + inst.size[b]))
        self._mark_decided(b)
        return float(inst.benefit[b]) / st.prep.total_benefit if st.prep.total_benefit > 0 else 0.0

    def _discard(self, b: int) -> None:
        self._mark_decided(b)

    def _mark_decided(self, b: int) -> None:
        st = self.state
        st.decided[b] = True
        st.n_decided += 1
        st.undecided_load[st.prep.bin_lo[b] : st.prep.bin_hi[b]] -= st.prep.inst.size[b]

    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        st = self.state
        prep = st.prep
        n = prep.inst.n
        reward = 0.0
        if self.action_mode == "place":
            b = int(prep.order[st.cursor])
            if action < self.K:
                reward = self._place(b, int(st.cand_offset[action]))
            else:
                self._discard(b)
            st.cursor += 1
            terminated = st.cursor >= n
        else:
            if action < self.K:
                b = int(st.cand_buffer[action])
                x = int(st.min_viable_offset[b])
                reward = self._place(b, x)
                self._update_viable_offsets(b, x)
            else:
                self._discard(int(st.cand_buffer[0]))
            terminated = st.n_decided >= n
        if not terminated:
            self._refresh_candidates()
        else:
            st.n_candidates = 0
        return reward, terminated, False, {}

    def _update_viable_offsets(self, b: int, x: int) -> None:
        """Order mode: only undecided neighbours of the buffer just placed can change. Those whose viable
        slot it overlaps are recomputed; for the others it can only narrow the free gap around the slot."""
        st = self.state
        prep = st.prep
        size = prep.inst.size
        nb = prep.neighbours(b)
        nb = nb[~st.decided[nb]]
        mvo = st.min_viable_offset[nb]
        top = x + int(size[b])
        overlaps = (mvo < top) & (mvo + size[nb] > x)
        rest, rest_mvo = nb[~overlaps], mvo[~overlaps]
        below = top <= rest_mvo
        st.viable_gap_lo[rest[below]] = np.maximum(st.viable_gap_lo[rest[below]], top)
        above = ~below
        st.viable_gap_hi[rest[above]] = np.minimum(st.viable_gap_hi[rest[above]], x)
        for k in nb[overlaps]:
            k = int(k)
            v, lo, hi = geometry.lowest_fit(prep, k, st.placed, st.offset)
            st.min_viable_offset[k], st.viable_gap_lo[k], st.viable_gap_hi[k] = v, lo, hi
            if v == NO_FIT:
                self._discard(k)
                st.n_auto_discarded += 1

    # ------------------------------------------------------------------ observation
    def _buffer_features(self, b: np.ndarray) -> np.ndarray:
        return self.state.prep.buffer_features[b]

    def _observe(self) -> np.ndarray:
        st = self.state
        prep = st.prep
        inst = prep.inst
        k = st.n_candidates
        focus = self.current_buffer() if self.action_mode == "place" else (int(st.cand_buffer[0]) if k else -1)
        image = self._occupancy_image(focus) if focus >= 0 else _NO_IMAGE
        obs = np.empty(self.observation_space.shape, dtype=np.float32)
        _fill_observation(
            obs, prep.buffer_features, st.cand_buffer, st.cand_offset, st.cand_gap_lo, st.cand_gap_hi, k, inst.size,
            float(inst.capacity), focus, image, st.n_decided / max(inst.n, 1),
            st.benefit_placed / prep.total_benefit if prep.total_benefit > 0 else 0.0,
            min(float(st.undecided_load.max()) / float(inst.capacity), 4.0) / 4.0,
        )
        return obs

    def _occupancy_image(self, b: int) -> np.ndarray:
        st = self.state
        prep = st.prep
        inst = prep.inst
        if prep.indptr is not None:  # compiled; the numpy code below is the fallback for huge graphs
            return geometry.occupancy_image(
                b, prep.indptr, prep.indices, st.placed, st.offset, inst.size, inst.start, inst.end, inst.capacity,
                IMAGE_BINS,
            )
        nb = prep.neighbours(b)
        nb = nb[st.placed[nb]]
        if nb.size == 0:
            return np.zeros((IMAGE_BINS, IMAGE_BINS))
        t_edges = inst.start[b] + (inst.end[b] - inst.start[b]) * _UNIT_EDGES
        a_edges = float(inst.capacity) * _UNIT_EDGES
        t_cov = _coverage(inst.start[nb], inst.end[nb], t_edges)
        a_cov = _coverage(st.offset[nb], st.offset[nb] + inst.size[nb], a_edges)
        return np.clip(t_cov.T @ a_cov, 0.0, 1.0)

    # ------------------------------------------------------------------ metrics, info, render
    def _extra_info(self) -> dict[str, Any]:
        return {"benefit_source": self.state.prep.inst.benefit_source}

    def metrics(self) -> dict[str, float]:
        st = self.state
        if st is None:
            raise RuntimeError("call reset() first")
        prep = st.prep
        inst = prep.inst
        frac = st.benefit_placed / prep.total_benefit if prep.total_benefit > 0 else 0.0
        m: dict[str, float] = {
            "benefit_placed_frac": frac,
            "area_placed_frac": st.area_placed / prep.total_area if prep.total_area > 0 else 0.0,
            "buffers_placed": st.n_placed,
            "buffers_total": inst.n,
            "peak_fast_bytes": st.peak_fast_bytes,
            "capacity_bytes": int(inst.capacity),
        }
        if inst.optimum is not None:
            m["optimum"] = float(inst.optimum)
            m["gap_to_optimum"] = float(inst.optimum) - frac
        return m

    def placements(self) -> np.ndarray:
        """Byte offset of every buffer placed so far, -1 for slow memory or undecided."""
        return self.state.offset.copy()

    def _render_ansi(self) -> str:
        from schedgym.envs.memory_mapping.render import render_ansi

        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.memory_mapping.render import render_rgb

        return render_rgb(self)


_NO_IMAGE = np.zeros((IMAGE_BINS, IMAGE_BINS))


@numba.njit(cache=True)
def _fill_observation(obs, features, cand_buffer, cand_offset, cand_lo, cand_hi, k, size, cap, focus, image,
                      decided_frac, benefit_frac, load_frac):
    """Write the flat observation (layout in the class docstring) into ``obs`` (float32), clipped to [0, 1]."""
    obs[:] = 0.0
    nf = features.shape[1]
    if focus >= 0:
        for f in range(nf):
            obs[f] = min(max(features[focus, f], 0.0), 1.0)
    n_cand = cand_buffer.shape[0]
    width = nf + 5
    for j in range(k):
        b = cand_buffer[j]
        base = nf + j * width
        for f in range(nf):
            obs[base + f] = min(max(features[b, f], 0.0), 1.0)
        x, lo, hi, s = cand_offset[j], cand_lo[j], cand_hi[j], size[b]
        gap = hi - lo
        touches = ((1.0 if x == lo else 0.0) + (1.0 if x + s == hi else 0.0)) / 2.0
        vals = (x / cap, gap / cap, (gap - s) / cap, touches, max(x - lo, hi - x - s) / cap)
        for f in range(5):
            obs[base + nf + f] = min(max(vals[f], 0.0), 1.0)
    pos = nf + n_cand * width
    if focus >= 0:
        bins = image.shape[0]
        for p in range(bins):
            for q in range(bins):
                obs[pos + p * bins + q] = min(max(image[p, q], 0.0), 1.0)
        pos += bins * bins
    else:
        pos += image.shape[0] * image.shape[1]
    obs[pos] = min(max(decided_frac, 0.0), 1.0)
    obs[pos + 1] = min(max(benefit_frac, 0.0), 1.0)
    obs[pos + 2] = min(max(load_frac, 0.0), 1.0)


def _expand_bins(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    counts = hi - lo
    return np.repeat(lo, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))


def _coverage(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of each bin of ``edges`` covered by each interval ``[a, b)``: shape (len(a), bins)."""
    lo = np.maximum(a[:, None], edges[None, :-1])
    hi = np.minimum(b[:, None], edges[None, 1:])
    width = np.maximum(edges[1:] - edges[:-1], 1e-12)
    return np.clip(hi - lo, 0.0, None) / width[None, :]
