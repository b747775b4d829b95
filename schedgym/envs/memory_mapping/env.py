"""MemoryMapping-v0: place tensor buffers in an accelerator's fast memory (an open mallocGame).

Origin: "Optimizing Memory Mapping Using Deep Reinforcement Learning" (Wang et al., DeepMind 2023: the
mallocGame and mallocMuZero) and XLA's memory-space assignment, whose best-fit heuristic is action 0.
"""

from __future__ import annotations

import operator
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.core import SchedEnv, check_bool, check_choice, check_int
from schedgym.envs.core.base import integral_action
from schedgym.envs.core.horizon import HorizonSpec
from schedgym.envs.memory_mapping import dynamics as dyn
from schedgym.envs.memory_mapping.geometry import ORDERS, PreparedInstance, prepare
from schedgym.envs.memory_mapping.instances import resolve_instance
from schedgym.envs.memory_mapping.types import Instance, MappingState

__all__ = ["MemoryMappingEnv"]

ACTION_MODES = ("place", "order")
BUFFER_FEATURES = 5  # size, start, end, benefit density, rank
CANDIDATE_FEATURES = BUFFER_FEATURES + 5  # + offset, gap, waste, touches, leftover
IMAGE_BINS = dyn.IMAGE_BINS
GLOBAL_FEATURES = 3


class MemoryMappingEnv(HorizonSpec, SchedEnv):
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
    ``n_buffers`` for random instances, the file's buffer count otherwise), set by the env from its kwargs
    rather than registered, since a registered 200 would cut larger instances (no ``TimeLimit`` wrapper:
    the episode ends by itself then). ``gym.make(id, max_episode_steps=N)`` still truncates at ``N``, but
    without ``info["metrics"]`` (read ``env.unwrapped.metrics()``): the id has a native vector env, which
    Gymnasium allows only without registered wrappers.

    ## Vector Env

    ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)`` steps N episodes in
    one numba call (``vector.py``), equal step for step to N ``gym.make`` envs under next-step autoreset;
    ``info["action_mask"]`` has shape ``(N, K + 1)``.

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
        self._obs_dim = obs_dim
        self._mode = dyn.PLACE if self.action_mode == "place" else dyn.ORDER
        # Where kernels called for their side effects (reset, _apply) write an observation and mask.
        self._obs_scratch = np.empty(obs_dim, dtype=np.float32)
        self._mask_scratch = np.empty(K1, dtype=np.int8)

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

    # ------------------------------------------------------------------ dynamics (dynamics.py)
    def _reset(self, options: dict[str, Any] | None) -> None:
        if self._fixed is not None:
            prep = self._fixed
        else:
            inst = resolve_instance("random", self._capacity, self.np_random, self._generator_kwargs, self.planted)
            prep = prepare(inst, self.order)
        inst = prep.inst
        n, K = inst.n, self.K
        if self.action_mode == "order" and not np.any(inst.size <= inst.capacity):
            raise ValueError(
                f"no buffer of {inst.name} fits in capacity {inst.capacity} bytes: nothing to decide in order mode"
            )
        i64 = np.int64
        st = MappingState(
            prep=prep,
            decided=np.zeros(n, dtype=bool),
            placed=np.zeros(n, dtype=bool),
            offset=np.empty(n, dtype=i64),
            min_viable_offset=np.empty(n, dtype=i64),
            viable_gap_lo=np.empty(n, dtype=i64),
            viable_gap_hi=np.empty(n, dtype=i64),
            undecided_load=np.empty(prep.n_time_bins, dtype=np.float64),
            cand_buffer=np.empty(K, dtype=i64),
            cand_offset=np.empty(K, dtype=i64),
            cand_gap_lo=np.empty(K, dtype=i64),
            cand_gap_hi=np.empty(K, dtype=i64),
            counters=np.zeros(dyn.N_COUNTERS, dtype=i64),
            totals=np.zeros(dyn.N_TOTALS, dtype=np.float64),
        )
        self.state = st
        dyn.begin_one(self._mode, *_scalars(prep), prep.kernel_arrays, _STATE_ARRAYS(st), self._obs_scratch,
                      self._mask_scratch)  # fmt: skip

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """:meth:`SchedEnv.step` in one kernel call (same contract, same results)."""
        st = self.state
        if st is None:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode is over: call reset() before stepping again")
        a = action if type(action) is int else integral_action(action)
        valid = a is not None and -_INT64_LIMIT < a < _INT64_LIMIT
        prep = st.prep
        obs = np.empty(self._obs_dim, dtype=np.float32)
        mask = np.empty(self.K + 1, dtype=np.int8)
        reward, terminated, executed, invalid = dyn.step_one(
            a if valid else 0, valid, self.invalid_action_penalty, True, self._mode, *_scalars(prep),
            prep.kernel_arrays, _STATE_ARRAYS(st), obs, mask,
        )
        info = {"benefit_source": prep.inst.benefit_source, "invalid_action": invalid, "action": executed,
                "action_mask": mask}  # fmt: skip
        if terminated:
            self._episode_over = True
            info["metrics"] = self.metrics()
        return obs, reward, terminated, False, info

    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        """Play a legal ``action`` (no observation is written): ``(reward, terminated, False, {})``."""
        st = self.state
        prep = st.prep
        reward, terminated, _, _ = dyn.step_one(
            int(action), True, 0.0, False, self._mode, *_scalars(prep), prep.kernel_arrays, _STATE_ARRAYS(st),
            self._obs_scratch, self._mask_scratch,
        )
        return reward, terminated, False, {}

    def rollout_return(self, max_steps: int = 1_000_000) -> float:
        """:meth:`SchedEnv.rollout_return` in one kernel call (the default action to the episode's end)."""
        st = self.state
        if st is None:
            raise RuntimeError("call reset() before rollout_return()")
        if self._episode_over:
            return 0.0
        if max_steps < self.horizon_steps:
            return super().rollout_return(max_steps)
        prep = st.prep
        return float(dyn.default_rollout(self._mode, *_scalars(prep), prep.kernel_arrays, _STATE_ARRAYS(st),
                                         self._obs_scratch, self._mask_scratch))  # fmt: skip

    def _action_mask(self) -> np.ndarray:
        mask = np.zeros(self.K + 1, dtype=bool)
        mask[: self.state.n_candidates] = True
        mask[self.K] = True
        return mask

    def _default_action(self) -> int:
        return 0 if self.state.n_candidates > 0 else self.K

    def _observe(self) -> np.ndarray:
        st = self.state
        prep = st.prep
        obs = np.empty(self._obs_dim, dtype=np.float32)
        dyn.observe_one(self._mode, *_scalars(prep), prep.kernel_arrays, _STATE_ARRAYS(st), obs, self._mask_scratch)
        return obs

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


_STATE_ARRAYS = operator.attrgetter(*dyn.STATE_FIELDS)
_INT64_LIMIT = 2**63


def _scalars(prep: PreparedInstance) -> tuple[int, float, bool]:
    """``(capacity, total_benefit, has_graph)`` of an instance, as the kernels take them."""
    return prep.inst.capacity, prep.total_benefit, prep.indptr is not None
