"""Native vector env of AgentScheduling-v1: N episodes stepped by one numba call over the same dynamics.

``gym.make_vec("schedgym/AgentScheduling-v1", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
builds :class:`AgentSchedulingVectorEnv`. Its results equal N single envs step for step (``tests/
test_vector_envs.py``): sub-env ``i`` behaves as ``gym.make(id, **kwargs)`` reset with ``seed + i`` and then
auto-reset without a seed, under Gymnasium's default next-step autoreset (the step after an episode ends
resets that sub-env, ignores its action and returns reward 0, not terminated, not truncated, with the
reset's info).

How: the state of the N episodes lives in padded arrays with a leading env axis (requests, agents and
tenants padded to the largest episode so far; ``n_req``/``n_agents``/``n_tenants`` say how much of each row
is real). One numba kernel, :func:`step_batch` (:func:`step_batch_parallel`, the default, spreads the
sub-envs over numba's threads: each writes its own rows only), runs for every sub-env the contract of
:class:`~schedgym.envs.core.base.SchedEnv` (invalid action -> default action + penalty) and the very
functions of ``dynamics.py`` the single env calls (``apply_action``, ``advance``, ``observe``) on views of
its rows. Resets (workload generation, once per episode) and metrics (once per finished episode) run in
Python through one unwrapped :class:`AgentSchedulingEnv` used as a template: no Gymnasium env object per
sub-env.

Infos follow Gymnasium's vector convention (every key paired with a ``_key`` bool array):
``action_mask`` (N, 2K + 1) int8, ``decision`` (object array of names), and after a step ``sim_time_s``,
``invalid_action``, ``action`` (the action executed) and, for sub-envs whose episode ended,
``metrics`` (a dict of (N,) float arrays with ``_metrics``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from schedgym.envs.agent_scheduling import dynamics as dyn
from schedgym.envs.agent_scheduling.env import OBS_CLIP, AgentSchedulingEnv
from schedgym.envs.agent_scheduling.types import (
    ADMIT,
    DECISION_NAMES,
    GF_CLOCK,
    GF_REWARD,
    GI_KIND,
    GI_N_AGENTS_ARRIVED,
    GI_N_AGENTS_DONE,
    GI_N_DONE,
    NO_DECISION,
    PREEMPT,
    AgentSchedState,
)
from schedgym.envs.agent_scheduling.workload import TYPE_NAMES
from schedgym.envs.core.validation import check_bool
from schedgym.envs.core.vector import AutoresetSeeds, add_step_info, integral_actions, vector_args
from schedgym.sim.borrow import borrow

__all__ = ["AgentSchedulingVectorEnv", "step_batch"]

_DECISIONS = np.array([DECISION_NAMES[k] for k in sorted(DECISION_NAMES)], dtype=object)
# Per-request, per-agent and per-tenant state fields (padded along that axis), then fixed-shape ones.
_REQ_FIELDS = ("wq", "qf")  # qi is stored column-major, see _ensure_capacity
_TEN_FIELDS = ("tenant_waiting", "tenant_service")
_WIN_FIELDS = ("win_service", "win_backlog_s")
_FIXED_FIELDS = ("ci", "cf", "running", "sched", "visible", "victims", "mask", "gi", "gf")


@numba.njit(cache=True)
def _step_env(e, actions, valid, penalty, p, pf, prof, n_types, obs_clip, n_req, n_agents, n_ten, wq, tool_s, qi, qf,
              ci, cf, running, sched, visible, victims, mask, gi, gf, agent_finish, tenant_waiting, tenant_service,
              win_service, win_backlog, obs, rewards, terminated, truncated, invalid, executed):  # fmt: skip
    """One step of sub-env ``e``: SchedEnv.step's contract (an action that is not integral, out of range or
    illegal is replaced by the default action and costs ``penalty``) over ``dynamics.apply_action`` /
    ``advance`` / ``observe`` on the sub-env's rows. Writes row ``e`` only (sub-envs may step in parallel)."""
    # Borrowed views (schedgym.sim.borrow): the per-env slices below and the dozens of arrays handed to
    # the dynamics would otherwise each cost atomic reference-count updates.
    p, pf, wq, tool_s, qi, qf = borrow(p), borrow(pf), borrow(wq), borrow(tool_s), borrow(qi), borrow(qf)
    ci, cf, running, sched, visible, victims = borrow(ci), borrow(cf), borrow(running), borrow(sched), borrow(visible), borrow(victims)
    mask, gi, gf, agent_finish = borrow(mask), borrow(gi), borrow(gf), borrow(agent_finish)
    tenant_waiting, tenant_service, win_service, win_backlog = borrow(tenant_waiting), borrow(tenant_service), borrow(win_service), borrow(win_backlog)
    obs, prof = borrow(obs), (borrow(prof[0]), borrow(prof[1]), borrow(prof[2]), borrow(prof[3]))
    k = p[dyn.P_K]
    n_act = mask.shape[1]
    n, na, nt = n_req[e], n_agents[e], n_ten[e]
    qe = qi[e, :, :n].T
    m = mask[e]
    kind = gi[e, GI_KIND]
    a = actions[e]
    ok = valid[e] and a >= 0 and a < n_act and m[a]
    if not ok:
        if kind == ADMIT:
            a = 0
            while not m[a]:
                a += 1
        elif kind == PREEMPT:
            a = k
        else:
            a = 2 * k
    if kind != NO_DECISION:
        dyn.apply_action(a, p, pf, wq[e, :n], qe, qf[e, :n], ci[e], running[e], visible[e], victims[e],
                         gi[e], gf[e], tenant_waiting[e, :nt])  # fmt: skip
    gf[e, GF_REWARD] = 0.0
    dyn.advance(p, pf, prof, wq[e, :n], tool_s[e, :n], qe, qf[e, :n], ci[e], cf[e], running[e], sched[e],
                visible[e], victims[e], m, gi[e], gf[e], agent_finish[e, :na], tenant_waiting[e, :nt],
                tenant_service[e, :nt], win_service[e, :, :nt], win_backlog[e, :, :nt])  # fmt: skip
    r = gf[e, GF_REWARD]
    if not ok:
        r -= penalty
    rewards[e] = r
    invalid[e] = not ok
    executed[e] = a
    done = gi[e, GI_KIND] == NO_DECISION
    terminated[e] = done and gi[e, GI_N_DONE] == n
    truncated[e] = done and gi[e, GI_N_DONE] != n
    n_active = gi[e, GI_N_AGENTS_ARRIVED] - gi[e, GI_N_AGENTS_DONE]
    dyn.observe(obs[e], p, pf, prof, wq[e, :n], qe, qf[e, :n], ci[e], cf[e], visible[e], victims[e], gi[e],
                gf[e], tenant_waiting[e, :nt], tenant_service[e, :nt], n_types, n_active, obs_clip)  # fmt: skip


@numba.njit(cache=True)
def step_batch(actions, valid, skip, penalty, p, pf, prof, n_types, obs_clip, n_req, n_agents, n_ten, wq, tool_s,
               qi, qf, ci, cf, running, sched, visible, victims, mask, gi, gf, agent_finish, tenant_waiting,
               tenant_service, win_service, win_backlog, obs, rewards, terminated, truncated, invalid, executed):  # fmt: skip
    """One step of every sub-env ``e`` with ``skip[e] == False`` (:func:`_step_env`), one after another."""
    for e in range(actions.shape[0]):
        if not skip[e]:
            _step_env(e, actions, valid, penalty, p, pf, prof, n_types, obs_clip, n_req, n_agents, n_ten, wq, tool_s,
                      qi, qf, ci, cf, running, sched, visible, victims, mask, gi, gf, agent_finish, tenant_waiting,
                      tenant_service, win_service, win_backlog, obs, rewards, terminated, truncated, invalid,
                      executed)  # fmt: skip


@numba.njit(cache=True, parallel=True)
def step_batch_parallel(actions, valid, skip, penalty, p, pf, prof, n_types, obs_clip, n_req, n_agents, n_ten, wq,
                        tool_s, qi, qf, ci, cf, running, scheduled, visible, victims, mask, gi, gf, agent_finish,
                        tenant_waiting, tenant_service, win_service, win_backlog, obs, rewards, terminated, truncated,
                        invalid, executed):  # fmt: skip
    """:func:`step_batch` with the sub-envs spread over numba's threads (``scheduled``: numba's parfor
    lowering names an argument of its own ``sched``). Each sub-env writes its own rows only, so the result
    is the same bit for bit."""
    for e in numba.prange(actions.shape[0]):
        if not skip[e]:
            _step_env(e, actions, valid, penalty, p, pf, prof, n_types, obs_clip, n_req, n_agents, n_ten, wq, tool_s,
                      qi, qf, ci, cf, running, scheduled, visible, victims, mask, gi, gf, agent_finish, tenant_waiting,
                      tenant_service, win_service, win_backlog, obs, rewards, terminated, truncated, invalid,
                      executed)  # fmt: skip


class AgentSchedulingVectorEnv(AutoresetSeeds, VectorEnv):
    """``num_envs`` AgentScheduling-v1 episodes stepped together (module docstring).

    ``kwargs`` are those of :class:`AgentSchedulingEnv` (every sub-env gets the same); ``max_episode_steps``
    (optional) truncates a sub-env after that many steps, with its metrics, as ``gym.make``'s ``TimeLimit``
    would; ``parallel`` (default) steps the sub-envs on numba's threads (``NUMBA_NUM_THREADS``), with the
    same results. Rendering is not supported: render a single env.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, parallel: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        self.num_envs, self.max_episode_steps = vector_args(type(self).__name__, num_envs, max_episode_steps, kwargs)
        #: Step the sub-envs on numba's threads (``NUMBA_NUM_THREADS``); the results are the same either way.
        self.parallel = check_bool("parallel", parallel) and self.num_envs > 1
        self.render_mode = None
        #: Builds episodes (reset) and computes metrics for the sub-envs; never stepped.
        self.template = AgentSchedulingEnv(**kwargs)
        t = self.template
        self.penalty = t.invalid_action_penalty
        self.n_actions = int(t.action_space.n)
        self.single_action_space = t.action_space
        self.single_observation_space = t.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        n = self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._workloads: list[Any] = [None] * n
        self._cap = (0, 0, 0)  # capacity of the (requests, agents, tenants) axes
        self._buf: dict[str, np.ndarray] = {}
        self.n_req = np.zeros(n, dtype=np.int64)
        self.n_agents = np.zeros(n, dtype=np.int64)
        self.n_ten = np.zeros(n, dtype=np.int64)
        self._obs = np.zeros((n, t.obs_size), dtype=np.float32)
        self._rewards = np.zeros(n)
        self._terminated = np.zeros(n, dtype=bool)
        self._truncated = np.zeros(n, dtype=bool)
        self._invalid = np.zeros(n, dtype=bool)
        self._executed = np.zeros(n, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._ready = False

    # ------------------------------------------------------------------ state storage
    def _ensure_capacity(self, st: AgentSchedState) -> None:
        need = (st.wq.shape[0], st.agent_finish_s.shape[0], st.tenant_waiting.shape[0])
        cap = self._cap
        if self._buf and all(x <= c for x, c in zip(need, cap)):
            return
        new = tuple(max(x, c) for x, c in zip(need, cap))
        n = self.num_envs
        shapes = {f: (n, new[0], *getattr(st, f).shape[1:]) for f in _REQ_FIELDS}
        # qi column-major per env (the kernel sees qi[e, :, :n].T): the scan of the queue for waiting
        # requests (fill_visible) reads one contiguous column instead of a cache line per request.
        shapes["qi"] = (n, st.qi.shape[1], new[0])
        shapes["tool_s"] = (n, new[0])
        shapes["agent_finish_s"] = (n, new[1])
        shapes.update({f: (n, new[2]) for f in _TEN_FIELDS})
        shapes.update({f: (n, st.win_service.shape[0], new[2]) for f in _WIN_FIELDS})
        shapes.update({f: (n, *getattr(st, f).shape) for f in _FIXED_FIELDS})
        dtypes = {f: getattr(st, f).dtype for f in shapes if f != "tool_s"}
        dtypes["tool_s"] = st.workload.req_tool_s.dtype
        old = self._buf
        buf = {f: np.zeros(shapes[f], dtype=dtypes[f]) for f in shapes}
        if old:
            for f, arr in old.items():
                buf[f][tuple(slice(0, s) for s in arr.shape)] = arr
        self._buf, self._cap = buf, new

    def _store(self, e: int, st: AgentSchedState) -> None:
        self._ensure_capacity(st)
        b = self._buf
        n, na, nt = st.wq.shape[0], st.agent_finish_s.shape[0], st.tenant_waiting.shape[0]
        for f in _REQ_FIELDS:
            b[f][e, :n] = getattr(st, f)
        b["qi"][e, :, :n] = st.qi.T
        b["tool_s"][e, :n] = st.workload.req_tool_s
        b["agent_finish_s"][e, :na] = st.agent_finish_s
        for f in _TEN_FIELDS:
            b[f][e, :nt] = getattr(st, f)
        for f in _WIN_FIELDS:
            b[f][e, :, :nt] = getattr(st, f)
        for f in _FIXED_FIELDS:
            b[f][e] = getattr(st, f)
        self.n_req[e], self.n_agents[e], self.n_ten[e] = n, na, nt
        self._workloads[e] = st.workload

    def sub_state(self, i: int) -> AgentSchedState:
        """Sub-env ``i``'s episode state as an :class:`AgentSchedState` of views into the batch arrays."""
        if not self._ready:
            raise RuntimeError("call reset() first")
        b = self._buf
        n, na, nt = int(self.n_req[i]), int(self.n_agents[i]), int(self.n_ten[i])
        fields = {f: b[f][i, :n] for f in _REQ_FIELDS}
        fields["qi"] = b["qi"][i, :, :n].T
        fields["agent_finish_s"] = b["agent_finish_s"][i, :na]
        fields.update({f: b[f][i, :nt] for f in _TEN_FIELDS})
        fields.update({f: b[f][i, :, :nt] for f in _WIN_FIELDS})
        fields.update({f: b[f][i] for f in _FIXED_FIELDS})
        return AgentSchedState(workload=self._workloads[i], **fields)

    def metrics(self, i: int) -> dict[str, float]:
        """Sub-env ``i``'s episode metrics (those of :meth:`AgentSchedulingEnv.metrics`)."""
        t = self.template
        t.state = self.sub_state(i)
        try:
            return t.metrics()
        finally:
            t.state = None

    # ------------------------------------------------------------------ resets
    def _reset_one(self, e: int, options: dict[str, Any] | None) -> None:
        t = self.template
        if self._rngs[e] is None:
            self._rngs[e], _ = seeding.np_random()
        t._np_random = self._rngs[e]
        try:
            t._reset(options)
            self._store(e, t.state)
            self._obs[e] = t._observe()
        finally:
            t.state = None
        self._elapsed[e] = 0
        self._autoreset[e] = False

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those of ``options["reset_mask"]``); ``seed`` int -> sub-env i gets
        ``seed + i``, a list gives one seed per sub-env."""
        seeds, which = self._reset_plan(seed, options, self._ready)
        for e in np.flatnonzero(which):
            if seeds[e] is not None:
                self._rngs[e], _ = seeding.np_random(seeds[e])
            self._reset_one(int(e), options)
        self._ready = True
        info = self._base_info(which)
        return self._obs.copy(), info

    # ------------------------------------------------------------------ steps
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        acts, valid = integral_actions(actions, n)  # only integral actions are valid (SchedEnv's contract)
        if valid is None:
            valid = np.ones(n, dtype=bool)
        resets = self._autoreset.copy()
        any_reset = bool(resets.any())
        if any_reset:
            self._seed_autoresetting(resets)
            for e in np.flatnonzero(resets):
                self._reset_one(int(e), None)
        t = self.template
        b = self._buf
        (step_batch_parallel if self.parallel else step_batch)(acts, valid, resets, self.penalty, t._p, t._pf, t._prof, len(TYPE_NAMES), OBS_CLIP, self.n_req,
                   self.n_agents, self.n_ten, b["wq"], b["tool_s"], b["qi"], b["qf"], b["ci"], b["cf"], b["running"],
                   b["sched"], b["visible"], b["victims"], b["mask"], b["gi"], b["gf"], b["agent_finish_s"],
                   b["tenant_waiting"], b["tenant_service"], b["win_service"], b["win_backlog_s"], self._obs,
                   self._rewards, self._terminated, self._truncated, self._invalid, self._executed)  # fmt: skip
        stepped = ~resets
        if any_reset:
            self._rewards[resets] = 0.0
            self._terminated[resets] = False
            self._truncated[resets] = False
            self._invalid[resets] = False
            self._executed[resets] = 0
        self._elapsed += stepped
        if self.max_episode_steps is not None:
            self._truncated |= stepped & (self._elapsed >= self.max_episode_steps)
        done = self._terminated | self._truncated
        self._autoreset = done
        info = self._base_info(None)
        clock = b["gf"][:, GF_CLOCK].copy()
        if any_reset:
            clock[resets] = 0.0
        info["sim_time_s"] = clock
        info["_sim_time_s"] = stepped
        add_step_info(info, stepped, self._invalid, self._executed, done, self.metrics)
        return self._obs.copy(), self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def _base_info(self, present: np.ndarray | None) -> dict[str, Any]:
        """``decision`` and ``action_mask`` of the sub-envs in ``present`` (None: all)."""
        b = self._buf
        decision = _DECISIONS[b["gi"][:, GI_KIND]]
        mask = b["mask"].astype(np.int8)
        if present is None:
            present = np.ones(self.num_envs, dtype=bool)
        elif not present.all():
            decision = np.where(present, decision, None)
            mask[~present] = 0
        return {"decision": decision, "_decision": present.copy(), "action_mask": mask, "_action_mask": present.copy()}

    def action_masks(self) -> np.ndarray:
        """Legal actions of every sub-env, bool (N, 2K + 1) (sb3-contrib's vectorised convention)."""
        if not self._ready:
            raise RuntimeError("call reset() first")
        return self._buf["mask"].copy()

    def close_extras(self, **kwargs: Any) -> None:
        self._buf = {}
        self._ready = False

