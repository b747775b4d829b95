"""AgentScheduling-v1: schedule the LLM requests of many concurrent LLM agents onto LLM cores whose KV cache
binds, on the models of the shared LLM-serving core (``schedgym.sim.serving``).

Grounded in AIOS (Mei et al., "AIOS: LLM Agent Operating System", 2024: FIFO and round-robin LLM
schedulers with 1 s slices and context snapshots), FastSwitch (Shen et al., 2024: the cost of context
switches, KV swap vs recompute) and VTC (Sheng et al., "Fairness in Serving Large Language Models",
OSDI 2024). Dynamics in ``dynamics.py`` (numba), the lower bound in ``bounds.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.agent_scheduling import dynamics as dyn
from schedgym.envs.agent_scheduling.bounds import agent_lower_bounds_s, bound_constants
from schedgym.envs.agent_scheduling.types import (
    ADMIT,
    CF_BUSY_S,
    CF_KV_BLOCK_S,
    CI_FREE,
    DECISION_NAMES,
    DONE,
    GF_NEXT_SUBMIT,
    GF_REWARD,
    GF_SWAP_S,
    GI_N_AGENTS_ARRIVED,
    GI_N_AGENTS_DONE,
    GI_N_DECISIONS,
    GI_N_KV_CONSTRAINED,
    GI_N_KV_PREEMPT,
    GI_N_RECOMPUTES,
    GI_N_SLICE_PREEMPT,
    GI_N_SWAPS,
    GI_RECOMPUTE_TOKENS,
    N_CF,
    N_CI,
    N_GF,
    N_GI,
    N_QF,
    N_QI,
    NO_DECISION,
    PENDING,
    PREEMPT,
    QF_ENQ,
    QF_FIRST,
    QF_READY,
    QF_RUN_START,
    QF_WAITED,
    QI_BLOCKS,
    QI_CORE,
    QI_GENERATED,
    QI_STATE,
    QI_TARGET,
    SLICE_END,
    WAITING,
    AgentSchedState,
)
from schedgym.envs.agent_scheduling.workload import TYPE_NAMES, _mix_probabilities, generate_workload
from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.traces import TraceWindow, check_workload, load_workload_trace, scale_rate
from schedgym.envs.core.validation import check_float, check_int
from schedgym.sim.serving import ServingParams, build_profile

__all__ = ["AgentSchedulingEnv", "OBS_CLIP", "REWARD_SCALE_S"]

#: Observations are clipped to [-OBS_CLIP, OBS_CLIP] after scaling (docstring table).
OBS_CLIP = 10.0
#: Reward unit: one agent in the system for 100 s costs -1.
REWARD_SCALE_S = 100.0
_REQ_F = 10 + len(TYPE_NAMES)
_VICTIM_F = 7


class AgentSchedulingEnv(SchedEnv):
    """Schedule LLM agents' requests onto ``n_cores`` continuously batched LLM cores whose KV cache binds.

    ## Description

    LLM agents (ReAct, Reflexion, plan-and-execute, coding agents) arrive over time and alternate LLM
    requests with tool calls. An agent's context grows: the prompt of each call is its system prompt plus
    the history and tool outputs so far (``workload.py``). A scheduler in front of the LLM cores (as in
    AIOS) decides which waiting request a core admits next and, when a core's KV cache is full, which
    context to keep, which to swap to host memory and which to drop and recompute later (AIOS's context
    snapshot / FastSwitch's trade-off).

    Each core is a replica of the shared serving core's model (``schedgym.sim.serving``): llama2-70b on
    ``tensor_parallel`` A100-80GB GPUs, iteration-level batching with chunked prefill, a paged KV cache of
    ``(TP x 80 GB x 0.9 - 138 GB) / 327,680 B`` per token (18,310 tokens on TP2), iteration latencies
    from the SplitwiseSim profile (decode time grows with batch size and with the context in the batch),
    swap copies at ``swap_bandwidth_gbs`` (PCIe 4.0 x16). ``dynamics.py`` states the rules.

    ## Action Space

    ``Discrete(2K + 1)``, ``K = n_visible``. What an action means depends on the decision kind:

    | decision | ``k < K`` | ``K <= k < 2K`` | ``2K`` |
    |---|---|---|---|
    | admission (a core can admit) | admit the k-th offered waiting request | illegal | admit none now (only if the core runs something) |
    | KV preemption (a running sequence needs a block, none is free) | swap the k-th victim's KV to host memory | drop the (k-K)-th victim's KV, recompute it later | illegal |
    | slice end (``time_slice_s``; requests wait) | 0: swap the expiring sequence out | K: drop it, recompute later | keep it (a new slice starts) |

    Offered waiting requests (``K`` at most): the oldest waiting request of every backlogged tenant (queue
    order = time it entered the queue, then id), then the oldest remaining ones. Victims: the core's
    running sequences, newest first (the expiring one at a slice end).

    ## Action Mask

    ``info["action_mask"]`` / ``action_masks()``: at an admission, ``k`` is legal iff the k-th offered
    request fits the core's free KV blocks (and, for a prefill, token budget is left) and ``2K`` iff the
    core runs something; at a KV preemption, ``k`` and ``K + k`` for every victim; at a slice end, ``0``,
    ``K`` and ``2K``. Once the episode is over only ``2K`` is legal. An invalid action is replaced by the
    default one (the first legal offered request; recompute the newest victim, vLLM's choice; keep at a
    slice end) and costs ``invalid_action_penalty``.

    ## Observation Space

    A flat ``Box(-10, 10, float32)`` of size ``K * (10 + 4) + 7 K + 3 + 4 C + 4`` (``C = n_cores``); every
    feature is scaled by the constant shown and clipped to [-10, 10]:

    | slice | meaning (scale) |
    |---|---|
    | ``[0, 14K)`` | per offered waiting request: present, waiting time (/10 s), context to prefill (/1000 tokens), tokens generated (/1000), agent step (/10), times preempted, swapped (KV on host), blocks needed / free blocks of the deciding core, its tenant's VTC service (/1e5 tokens), its tenant's waiting requests (/10), agent-type one-hot (react, reflexion, plan_execute, coder) |
    | next ``7K`` | per victim: present, KV tokens (/1000), generated (/1000), time since its run started (/10 s), swap cost out + in (s), recompute cost (s, profile prefill of prompt + generated), agent step (/10) |
    | next 3 | decision kind one-hot: admission, KV preemption, slice end |
    | next ``4C`` | per core: is the deciding core, running / max_num_seqs, KV used fraction, time to its iteration's end (s) |
    | last 4 | waiting beyond K (/10), clock / max_sim_s, agents in the system (/10), waiting requests (/10) |

    No true output length, remaining step count or tool duration appears in the observation.

    ## Rewards

    ``-(agents arrived and not finished) x elapsed_s / 100`` over the simulated time a step covers, so the
    episode return is minus the total agent turnaround / 100 s (Little's law): maximising it minimises
    mean turnaround.

    ## Starting State

    ``reset(seed)`` draws the agents (arrivals, types, steps, request lengths, tools; ``workload.py``) and
    runs to the first decision.

    ## Episode End

    Terminated when every agent has finished. Truncated when the clock reaches ``max_sim_s``; unfinished
    requests and agents are then counted in the metrics (turnaround and wait are over finished ones).
    ``spec.max_episode_steps`` is None: a step is a scheduling decision, and how many an episode takes
    depends on the policy (slices kept or preempted, requests swapped) and on the draw, so there is no
    horizon in steps, only ``max_sim_s`` in simulated time. ``gym.make(id, max_episode_steps=N)`` and the
    vector env's ``max_episode_steps`` still cut at N steps (read ``env.unwrapped.metrics()`` after a
    ``TimeLimit``; the vector env adds ``info["metrics"]`` itself).

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | workload | str | ``"poisson"`` | ``"poisson"`` (agents at ``agent_rate``), ``"tenants"`` (four tenants, one heavy; fairness), ``"azure-code"`` / ``"azure-conv"`` (Azure 2023 arrival times, thinned by ``rate_scale``, each row one agent whose first request has the row's lengths) or ``"trace:<path>"`` |
    | agent_rate | float | 0.2 | agents per second (``poisson``, ``tenants``) |
    | rate_scale | float | 0.08 | thinning of a trace's arrivals (0.08 x azure-code's 2.57 req/s = 0.21 agents/s, in bursts) |
    | trace_columns, trace_time_unit | dict, str | Azure names, ``"datetime"`` | columns / time unit of ``trace:`` files |
    | trace_window_hours | float or None | None | trace workloads: agents arrive as in a window this long whose offset each ``reset`` seed draws (uniform over the trace), so N episodes replay N windows. None: from the trace's start (the leaderboard's episode) |
    | trace_offset_hours | float or None | None | trace workloads: fix the window's start (alone: from there to the end); ``trace_offset_s`` holds the episode's |
    | n_agents | int | 100 | agents per episode (at most a trace's rows) |
    | agent_mix | dict or None | uniform | weights over agent types (not with ``tenants``) |
    | n_cores | int | 2 | LLM cores (replicas) |
    | tensor_parallel | int | 2 | GPUs per core: 2 leaves 18,310 KV tokens per core (binds), 4 leaves 457,763 (never binds) |
    | model, hardware | str | llama2-70b, a100-80gb | SplitwiseSim profile rows |
    | max_num_seqs | int | 16 | running sequences per core |
    | max_num_batched_tokens | int | 2048 | token budget per iteration (chunked prefill) |
    | swap_bandwidth_gbs | float | 25 | host <-> GPU copy bandwidth for swaps (PCIe 4.0 x16 in practice) |
    | time_slice_s | float | 1.0 | AIOS round-robin slice; 0 = no slice-end decisions |
    | n_visible | int | 8 | K |
    | max_context_tokens, max_output_tokens | int | 8192, 2048 | context cap (history truncated) and output cap; must fit one core's KV |
    | fairness_window_s | float | 20 | window of the fairness metrics |
    | max_sim_s | float | 7200 | simulated-time limit |

    **Defaults chosen so that scheduling matters** (``benchmarks/table_agent_scheduling.py``; test
    ``test_defaults_make_waiting_and_kv_matter``): TP2 leaves a KV pool of 18,310 tokens per core, room for
    two to six agent contexts of 2k-8k tokens, so the cache binds (TP4 would leave 457,763 and it never
    would); 2 cores and 0.2 agents/s load them so that under FIFO agents spend 54-60 % of their turnaround
    waiting (>= 40 % required) and 85-89 % of decisions are KV-constrained (>= 10 %) on seeds 0-2 (62-76 % and
    79-86 % on azure-code). At 0.1 agents/s waiting is only 3-6 % of turnaround: continuous batching absorbs
    the load until KV binds.

    ``gym.make("schedgym/AgentScheduling-v1", n_agents=20, workload="tenants")``

    ## Info / Metrics

    ``info["action_mask"]`` and ``info["decision"]`` (``admit``, ``kv_preempt``, ``slice_end``, ``none``)
    every step. ``info["metrics"]`` at the end:

    - ``turnaround_mean/p90/p99`` (per finished agent, s); ``turnaround_lower_bound`` (mean of the proven
      per-agent bound of ``bounds.py`` over all agents of the episode; every policy's ``turnaround_mean``
      is >= it when every agent finishes);
    - ``wait_mean/p90/p99`` (per finished request, total time queued, s); ``wait_share`` (queued time of the
      finished agents' requests / their total turnaround); ``ttft_p50/p99``;
    - ``kv_constrained_frac`` (decisions at which KV bound: a KV preemption, or an offered request that
      did not fit the free KV), ``decisions``;
    - ``preemptions`` (KV + slice), ``kv_preemptions``, ``slice_preemptions``, ``swaps``, ``recomputes``,
      ``swap_s`` (copy time), ``recompute_tokens`` (prefill work thrown away);
    - fairness over tenants, in windows of ``fairness_window_s``: ``service_diff_max`` (largest difference
      of VTC service, input + 2 x output tokens, received within one window by two tenants backlogged
      throughout it: VTC's own measure), ``jain_index`` (Jain's index of those tenants' window service,
      averaged over windows; 1.0 when no window has two), ``tenant{i}_service`` (total service per tenant);
    - ``throughput_agents_per_min``, ``core_busy_frac``, ``kv_used_frac`` (time-average of used blocks),
      ``sim_time_s``, ``requests_arrived/completed/unfinished``, ``agents_arrived/completed/unfinished``;
    - ``agents_finished_frac`` (of all the episode's agents) and ``all_agents_finished`` (1.0 or 0.0): the
      leaderboard's rule, since a truncated episode averages turnaround over the agents that finished only.

    ## Version History

    * v1: rebuilt on the serving core's models: KV that binds (TP2), contexts that grow, scheduler-chosen
      admission and swap/recompute preemption, decode slowing with batch and context, proven
      ``turnaround_lower_bound``, tenants and fairness metrics.
    * v0: 8 independent slots with a KV reservation that never bound (removed).
    """

    #: Frames a second ``render()`` keeps up with: 0.56 s per rgb_array frame measured by
    #: ``benchmarks/render_time.py`` (the figure is rebuilt every call).
    metadata = {**SchedEnv.metadata, "render_fps": 1}

    def __init__(
        self,
        workload: str = "poisson",
        agent_rate: float = 0.2,
        rate_scale: float = 0.08,
        trace_columns: dict[str, str] | None = None,
        trace_time_unit: str = "datetime",
        trace_window_hours: float | None = None,
        trace_offset_hours: float | None = None,
        n_agents: int = 100,
        agent_mix: dict[str, float] | None = None,
        n_cores: int = 2,
        tensor_parallel: int = 2,
        model: str = "llama2-70b",
        hardware: str = "a100-80gb",
        max_num_seqs: int = 16,
        max_num_batched_tokens: int = 2048,
        swap_bandwidth_gbs: float = 25.0,
        time_slice_s: float = 1.0,
        n_visible: int = 8,
        max_context_tokens: int = 8192,
        max_output_tokens: int = 2048,
        fairness_window_s: float = 20.0,
        max_sim_s: float = 7200.0,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        check_workload(workload, generated=("poisson", "tenants"))
        self.workload_name = workload
        self.agent_rate = check_float("agent_rate", agent_rate, low=0.0, low_inclusive=False)
        self.rate_scale = check_float("rate_scale", rate_scale, low=0.0, low_inclusive=False)
        self.n_agents = check_int("n_agents", n_agents, low=1, high=1_000_000)
        self.agent_mix = agent_mix
        _mix_probabilities(agent_mix)  # validates
        if workload == "tenants" and agent_mix is not None:
            raise ValueError("agent_mix cannot be combined with workload='tenants' (each tenant has its agent type)")
        self.n_cores = check_int("n_cores", n_cores, low=1, high=256)
        self.params = ServingParams.make(
            model=model,
            hardware=hardware,
            tensor_parallel=check_int("tensor_parallel", tensor_parallel, low=1),
            max_num_seqs=check_int("max_num_seqs", max_num_seqs, low=1, high=256),
            max_num_batched_tokens=max_num_batched_tokens,
            swap_bandwidth_gbs=swap_bandwidth_gbs,
        )
        self.max_num_seqs = self.params.max_num_seqs
        self.time_slice_s = check_float("time_slice_s", time_slice_s, low=0.0, high=1e6)
        self.n_visible = check_int("n_visible", n_visible, low=1, high=1024)
        self.max_context_tokens = check_int("max_context_tokens", max_context_tokens, low=2, high=1 << 24)
        if self.max_context_tokens > self.params.max_request_tokens():
            raise ValueError(
                f"max_context_tokens={self.max_context_tokens} exceeds one core's KV pool "
                f"({self.params.max_request_tokens()} tokens at tensor_parallel={self.params.tensor_parallel}): "
                "a request that long could never run"
            )
        self.max_output_tokens = check_int("max_output_tokens", max_output_tokens, low=1, high=self.max_context_tokens - 1)
        self.fairness_window_s = check_float("fairness_window_s", fairness_window_s, low=0.0, low_inclusive=False)
        self.max_sim_s = check_float("max_sim_s", max_sim_s, low=0.0, low_inclusive=False, high=1e7)
        self.profile = build_profile(self.params)
        self.bound_consts = bound_constants(self.params, self.profile)
        self._trace = None
        self.trace_window: TraceWindow | None = None
        #: Where the current episode's window starts in the trace, seconds (0 for generated / the whole trace).
        self.trace_offset_s = 0.0
        if workload not in ("poisson", "tenants"):
            self._trace = load_workload_trace(workload, trace_columns, trace_time_unit)
            self.trace_window = TraceWindow.make(self._trace, trace_window_hours, trace_offset_hours)
        elif trace_window_hours is not None or trace_offset_hours is not None:
            raise ValueError(f"trace_window_hours and trace_offset_hours apply to trace workloads only, not {workload!r}")
        self._record = render_mode is not None
        k = self.n_visible
        self._p = np.array([self.params.block_tokens, self.params.kv_blocks, self.max_num_seqs,
                            self.params.max_num_batched_tokens, k], dtype=np.int64)  # fmt: skip
        self._pf = np.array([self.params.swap_s_per_block, self.time_slice_s, self.max_sim_s, REWARD_SCALE_S,
                             self.fairness_window_s])  # fmt: skip
        self._prof = self.profile.arrays
        self.action_space = gym.spaces.Discrete(2 * k + 1)
        self.obs_size = k * _REQ_F + k * _VICTIM_F + 3 + 4 * self.n_cores + 4
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(self.obs_size,), dtype=np.float32)

    # ------------------------------------------------------------------ episode setup
    def _reset(self, options: dict[str, Any] | None) -> None:
        rng = self.np_random
        trace = None
        if self._trace is not None:  # draw_offset uses the rng only to draw a window (whole trace: stream kept)
            self.trace_offset_s = self.trace_window.draw_offset(rng)
            trace = scale_rate(self.trace_window.cut(self._trace, self.trace_offset_s), self.rate_scale, rng)
        wl = generate_workload(
            rng,
            self.n_agents,
            self.agent_rate,
            arrival_trace=trace,
            agent_mix=self.agent_mix,
            max_context_tokens=self.max_context_tokens,
            max_output_tokens=self.max_output_tokens,
            tenants=self.workload_name == "tenants",
        )
        n, a, c, k = wl.n_requests, wl.n_agents, self.n_cores, self.n_visible
        wq = np.zeros((n, dyn.N_W), dtype=np.int64)
        wq[:, dyn.W_AGENT] = wl.req_agent
        wq[:, dyn.W_STEP] = wl.req_step
        wq[:, dyn.W_PROMPT] = wl.req_prompt_tokens
        wq[:, dyn.W_OUTPUT] = wl.req_output_tokens
        wq[:, dyn.W_TENANT] = wl.agent_tenant[wl.req_agent]
        wq[:, dyn.W_LAST] = wl.req_tool < 0
        wq[:, dyn.W_TYPE] = wl.agent_type[wl.req_agent]
        qi = np.zeros((n, N_QI), dtype=np.int64)
        qi[:, QI_CORE] = -1
        qi[:, QI_TARGET] = wl.req_prompt_tokens
        qf = np.full((n, N_QF), -1.0)
        qf[:, QF_READY] = np.inf
        qf[wl.agent_first_req, QF_READY] = wl.agent_arrival_s
        qf[:, QF_WAITED] = 0.0
        ci = np.zeros((c, N_CI), dtype=np.int64)
        ci[:, CI_FREE] = self.params.kv_blocks
        gf = np.zeros(N_GF)
        gf[GF_NEXT_SUBMIT] = float(wl.agent_arrival_s.min()) if a else np.inf
        n_win = int(np.ceil(self.max_sim_s / self.fairness_window_s)) + 1
        self.state = AgentSchedState(
            workload=wl,
            wq=wq,
            qi=qi,
            qf=qf,
            ci=ci,
            cf=np.zeros((c, N_CF)),
            running=np.full((c, self.max_num_seqs), -1, dtype=np.int64),
            sched=np.zeros((c, self.max_num_seqs), dtype=np.int64),
            visible=np.full(k, -1, dtype=np.int64),
            victims=np.full(k, -1, dtype=np.int64),
            mask=np.zeros(2 * k + 1, dtype=bool),
            gi=np.zeros(N_GI, dtype=np.int64),
            gf=gf,
            agent_finish_s=np.full(a, -1.0),
            tenant_waiting=np.zeros(wl.n_tenants, dtype=np.int64),
            tenant_service=np.zeros(wl.n_tenants),
            win_service=np.zeros((n_win, wl.n_tenants)),
            win_backlog_s=np.zeros((n_win, wl.n_tenants)),
        )
        self._advance()

    # ------------------------------------------------------------------ decisions
    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        st = self.state
        if st.decision_kind != NO_DECISION:
            if self._record:
                self._record_before(action)
            dyn.apply_action(action, self._p, self._pf, self.state.wq, st.qi, st.qf, st.ci, st.running, st.visible,
                             st.victims, st.gi, st.gf, st.tenant_waiting)  # fmt: skip
        reward = self._advance()
        done = st.decision_kind == NO_DECISION
        terminated = done and st.n_done == st.workload.n_requests
        truncated = done and not terminated
        return reward, terminated, truncated, {"sim_time_s": st.clock_s}

    def _advance(self) -> float:
        st = self.state
        st.gf[GF_REWARD] = 0.0
        dyn.advance(self._p, self._pf, self._prof, self.state.wq, st.workload.req_tool_s, st.qi, st.qf, st.ci, st.cf,
                    st.running, st.sched, st.visible, st.victims, st.mask, st.gi, st.gf, st.agent_finish_s,
                    st.tenant_waiting, st.tenant_service, st.win_service, st.win_backlog_s)  # fmt: skip
        if self._record:
            used = 1.0 - st.ci[:, CI_FREE] / self.params.kv_blocks
            st.kv_trace.append((st.clock_s, *used.tolist()))
        return float(st.gf[GF_REWARD])

    def _record_before(self, action: int) -> None:
        st = self.state
        k = self.n_visible
        kind, c = st.decision_kind, st.decision_core
        victim = -1
        if kind == PREEMPT and action < 2 * k:
            victim, how = int(st.victims[action % k]), ("swap" if action < k else "recompute")
        elif kind == SLICE_END and action in (0, k):
            victim, how = st.decision_req, ("swap" if action == 0 else "recompute")
        if victim >= 0:
            st.segments.append((c, float(st.qf[victim, QF_RUN_START]), st.clock_s, int(st.workload.req_agent[victim])))
            st.switches.append((st.clock_s, c, how))

    def _action_mask(self) -> np.ndarray:
        return self.state.mask

    def _default_action(self) -> int:
        st = self.state
        k = self.n_visible
        if st.decision_kind == ADMIT:
            return int(np.flatnonzero(st.mask)[0])
        if st.decision_kind == PREEMPT:
            return k  # recompute the newest running sequence (vLLM's default)
        return 2 * k

    def _extra_info(self) -> dict[str, Any]:
        return {"decision": DECISION_NAMES[self.state.decision_kind]}

    # ------------------------------------------------------------------ observation
    def n_active_agents(self) -> int:
        gi = self.state.gi
        return int(gi[GI_N_AGENTS_ARRIVED] - gi[GI_N_AGENTS_DONE])

    def _observe(self) -> np.ndarray:
        st = self.state
        obs = np.empty(self.obs_size, dtype=np.float32)
        dyn.observe(obs, self._p, self._pf, self._prof, self.state.wq, st.qi, st.qf, st.ci, st.cf, st.visible, st.victims,
                    st.gi, st.gf, st.tenant_waiting, st.tenant_service, len(TYPE_NAMES), self.n_active_agents(),
                    OBS_CLIP)  # fmt: skip
        return obs

    # ------------------------------------------------------------------ views for policies and tests
    @property
    def wq(self) -> np.ndarray:
        """Per-request workload columns (``dynamics.W_*``) of this episode (treat as read-only)."""
        return self.state.wq

    def agent_lower_bounds_s(self) -> np.ndarray:
        """Per agent: the proven lower bound on its turnaround (``bounds.py``)."""
        return agent_lower_bounds_s(self.state.workload, self.bound_consts)

    def swap_cost_s(self, req: int | np.ndarray) -> np.ndarray:
        """Copy time of swapping a request's KV out and back in (its current blocks)."""
        return 2.0 * self.state.qi[req, QI_BLOCKS] * self.params.swap_s_per_block

    def recompute_cost_s(self, req: int | np.ndarray) -> np.ndarray:
        """Prefill time of a request's prompt + generated tokens (what a recompute re-does)."""
        st = self.state
        tokens = np.atleast_1d(st.workload.req_prompt_tokens[req] + st.qi[req, QI_GENERATED])
        out = np.array([self.profile.prefill_s(float(x)) for x in tokens])
        return out if np.ndim(req) else float(out[0])

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float]:
        st = self.state
        wl = st.workload
        qi, qf, gi = st.qi, st.qf, st.gi

        def pct(x: np.ndarray, q: float) -> float:
            return float(np.percentile(x, q)) if x.size else float("nan")

        def mean(x: np.ndarray) -> float:
            return float(x.mean()) if x.size else float("nan")

        status = qi[:, QI_STATE]
        arrived = status != PENDING
        done_req = status == DONE
        waited = qf[:, QF_WAITED].copy()
        open_wait = status == WAITING
        waited[open_wait] += st.clock_s - qf[open_wait, QF_ENQ]
        done_agent = st.agent_finish_s >= 0
        turnaround = st.agent_finish_s[done_agent] - wl.agent_arrival_s[done_agent]
        agent_wait = np.bincount(wl.req_agent, weights=waited, minlength=wl.n_agents)[done_agent]
        has_tok = qf[:, QF_FIRST] >= 0
        ttft = qf[has_tok, QF_FIRST] - qf[has_tok, QF_READY]
        decisions = int(gi[GI_N_DECISIONS])
        clock = max(st.clock_s, 1e-9)
        diff_max, jain = self._fairness()
        m = {
            "turnaround_mean": mean(turnaround),
            "turnaround_p90": pct(turnaround, 90),
            "turnaround_p99": pct(turnaround, 99),
            "turnaround_lower_bound": float(self.agent_lower_bounds_s().mean()),
            "wait_mean": mean(waited[done_req]),
            "wait_p90": pct(waited[done_req], 90),
            "wait_p99": pct(waited[done_req], 99),
            "wait_share": float(agent_wait.sum() / turnaround.sum()) if turnaround.size else float("nan"),
            "ttft_p50": pct(ttft, 50),
            "ttft_p99": pct(ttft, 99),
            "kv_constrained_frac": gi[GI_N_KV_CONSTRAINED] / decisions if decisions else 0.0,
            "decisions": float(decisions),
            "preemptions": float(gi[GI_N_KV_PREEMPT] + gi[GI_N_SLICE_PREEMPT]),
            "kv_preemptions": float(gi[GI_N_KV_PREEMPT]),
            "slice_preemptions": float(gi[GI_N_SLICE_PREEMPT]),
            "swaps": float(gi[GI_N_SWAPS]),
            "recomputes": float(gi[GI_N_RECOMPUTES]),
            "swap_s": float(st.gf[GF_SWAP_S]),
            "recompute_tokens": float(gi[GI_RECOMPUTE_TOKENS]),
            "service_diff_max": diff_max,
            "jain_index": jain,
            "throughput_agents_per_min": float(done_agent.sum()) / (clock / 60.0),
            "core_busy_frac": float(st.cf[:, CF_BUSY_S].sum() / (clock * self.n_cores)),
            "kv_used_frac": float(st.cf[:, CF_KV_BLOCK_S].sum() / (clock * self.n_cores * self.params.kv_blocks)),
            "sim_time_s": float(st.clock_s),
            "requests_arrived": float(arrived.sum()),
            "requests_completed": float(done_req.sum()),
            "requests_unfinished": float(arrived.sum() - done_req.sum()),
            "agents_arrived": float(gi[GI_N_AGENTS_ARRIVED]),
            "agents_completed": float(done_agent.sum()),
            "agents_unfinished": float(gi[GI_N_AGENTS_ARRIVED] - done_agent.sum()),
            "agents_finished_frac": float(done_agent.sum() / wl.n_agents),
            "all_agents_finished": float(done_agent.all()),
        }
        for t, s in enumerate(st.tenant_service):
            m[f"tenant{t}_service"] = float(s)
        return m

    def _fairness(self) -> tuple[float, float]:
        """``(service_diff_max, jain_index)`` over windows (docstring, Metrics)."""
        st = self.state
        full = st.win_backlog_s >= self.fairness_window_s * (1.0 - 1e-9)
        diffs, jains = [], []
        for w in np.flatnonzero(full.sum(axis=1) >= 2):
            s = st.win_service[w, full[w]]
            diffs.append(float(s.max() - s.min()))
            jains.append(float(s.sum() ** 2 / (s.size * (s**2).sum())) if s.any() else 1.0)
        if not diffs:
            return 0.0, 1.0
        return max(diffs), float(np.mean(jains))

    # ------------------------------------------------------------------ rendering
    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.agent_scheduling.render import render_gantt

        return render_gantt(self)

    def _render_ansi(self) -> str:
        from schedgym.envs.agent_scheduling.render import render_text

        return render_text(self)

