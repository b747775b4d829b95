"""Native vector env of GPUAutoscaling-v1: the fleets of N episodes advance in one serving-core call.

``gym.make_vec("schedgym/GPUAutoscaling-v1", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
builds :class:`GPUAutoscalingVectorEnv`. Its results equal N single envs step for step
(``tests/test_vector_envs.py``; semantics in :mod:`schedgym.envs.core.sub_env_vector`).

How: the serving core keeps N fleets on the leading axis of one
:class:`~schedgym.sim.serving.state.FleetState` (request axis padded to the longest episode so far, as
``allocate_state`` pads). Each sub-env is an unwrapped :class:`GPUAutoscalingEnv` whose fleet arrays are
views of its row, so a step runs the same dynamics (``dynamics.py``) in two halves around a single
:func:`schedgym.sim.serving.kernels.advance` over all N rows: ``start_interval`` (scaling at the interval
start) for every sub-env, one kernel call to the interval's end (the fleets spread over numba's threads
unless ``parallel=False``), then ``finish_interval`` (SLO scoring, indicators, reward). Episode
construction (workload, SLOs, the warm fleet) stays per sub-env in ``reset``.

Speed: the kernel simulates every batching iteration of every replica, ~1.5 ms per step on azure-conv,
so the vector env gains over a ``SyncVectorEnv`` mostly from running the fleets on both cores (~1.5x
here: ``python benchmarks/env_throughput.py --only "GPUAutoscaling azure-conv vector" --sync``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from schedgym.envs.core.sub_env_vector import SubEnvVectorEnv
from schedgym.envs.core.validation import check_bool
from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv
from schedgym.sim.serving import kernels
from schedgym.sim.serving.state import EF_NOW, QI_NEXT, QI_REPLICA, QI_TARGET, FleetState

__all__ = ["GPUAutoscalingVectorEnv"]

#: FleetState fields with a request axis (axis 1), and the padding value of a slot past the episode's
#: requests (allocate_state's; the kernel never reads past ``EI_N_REQUESTS``).
_REQUEST_PAD: dict[str, float] = {
    "arrival_s": np.inf,
    "prompt_tokens": 1,
    "output_tokens": 1,
    "qi": 0,
    "qf": -1.0,
    "done_ids": -1,
}
_FIELDS = tuple(f.name for f in fields(FleetState))


class GPUAutoscalingVectorEnv(SubEnvVectorEnv):
    """``num_envs`` GPUAutoscaling-v1 episodes whose fleets advance in one serving-core call (module docstring).

    ``kwargs`` are those of :class:`GPUAutoscalingEnv` (every sub-env gets the same); ``max_episode_steps``
    (optional) truncates a sub-env after that many steps, with its metrics; ``parallel`` (default) advances
    the fleets on numba's threads.
    """

    env_class = GPUAutoscalingEnv

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, parallel: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(num_envs, max_episode_steps, **kwargs)
        #: Advance the fleets on numba's threads (``NUMBA_NUM_THREADS``); the results are the same either way.
        self.parallel = check_bool("parallel", parallel) and self.num_envs > 1
        self._batch: FleetState | None = None

    # ------------------------------------------------------------------ the batch's arrays
    def _grow(self, n_requests: int, like: FleetState) -> None:
        """(Re)allocate the batch with a request axis of at least ``n_requests``, keeping every row."""
        old = self._batch
        cap = max(n_requests, 0 if old is None else old.arrival_s.shape[1])
        if old is not None and cap == old.arrival_s.shape[1]:
            return
        arrays = {}
        for name in _FIELDS:
            a = getattr(like, name)
            shape = (self.num_envs, cap, *a.shape[2:]) if name in _REQUEST_PAD else (self.num_envs, *a.shape[1:])
            arrays[name] = np.zeros(shape, dtype=a.dtype)
            if old is not None:
                o = getattr(old, name)
                arrays[name][tuple(slice(0, s) for s in o.shape)] = o
                if name in _REQUEST_PAD:
                    self._pad(arrays[name], name, slice(None), o.shape[1])
        self._batch = FleetState(**arrays)
        for e, env in enumerate(self.envs):  # every sub-env's views now point at the new arrays
            if old is not None and env.state is not None:
                self._bind(e)

    @staticmethod
    def _pad(arr: np.ndarray, name: str, rows: Any, start: int) -> None:
        arr[rows, start:] = _REQUEST_PAD[name]
        if name == "qi":
            arr[rows, start:, QI_REPLICA] = -1
            arr[rows, start:, QI_NEXT] = -1
            arr[rows, start:, QI_TARGET] = 1  # the padded prompt

    def _bind(self, e: int) -> None:
        assert self._batch is not None
        view = FleetState(**{name: getattr(self._batch, name)[e : e + 1] for name in _FIELDS})
        env = self.envs[e]
        env.state.fleet = view
        env.fleet.state = view

    def _after_reset(self, e: int) -> None:
        """Move sub-env ``e``'s new fleet (its own one-row arrays) into row ``e`` of the batch."""
        st = self.envs[e].state.fleet
        n = st.arrival_s.shape[1]
        self._grow(n, st)
        assert self._batch is not None
        for name in _FIELDS:
            dst = getattr(self._batch, name)
            if name in _REQUEST_PAD:
                dst[e, :n] = getattr(st, name)[0]
                self._pad(dst, name, e, n)
            else:
                dst[e] = getattr(st, name)[0]
        self._bind(e)

    # ------------------------------------------------------------------ steps
    def _apply_stepped(self, stepped: np.ndarray, actions: list[int]) -> list[tuple[float, bool, bool, dict[str, Any]]]:
        assert self._batch is not None
        # Sub-envs reset in this step are not stepped: advancing them to their own clock changes nothing.
        until = self._batch.ef[:, EF_NOW].copy()
        for e, a in zip(stepped, actions):
            until[e] = self.envs[e]._start_interval(a)
        fleet = self.envs[0].fleet  # every sub-env has the same serving params and profile
        kernels.advance(self._batch, until, fleet.pi, fleet.pf, fleet.prof, parallel=self.parallel)
        return [self.envs[e]._finish_interval() for e in stepped]
