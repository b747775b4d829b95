"""AgentScheduling-v0: schedule the LLM requests of many concurrent LLM agents onto a few LLM cores.

Grounded in AIOS (Mei et al., "AIOS: LLM Agent Operating System", 2024: FIFO and round-robin LLM
schedulers with context snapshots), FastSwitch (Shen et al., 2024: the cost of context switches for
fairness) and VTC (Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024).

The event loop and the observation are compiled with numba (``kernel.py``, cached on first use);
decisions (admit, preempt) are applied here in Python.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.agent_scheduling import kernel
from schedgym.envs.agent_scheduling.types import (
    ADMIT,
    DONE,
    NO_DECISION,
    PENDING,
    RUNNING,
    SLICE_END,
    WAITING,
    AgentSchedState,
)
from schedgym.envs.agent_scheduling.workload import (
    AGENT_TYPES,
    TYPE_NAMES,
    generate_workload,
)
from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.perf_profile import load_perf_profile
from schedgym.envs.core.traces import (
    check_workload,
    load_workload_trace,
    scale_rate,
)
from schedgym.envs.core.validation import check_choice, check_float, check_int

__all__ = ["AgentSchedulingEnv", "REQUEST_FEATURES"]

#: Per-request observation features (one row per visible waiting request, and one for the running
#: request at a slice end).
REQUEST_FEATURES: tuple[str, ...] = (
    "present",
    "waiting_s/10",
    "prompt_tokens/1000",
    "generated_tokens/1000",
    "agent_step/10",
    "times_preempted",
    "agent_service_tokens/1e4",
) + tuple(f"type={n}" for n in TYPE_NAMES)
_F = len(REQUEST_FEATURES)
_OBS_HIGH = 1e6  # observation bound (features are scaled to O(1); clipped in pathological cases)


class AgentSchedulingEnv(SchedEnv):
    """Schedule LLM agents' requests onto ``n_cores`` continuously batched LLM cores.

    ## Description

    LLM agents (ReAct, Reflexion, plan-and-execute, coding agents) arrive over time and alternate LLM
    requests with tool calls; each agent's context grows with every step. A scheduler in front of the
    LLM cores (as in AIOS) decides which waiting request takes a free batch slot, and, at the end of a
    running request's time slice, whether to keep it or preempt it for a waiting one. Each core serves
    up to ``max_batch`` requests at once with a KV-cache budget of ``kv_capacity_tokens``; a request
    reserves ``min(prompt + max_output_tokens, max_context_tokens)`` KV tokens while it runs (a
    max-length reservation, so admission never depends on the hidden true output length).

    Timing comes from the SplitwiseSim profile table (``schedgym/data/splitwise_sim_perf_model``,
    MIT; Patel et al., ISCA 2024), rows ``model, hardware, tensor_parallel`` (default llama2-70b,
    a100-80gb, TP 8): prefill time from the batch-1 prompt sweep (``batch_size=1, token_size=128,
    prompt_size=128..8192``, column ``prompt_time``), decode iteration time from the batch sweep
    (``prompt_size=512, token_size=128, batch_size=1..64``, column ``token_time``), medians of the 5
    repetitions, interpolated. A request's prefill stalls its core's decoding (vLLM's default
    prefill-first schedule) and produces its first token; each decode iteration then gives every running
    request one token and lasts ``decode_step(batch)``. Decode time does not grow with context length
    (the table has no such sweep).

    The env is event-driven: a step jumps simulated time to the next decision point, which is a free
    slot with a waiting request that fits, or the end of a running request's time slice
    (``time_slice_s``; 0 = no preemption) while requests are waiting. A preempted request returns to
    the back of the queue; resuming it costs a context switch that stalls its core: ``"swap"`` moves
    its KV cache back (``context_tokens * swap_s_per_token``) or ``"recompute"`` re-runs the prefill of
    its whole context.

    ## Action Space

    ``Discrete(K + 1)`` with ``K = n_visible``: action ``k < K`` runs the k-th of the first K waiting
    requests (canonical order: time it entered the queue, i.e. submission or preemption, then id) on
    the free slot (at a slice end: in place of the expiring request, which is preempted); action ``K``
    keeps the expiring request running for another slice.

    ## Action Mask

    At a free-slot decision, ``k`` is legal iff the k-th visible request exists and fits the core's
    free KV; ``K`` is illegal. At a slice end, ``K`` is legal and ``k`` iff the request fits once the
    expiring one's KV is released. After the episode ends only ``K`` is legal. Invalid actions are
    replaced by the default action (first legal waiting request at a free slot, ``K`` at a slice end)
    with ``invalid_action_penalty``.

    ## Observation Space

    A flat ``Box(0, 1e6, float32)`` of size ``K*F + 2 + F + 3*n_cores + 4`` with ``F = 11``:

    | index | meaning |
    |---|---|
    | ``[0, K*F)`` | the K visible waiting requests, F features each (zeros when absent): present, waiting time since entering the queue / 10 s, prompt tokens / 1000, generated tokens / 1000, agent step index / 10, times preempted, the agent's VTC service so far / 1e4 tokens, agent-type one-hot (react, reflexion, plan_execute, coder) |
    | ``K*F``, ``K*F+1`` | decision kind one-hot: free slot, slice end |
    | ``[K*F+2, K*F+2+F)`` | the expiring running request at a slice end (same F features), else zeros |
    | next ``3*n_cores`` | per core: running slots / max_batch, reserved KV / kv_capacity_tokens, remaining prefill/switch stall in s |
    | last 4 | waiting requests beyond K / 10, clock / max_sim_s, agents in the system / 10, waiting requests / 10 |

    No true output length appears in the observation.

    ## Rewards

    ``-(waiting requests + unfinished arrived agents) * elapsed_s / (n_cores * max_batch)`` summed over
    the simulated time a step covers: by Little's law its episode sum is minus the total request
    waiting time plus the total agent turnaround time, scaled. With ``fairness_weight > 0`` the step
    also gets ``-fairness_weight * elapsed_s * gap / (1e4 * n_cores * max_batch)`` where ``gap`` is the
    largest difference of VTC service (input + 2 x output tokens served) between agents that have a
    request waiting (the quantity VTC bounds).

    ## Starting State

    ``reset(seed)`` draws the agents (arrival times, types, steps, request lengths, tools, see
    ``workload.py``) and runs the simulation up to the first decision.

    ## Episode End

    Terminated when every agent has finished. Truncated when the simulated clock reaches
    ``max_sim_s``; unfinished requests and agents are then counted in the metrics.

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | workload | str | ``"poisson"`` | agent arrivals: ``"poisson"`` at ``agent_rate``, ``"azure-code"``/``"azure-conv"`` (Azure 2023 trace arrival times, one agent per row, thinned by ``rate_scale``) or ``"trace:<path>"`` (CSV/JSONL) |
    | agent_rate | float | 0.16 | agents per second for ``"poisson"`` |
    | rate_scale | float | 0.06 | thinning/replication of a trace's arrivals (0.06 x azure-code's 2.57 req/s = 0.15 agents/s, in bursts) |
    | trace_columns, trace_time_unit | dict, str | Azure names, ``"datetime"`` | columns/time unit of ``trace:`` files |
    | n_agents | int | 100 | agents per episode (at most the trace's rows) |
    | agent_mix | dict or None | uniform | weights over agent types |
    | n_cores | int | 2 | LLM cores (serving instances) |
    | max_batch | int | 4 | batch slots per core |
    | kv_capacity_tokens | int | 65536 | KV budget per core (about 20 GiB of llama2-70b fp16 KV at 320 KiB/token: a deliberately tight cache so admission is sometimes memory-bound) |
    | model, hardware, tensor_parallel | str, str, int | llama2-70b, a100-80gb, 8 | SplitwiseSim profile rows |
    | time_slice_s | float | 1.0 | slice length (AIOS default); 0 = no preemption |
    | context_switch | str | ``"swap"`` | ``"swap"`` or ``"recompute"`` |
    | swap_s_per_token | float | 2e-5 | swap time per context token (~16 GB/s effective for 320 KiB/token; FastSwitch reports block-granular swaps far below PCIe peak) |
    | n_visible | int | 8 | K, waiting requests visible to the agent |
    | max_context_tokens, max_output_tokens | int | 8192, 2048 | context cap (prompts truncated) and output cap |
    | slo_ttft_s | float | 2.0 | TTFT objective for ``slo_attainment`` |
    | fairness_weight | float | 0.0 | weight of the fairness term in the reward |
    | max_sim_s | float | 7200 | simulated-time limit of an episode |

    Defaults: 100 agents at 0.16 agents/s on 2 cores x 4 slots keep the batch slots about 80 % busy under
    FIFO over an episode (``slot_utilisation`` 0.81 on seed 0; 0.76 at 0.15 agents/s, 0.50 at 0.10).
    See ``benchmarks/table_agent_scheduling.py``.

    ``gym.make("schedgym/AgentScheduling-v0", n_cores=1, max_batch=4, agent_rate=0.05, time_slice_s=0.5)``

    ## Info / Metrics

    ``info["action_mask"]`` every step; ``info["metrics"]`` at the end: ``turnaround_mean/p90/p99``
    (per completed agent, s), ``wait_mean/p90/p99`` (per completed request, total time queued, s),
    ``ttft_p50/p99`` (s), ``slo_attainment`` (arrived requests with TTFT <= slo_ttft_s),
    ``throughput_agents_per_min``, ``jain_fairness`` (Jain's index over completed agents of
    isolated_time / turnaround, isolated_time = the agent alone on an idle core), ``switch_overhead_s``,
    ``context_switches``, ``slot_utilisation``, ``sim_time_s``, ``requests_arrived/completed/unfinished``,
    ``agents_arrived/completed/unfinished``.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        workload: str = "poisson",
        agent_rate: float = 0.16,
        rate_scale: float = 0.06,
        trace_columns: dict[str, str] | None = None,
        trace_time_unit: str = "datetime",
        n_agents: int = 100,
        agent_mix: dict[str, float] | None = None,
        n_cores: int = 2,
        max_batch: int = 4,
        kv_capacity_tokens: int = 65536,
        model: str = "llama2-70b",
        hardware: str = "a100-80gb",
        tensor_parallel: int = 8,
        time_slice_s: float = 1.0,
        context_switch: str = "swap",
        swap_s_per_token: float = 2e-5,
        n_visible: int = 8,
        max_context_tokens: int = 8192,
        max_output_tokens: int = 2048,
        slo_ttft_s: float = 2.0,
        fairness_weight: float = 0.0,
        max_sim_s: float = 7200.0,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        check_workload(workload, generated=("poisson",))
        self.workload_name = workload
        self.agent_rate = check_float("agent_rate", agent_rate, low=0.0, low_inclusive=False)
        self.rate_scale = check_float("rate_scale", rate_scale, low=0.0, low_inclusive=False)
        self.n_agents = check_int("n_agents", n_agents, low=1, high=1_000_000)
        self.agent_mix = agent_mix
        from schedgym.envs.agent_scheduling.workload import _mix_probabilities

        _mix_probabilities(agent_mix)  # validates
        self.n_cores = check_int("n_cores", n_cores, low=1, high=1024)
        self.max_batch = check_int("max_batch", max_batch, low=1, high=1024)
        self.max_context_tokens = check_int("max_context_tokens", max_context_tokens, low=2, high=1 << 24)
        self.max_output_tokens = check_int("max_output_tokens", max_output_tokens, low=1, high=self.max_context_tokens - 1)
        self.kv_capacity_tokens = check_int(
            "kv_capacity_tokens", kv_capacity_tokens, low=self.max_context_tokens, high=1 << 40
        )
        self.time_slice_s = check_float("time_slice_s", time_slice_s, low=0.0)
        self.context_switch = check_choice("context_switch", context_switch, ("swap", "recompute"))
        self.swap_s_per_token = check_float("swap_s_per_token", swap_s_per_token, low=0.0)
        self.n_visible = check_int("n_visible", n_visible, low=1, high=4096)
        self.slo_ttft_s = check_float("slo_ttft_s", slo_ttft_s, low=0.0, low_inclusive=False)
        self.fairness_weight = check_float("fairness_weight", fairness_weight, low=0.0)
        self.max_sim_s = check_float("max_sim_s", max_sim_s, low=0.0, low_inclusive=False)
        tensor_parallel = check_int("tensor_parallel", tensor_parallel, low=1)
        self.profile = load_perf_profile(model, hardware, tensor_parallel)
        # Arrival trace: loaded once (immutable); thinning happens per episode with the episode's RNG.
        self._trace = None
        if workload != "poisson":
            self._trace = load_workload_trace(workload, trace_columns, trace_time_unit)
        # decode_step_s[b] = one decode iteration with b running requests (b = 0 unused).
        self._decode_step_s = self.profile.decode_step_time_s(np.arange(self.max_batch + 1)).astype(np.float64)
        self._reward_norm = float(self.n_cores * self.max_batch)
        self._record_history = render_mode is not None

        k = self.n_visible
        self.action_space = gym.spaces.Discrete(k + 1)
        self.obs_size = k * _F + 2 + _F + 3 * self.n_cores + 4
        self.observation_space = gym.spaces.Box(0.0, _OBS_HIGH, shape=(self.obs_size,), dtype=np.float32)

    # ------------------------------------------------------------------ episode setup
    def _reset(self, options: dict[str, Any] | None) -> None:
        rng = self.np_random
        trace = scale_rate(self._trace, self.rate_scale, rng) if self._trace is not None else None
        wl = generate_workload(
            rng,
            self.n_agents,
            self.agent_rate,
            arrival_trace=trace,
            agent_mix=self.agent_mix,
            max_context_tokens=self.max_context_tokens,
            max_output_tokens=self.max_output_tokens,
        )
        n, a = wl.n_requests, wl.n_agents
        ready = np.full(n, np.inf)
        ready[wl.agent_first_req] = wl.agent_arrival_s
        self.state = AgentSchedState(
            workload=wl,
            clock_s=0.0,
            status=np.zeros(n, dtype=np.int8),
            ready_s=ready,
            enqueue_s=np.full(n, np.inf),
            generated=np.zeros(n),
            waited_s=np.zeros(n),
            first_token_s=np.full(n, np.nan),
            finish_s=np.full(n, np.nan),
            n_preempted=np.zeros(n, dtype=np.int32),
            slice_end_s=np.full(n, np.inf),
            run_start_s=np.full(n, np.nan),
            kv_reserved=np.zeros(n, dtype=np.int64),
            reservation=np.minimum(wl.req_prompt_tokens + self.max_output_tokens, self.max_context_tokens),
            req_core=np.full(n, -1, dtype=np.int64),
            req_slot=np.full(n, -1, dtype=np.int64),
            last_core=np.full(n, -1, dtype=np.int64),
            last_slot=np.full(n, -1, dtype=np.int64),
            pending_ready_s=ready.copy(),
            agent_service=np.zeros(a),
            agent_finish_s=np.full(a, np.nan),
            slot_req=np.full((self.n_cores, self.max_batch), -1, dtype=np.int64),
            core_ready_s=np.zeros(self.n_cores),
            core_kv_tokens=np.zeros(self.n_cores, dtype=np.int64),
            decision_kind=NO_DECISION,
            decision_core=-1,
            decision_req=-1,
            visible=np.full(self.n_visible, -1, dtype=np.int64),
            n_waiting=0,
            mask=np.zeros(self.n_visible + 1, dtype=bool),
            done_order=np.full(n, -1, dtype=np.int64),
        )
        self._advance()

    def reservation_tokens(self, req: np.ndarray | int) -> np.ndarray:
        """KV tokens a request reserves while running: its prompt plus the output cap, within the context cap."""
        return self.state.reservation[req]

    def prefill_time_s(self, tokens: np.ndarray | float) -> np.ndarray:
        return self.profile.prefill_time_s(tokens)

    def switch_cost_s(self, req: int) -> float:
        """Time to resume a preempted request: swap its KV back in, or recompute its context."""
        st = self.state
        context = float(st.workload.req_prompt_tokens[req] + math.floor(st.generated[req]))
        if self.context_switch == "swap":
            return context * self.swap_s_per_token
        return float(self.prefill_time_s(context))

    # ------------------------------------------------------------------ decisions
    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        st = self.state
        k = self.n_visible
        if st.decision_kind == ADMIT:
            core = st.decision_core
            slot = int(np.flatnonzero(st.slot_req[core] < 0)[0])
            self._admit(int(st.visible[action]), core, slot)
        elif st.decision_kind == SLICE_END:
            r = st.decision_req
            if action == k:
                st.slice_end_s[r] = st.clock_s + self.time_slice_s
            else:
                core, slot = self._preempt(r)
                self._admit(int(st.visible[action]), core, slot)
        if self._record_history:
            st.queue_trace.append((st.clock_s, st.n_waiting))  # the queue once the decision is taken
        reward = self._advance()
        terminated = st.decision_kind == NO_DECISION and self._all_done()
        truncated = st.decision_kind == NO_DECISION and not terminated
        return reward, terminated, truncated, {"sim_time_s": st.clock_s}

    def _all_done(self) -> bool:
        return self.state.n_done == self.state.workload.n_requests

    def _action_mask(self) -> np.ndarray:
        return self.state.mask

    def _default_action(self) -> int:
        mask = self.state.mask
        if self.state.decision_kind == ADMIT:
            return int(np.flatnonzero(mask)[0])
        return self.n_visible

    # ------------------------------------------------------------------ simulator
    def _admit(self, r: int, core: int, slot: int) -> None:
        st = self.state
        wl = st.workload
        st.status[r] = RUNNING
        st.slot_req[core, slot] = r
        st.next_finish_s = -np.inf
        st.req_core[r], st.req_slot[r] = core, slot
        st.last_core[r], st.last_slot[r] = core, slot
        res = int(self.reservation_tokens(r))
        st.kv_reserved[r] = res
        st.core_kv_tokens[core] += res
        st.waited_s[r] += st.clock_s - st.enqueue_s[r]
        st.n_waiting -= 1
        start = max(st.clock_s, st.core_ready_s[core])
        if st.generated[r] == 0:
            # Fresh request: the prefill yields its first token.
            cost = float(self.prefill_time_s(wl.req_prompt_tokens[r]))
            st.core_ready_s[core] = start + cost
            st.first_token_s[r] = st.core_ready_s[core]
            st.generated[r] = 1.0
            st.agent_service[wl.req_agent[r]] += wl.req_prompt_tokens[r] + 2.0
        else:
            cost = self.switch_cost_s(r)
            st.core_ready_s[core] = start + cost
            st.n_switches += 1
            st.switch_overhead_s += cost
        st.slice_end_s[r] = st.core_ready_s[core] + self.time_slice_s if self.time_slice_s > 0 else np.inf
        st.run_start_s[r] = st.clock_s

    def _release(self, r: int) -> tuple[int, int]:
        st = self.state
        core, slot = int(st.req_core[r]), int(st.req_slot[r])
        st.slot_req[core, slot] = -1
        st.req_core[r] = st.req_slot[r] = -1
        st.next_finish_s = -np.inf  # a smaller batch decodes faster: finish times move
        st.core_kv_tokens[core] -= st.kv_reserved[r]
        st.kv_reserved[r] = 0
        st.slice_end_s[r] = np.inf
        if self._record_history:
            st.segments.append((int(core), int(slot), float(st.run_start_s[r]), st.clock_s, int(st.workload.req_agent[r])))
        return int(core), int(slot)

    def _preempt(self, r: int) -> tuple[int, int]:
        st = self.state
        core, slot = self._release(r)
        st.status[r] = WAITING
        st.enqueue_s[r] = st.clock_s
        st.n_preempted[r] += 1
        st.n_waiting += 1
        return core, slot

    def _advance(self) -> float:
        """Run the simulation (compiled kernel) to the next decision point or the end of the episode."""
        st = self.state
        wl = st.workload
        (
            reward, st.clock_s, st.n_waiting, st.n_done, st.n_agents_done, st.next_finish_s, st.busy_slot_s,
            st.decision_kind, st.decision_core, st.decision_req,
        ) = kernel.advance(
            wl.agent_arrival_s, wl.req_agent, wl.req_output_tokens, wl.req_tool, wl.req_tool_s, st.reservation,
            st.status, st.ready_s, st.pending_ready_s, st.enqueue_s, st.generated, st.finish_s, st.slice_end_s,
            st.kv_reserved, st.req_core, st.req_slot, st.done_order, st.agent_finish_s, st.agent_service,
            st.slot_req, st.core_ready_s, st.core_kv_tokens, st.visible, st.mask, self._decode_step_s,
            st.clock_s, st.n_waiting, st.n_done, st.n_agents_done, st.next_finish_s, st.busy_slot_s,
            self.time_slice_s, self.kv_capacity_tokens, self.max_sim_s, self.fairness_weight, self._reward_norm,
        )  # fmt: skip
        if self._record_history:
            st.queue_trace.append((st.clock_s, st.n_waiting))
        return float(reward)

    # ------------------------------------------------------------------ observation and metrics
    def n_active_agents(self) -> int:
        """Agents that have arrived and not finished."""
        st = self.state
        return int(np.searchsorted(st.workload.agent_arrival_s, st.clock_s, side="right")) - st.n_agents_done

    def _observe(self) -> np.ndarray:
        st = self.state
        wl = st.workload
        obs = np.empty(self.obs_size, dtype=np.float32)
        kernel.observe(
            obs, st.visible, st.decision_kind, st.decision_req, st.clock_s, st.status, st.enqueue_s,
            wl.req_prompt_tokens, st.generated, wl.req_step, st.n_preempted, st.agent_service, wl.req_agent,
            wl.agent_type, st.slot_req, st.core_kv_tokens, st.core_ready_s, self.kv_capacity_tokens,
            st.n_waiting, self.n_active_agents(), self.max_sim_s, len(TYPE_NAMES), _OBS_HIGH,
        )  # fmt: skip
        return obs


    def isolated_agent_time_s(self) -> np.ndarray:
        """Per agent: its time alone on an idle core (prefills, batch-1 decoding and tools), seconds."""
        wl = self.state.workload
        per_req = (
            self.prefill_time_s(wl.req_prompt_tokens)
            + (wl.req_output_tokens - 1) * self._decode_step_s[1]
            + wl.req_tool_s
        )
        return np.bincount(wl.req_agent, weights=per_req, minlength=wl.n_agents)

    def metrics(self) -> dict[str, float]:
        st = self.state
        wl = st.workload

        def pct(x: np.ndarray, q: float) -> float:
            return float(np.percentile(x, q)) if x.size else float("nan")

        def mean(x: np.ndarray) -> float:
            return float(x.mean()) if x.size else float("nan")

        arrived_req = st.status != PENDING
        done_req = st.status == DONE
        waits = st.waited_s[done_req]
        has_tok = ~np.isnan(st.first_token_s) & arrived_req
        ttft = st.first_token_s[has_tok] - st.ready_s[has_tok]
        n_arrived_req = int(arrived_req.sum())
        slo_ok = int(np.count_nonzero(ttft <= self.slo_ttft_s + 1e-9))
        agents_arrived = int(np.searchsorted(wl.agent_arrival_s, st.clock_s, side="right"))
        done_agent = ~np.isnan(st.agent_finish_s)
        turnaround = st.agent_finish_s[done_agent] - wl.agent_arrival_s[done_agent]
        progress = self.isolated_agent_time_s()[done_agent] / np.maximum(turnaround, 1e-9)
        jain = float(progress.sum() ** 2 / (progress.size * (progress**2).sum())) if progress.size else float("nan")
        clock = max(st.clock_s, 1e-9)
        return {
            "turnaround_mean": mean(turnaround),
            "turnaround_p90": pct(turnaround, 90),
            "turnaround_p99": pct(turnaround, 99),
            "wait_mean": mean(waits),
            "wait_p90": pct(waits, 90),
            "wait_p99": pct(waits, 99),
            "ttft_p50": pct(ttft, 50),
            "ttft_p99": pct(ttft, 99),
            "slo_attainment": slo_ok / n_arrived_req if n_arrived_req else float("nan"),
            "throughput_agents_per_min": float(done_agent.sum()) / (clock / 60.0),
            "jain_fairness": jain,
            "switch_overhead_s": float(st.switch_overhead_s),
            "context_switches": float(st.n_switches),
            "slot_utilisation": st.busy_slot_s / (clock * self.n_cores * self.max_batch),
            "sim_time_s": float(st.clock_s),
            "requests_arrived": float(n_arrived_req),
            "requests_completed": float(done_req.sum()),
            "requests_unfinished": float(n_arrived_req - done_req.sum()),
            "agents_arrived": float(agents_arrived),
            "agents_completed": float(done_agent.sum()),
            "agents_unfinished": float(agents_arrived - done_agent.sum()),
        }

    # ------------------------------------------------------------------ views for policies
    def running_requests(self) -> np.ndarray:
        """Ids of the running requests."""
        return self.state.slot_req[self.state.slot_req >= 0]

    # ------------------------------------------------------------------ rendering
    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.agent_scheduling.render import render_gantt

        return render_gantt(self)

    def _render_ansi(self) -> str:
        from schedgym.envs.agent_scheduling.render import render_text

        return render_text(self)


# Agent type names in one-hot order, for users of the observation.
AGENT_TYPE_NAMES = tuple(t.name for t in AGENT_TYPES)
