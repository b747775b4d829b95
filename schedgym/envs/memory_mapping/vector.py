"""Native vector env of MemoryMapping-v0: N episodes stepped by one numba call over the same dynamics.

``gym.make_vec("schedgym/MemoryMapping-v0", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
builds :class:`MemoryMappingVectorEnv`. Its results equal N single envs step for step (``tests/
test_vector_envs.py``): sub-env ``i`` behaves as ``gym.make(id, **kwargs)`` reset with ``seed + i`` and then
auto-reset without a seed, under Gymnasium's default next-step autoreset (the step after an episode ends
resets that sub-env, ignores its action and returns reward 0, not terminated, not truncated, with the
reset's info).

How: the episode state of the N sub-envs lives in arrays with a leading env axis, and the instances in
arrays with a leading instance axis (one row shared by every sub-env for a fixed instance; a row per
sub-env for ``instance="random"``, the conflict graph padded to the largest so far). One numba kernel,
:func:`~schedgym.envs.memory_mapping.dynamics.step_batch` (``step_batch_parallel``, the default, spreads
the sub-envs over numba's threads; ``parallel=False`` keeps one), runs the single env's
:func:`~schedgym.envs.memory_mapping.dynamics.step_one` on row ``e`` of every sub-env; resets run
:func:`~schedgym.envs.memory_mapping.dynamics.begin_one` the same way. Only drawing a random instance
(once per episode) and the metrics of a finished episode run in Python.

Infos follow Gymnasium's vector convention (every key paired with a ``_key`` bool array): ``action_mask``
(N, K + 1) int8 and ``benefit_source`` (object array) always; after a step ``invalid_action`` and
``action`` (the action executed) for the sub-envs that stepped, and ``metrics`` (a dict of (N,) arrays
with ``_metrics``) for those whose episode ended.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from schedgym.envs.core.validation import check_bool
from schedgym.envs.core.vector import AutoresetSeeds, add_step_info, integral_actions, vector_args
from schedgym.envs.memory_mapping import dynamics as dyn
from schedgym.envs.memory_mapping.env import MemoryMappingEnv
from schedgym.envs.memory_mapping.geometry import PreparedInstance, prepare
from schedgym.envs.memory_mapping.instances import resolve_instance
from schedgym.envs.memory_mapping.types import MappingState

__all__ = ["MemoryMappingVectorEnv"]


class MemoryMappingVectorEnv(AutoresetSeeds, VectorEnv):
    """``num_envs`` MemoryMapping-v0 episodes stepped together (module docstring).

    ``kwargs`` are those of :class:`MemoryMappingEnv` (every sub-env gets the same); ``max_episode_steps``
    (optional) truncates a sub-env after that many steps, with its metrics, as ``gym.make``'s ``TimeLimit``
    would. Rendering is not supported: render a single env.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, parallel: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        n, self.max_episode_steps = vector_args(type(self).__name__, num_envs, max_episode_steps, kwargs)
        self.num_envs = n
        #: Step the sub-envs on numba's threads (``NUMBA_NUM_THREADS``); the results are the same either way.
        self.parallel = check_bool("parallel", parallel) and n > 1
        self.render_mode = None
        #: Validates the kwargs, holds the fixed instance and draws the random ones; never stepped.
        self.template = t = MemoryMappingEnv(**kwargs)
        self.K = t.K
        self.penalty = t.invalid_action_penalty
        self.single_action_space = t.action_space
        self.single_observation_space = t.observation_space
        self.action_space = batch_space(self.single_action_space, n)
        self.observation_space = batch_space(self.single_observation_space, n)
        fixed = t._fixed
        self._n_inst = 1 if fixed is not None else n
        self._n_buf = fixed.inst.n if fixed is not None else int(t._generator_kwargs["n_buffers"])
        self._preps: list[PreparedInstance | None] = [None] * self._n_inst
        self._inst_of = np.zeros(n, dtype=np.int64) if fixed is not None else np.arange(n, dtype=np.int64)
        m, nb = self._n_inst, self._n_buf
        self._cap = np.zeros(m, dtype=np.int64)
        self._total_benefit = np.zeros(m)
        self._has_graph = np.zeros(m, dtype=bool)
        self._n_bufs = np.full(m, nb, dtype=np.int64)
        self._n_edges = np.zeros(m, dtype=np.int64)
        self._inst: tuple[np.ndarray, ...] = ()
        self._benefit_source = np.full(m, None, dtype=object)
        i64 = np.int64
        self._state = (
            np.zeros((n, nb), dtype=bool), np.zeros((n, nb), dtype=bool), np.zeros((n, nb), dtype=i64),
            np.zeros((n, nb), dtype=i64), np.zeros((n, nb), dtype=i64), np.zeros((n, nb), dtype=i64),
            np.zeros((n, 64), dtype=np.float64), np.zeros((n, t.K), dtype=i64), np.zeros((n, t.K), dtype=i64),
            np.zeros((n, t.K), dtype=i64), np.zeros((n, t.K), dtype=i64), np.zeros((n, dyn.N_COUNTERS), dtype=i64),
            np.zeros((n, dyn.N_TOTALS), dtype=np.float64),
        )  # fmt: skip
        self._mode = t._mode
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._obs = np.zeros((n, t._obs_dim), dtype=np.float32)
        self._mask = np.zeros((n, t.K + 1), dtype=np.int8)
        self._rewards = np.zeros(n)
        self._terminated = np.zeros(n, dtype=bool)
        self._truncated = np.zeros(n, dtype=bool)
        self._invalid = np.zeros(n, dtype=bool)
        self._executed = np.zeros(n, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._all_true = np.ones(n, dtype=bool)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._ready = False
        if fixed is not None:
            self._store_instance(0, fixed)

    # ------------------------------------------------------------------ instances
    def _store_instance(self, row: int, prep: PreparedInstance) -> None:
        arrays = prep.kernel_arrays
        n_edges = arrays[11].shape[0]
        if not self._inst or n_edges > self._inst[11].shape[1]:
            self._grow(max(n_edges, 2 * self._inst[11].shape[1] if self._inst else n_edges))
        for dst, src in zip(self._inst, arrays):
            if dst.ndim == 2 and src.ndim == 1 and dst.shape[1] != src.shape[0]:  # indices: padded
                dst[row, : src.shape[0]] = src
            else:
                dst[row] = src
        self._n_edges[row] = n_edges
        self._cap[row] = prep.inst.capacity
        self._total_benefit[row] = prep.total_benefit
        self._has_graph[row] = prep.indptr is not None
        self._benefit_source[row] = prep.inst.benefit_source
        self._preps[row] = prep

    def _grow(self, n_edges: int) -> None:
        """(Re)allocate the instance arrays with room for ``n_edges`` conflict-graph entries per row."""
        m, nb = self._n_inst, self._n_buf
        template = self.template._fixed.kernel_arrays if self.template._fixed is not None else None
        shapes = [(m, nb)] * 9 + [(m, nb, 5), (m, nb + 1), (m, n_edges), (m, 64)]
        dtypes = [np.int64] * 4 + [np.float64] + [np.int64] * 4 + [np.float64, np.int64, np.int32, np.float64]
        if template is not None:
            dtypes = [a.dtype for a in template]
        new = tuple(np.zeros(s, dtype=d) for s, d in zip(shapes, dtypes))
        if self._inst:
            for dst, src in zip(new, self._inst):
                dst[tuple(slice(0, k) for k in src.shape)] = src
        self._inst = new

    # ------------------------------------------------------------------ sub-env views
    def sub_state(self, i: int) -> MappingState:
        """Sub-env ``i``'s episode state as a :class:`MappingState` of views into the batch arrays."""
        if not self._ready:
            raise RuntimeError("call reset() first")
        return MappingState(self._preps[self._inst_of[i]], *(a[i] for a in self._state))

    def metrics(self, i: int) -> dict[str, float]:
        """Sub-env ``i``'s episode metrics (those of :meth:`MemoryMappingEnv.metrics`)."""
        t = self.template
        t.state = self.sub_state(i)
        try:
            return t.metrics()
        finally:
            t.state = None

    # ------------------------------------------------------------------ resets
    def _begin(self, which: np.ndarray) -> None:
        """Start new episodes in the sub-envs of ``which`` (a new random instance each, if random)."""
        t = self.template
        if t._fixed is None:
            for e in np.flatnonzero(which):
                if self._rngs[e] is None:
                    self._rngs[e], _ = seeding.np_random()
                inst = resolve_instance("random", t._capacity, self._rngs[e], t._generator_kwargs, t.planted)
                self._store_instance(int(e), prepare(inst, t.order))
        for row in set(self._inst_of[which].tolist()):
            inst = self._preps[row].inst
            if t.action_mode == "order" and not np.any(inst.size <= inst.capacity):
                raise ValueError(
                    f"no buffer of {inst.name} fits in capacity {inst.capacity} bytes: nothing to decide in order mode"
                )
        dyn.begin_batch(which, self._mode, self._inst_of, self._cap, self._total_benefit, self._has_graph,
                        self._n_bufs, self._n_edges, self._inst, self._state, self._obs, self._mask)  # fmt: skip
        self._elapsed[which] = 0
        self._autoreset = self._autoreset & ~which

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those of ``options["reset_mask"]``); ``seed`` int -> sub-env i gets
        ``seed + i``, a list gives one seed per sub-env."""
        seeds, which = self._reset_plan(seed, options, self._ready)
        # Arrays returned before are the caller's: the sub-envs not reset keep their rows in new copies.
        self._obs, self._mask = self._obs.copy(), self._mask.copy()
        for e in np.flatnonzero(which):
            if seeds[e] is not None:
                self._rngs[e], _ = seeding.np_random(seeds[e])
        self._begin(which)
        self._ready = True
        return self._obs, self._base_info(which)

    # ------------------------------------------------------------------ steps
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        acts, valid = integral_actions(actions, n)
        if valid is None:
            valid = self._all_true
        resets = self._autoreset  # replaced below, never written in place
        any_reset = bool(resets.any())
        # Every row is written (reset or stepped): fresh arrays, returned without a copy.
        self._obs, self._mask = np.empty_like(self._obs), np.empty_like(self._mask)
        if any_reset:
            self._seed_autoresetting(resets)
            self._begin(resets)
        step = dyn.step_batch_parallel if self.parallel else dyn.step_batch
        step(acts, valid, resets, self.penalty, self._mode, self._inst_of, self._cap, self._total_benefit,
             self._has_graph, self._n_bufs, self._n_edges, self._inst, self._state, self._obs, self._mask,
             self._rewards, self._terminated, self._executed, self._invalid)  # fmt: skip
        stepped = ~resets
        if any_reset:
            self._rewards[resets] = 0.0
            self._terminated[resets] = False
            self._invalid[resets] = False
            self._executed[resets] = 0
        self._elapsed += stepped
        if self.max_episode_steps is not None:  # as TimeLimit: also on a step that terminates
            self._truncated = stepped & (self._elapsed >= self.max_episode_steps)
        done = self._terminated | self._truncated
        self._autoreset = done
        info = add_step_info(self._base_info(None), stepped, self._invalid, self._executed, done, self.metrics)
        return self._obs, self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def _base_info(self, present: np.ndarray | None) -> dict[str, Any]:
        """``benefit_source`` and ``action_mask`` of the sub-envs in ``present`` (None: all)."""
        source = self._benefit_source[self._inst_of]
        mask = self._mask
        if present is None:
            present = self._all_true
        elif not present.all():
            source = np.where(present, source, None)
            mask = mask.copy()
            mask[~present] = 0
        return {"benefit_source": source, "_benefit_source": present.copy(), "action_mask": mask,
                "_action_mask": present.copy()}  # fmt: skip

    def action_masks(self) -> np.ndarray:
        """Legal actions of every sub-env, bool (N, K + 1) (sb3-contrib's vectorised convention)."""
        if not self._ready:
            raise RuntimeError("call reset() first")
        return self._mask.astype(bool)

    def close_extras(self, **kwargs: Any) -> None:
        self._ready = False
