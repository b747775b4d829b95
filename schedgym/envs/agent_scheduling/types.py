"""Typed episode state of AgentScheduling-v1 (everything mutable lives here, so get_state() snapshots it).

Column layouts are module constants read by the numba kernels in ``dynamics.py`` and by Python alike.
Shapes: ``N`` requests (agent steps), ``A`` agents, ``C`` cores, ``S`` = ``max_num_seqs`` running slots
per core, ``K`` = ``n_visible``, ``T`` tenants, ``W`` fairness windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schedgym.envs.agent_scheduling.workload import Workload

__all__ = ["AgentSchedState"]

# Request status codes (QI_STATE).
PENDING, WAITING, RUNNING, DONE = 0, 1, 2, 3
# Kinds of decision point (GI_KIND).
NO_DECISION, ADMIT, PREEMPT, SLICE_END = 0, 1, 2, 3
DECISION_NAMES = {NO_DECISION: "none", ADMIT: "admit", PREEMPT: "kv_preempt", SLICE_END: "slice_end"}

# ---- request int columns
(
    QI_STATE,
    QI_CORE,  # core it runs on (or last ran on), -1 never ran
    QI_TARGET,  # tokens to prefill: the prompt, or prompt + generated after a recompute
    QI_PREFILLED,
    QI_GENERATED,
    QI_KV,  # tokens in its KV cache (on the GPU, or on the host while swapped)
    QI_BLOCKS,  # KV blocks it holds (GPU, or host while swapped)
    QI_SWAPPED,  # 1 while its KV is in host memory
    QI_JUST_IN,  # 1 during the iteration that copies its KV back (it does not compute then)
    QI_PREEMPTS,
    QI_SWAPS,
    QI_RECOMPUTES,
    QI_INPUT_CREDIT,  # prompt tokens already counted as service (VTC), <= prompt
) = range(13)
N_QI = 13
# ---- request float columns
(
    QF_READY,  # submission time (inf until the agent's previous step and tool are done)
    QF_ENQ,  # time it last entered the waiting queue
    QF_WAITED,  # total time spent waiting so far
    QF_FIRST,  # first token time (-1 before)
    QF_FINISH,  # finish time (-1 before)
    QF_RUN_START,  # start of its current (or last) run segment
    QF_SLICE_START,  # start of its current time slice
) = range(7)
N_QF = 7
# ---- core int columns
(
    CI_NRUN,
    CI_FREE,  # free KV blocks
    CI_BUSY,  # 1 while an iteration runs
    CI_NEED_COMPOSE,  # 1 when the core is at an iteration boundary (or idle and woken up)
    CI_NO_ADMIT,  # the policy declined to admit more at this boundary
    CI_KV_PREEMPTED,  # a KV preemption happened at this boundary (no admissions then, as in vLLM)
    CI_SWAP_BLOCKS,  # blocks copied (in or out) at this boundary, charged to the next iteration
    CI_ITERS,
) = range(8)
N_CI = 8
# ---- core float columns
CF_ITER_START, CF_ITER_END, CF_BUSY_S, CF_KV_BLOCK_S = range(4)
N_CF = 4
# ---- global int columns
(
    GI_KIND,
    GI_CORE,
    GI_REQ,  # the expiring request at a slice end, the request missing a block at a KV preemption
    GI_N_WAITING,
    GI_N_DONE,
    GI_N_AGENTS_ARRIVED,
    GI_N_AGENTS_DONE,
    GI_N_DECISIONS,
    GI_N_KV_CONSTRAINED,
    GI_N_KV_PREEMPT,
    GI_N_SLICE_PREEMPT,
    GI_N_SWAPS,
    GI_N_RECOMPUTES,
    GI_RECOMPUTE_TOKENS,  # prefilled tokens thrown away by recomputes
    GI_FIRST_WAITING,  # no request with a smaller id is waiting (where fill_visible starts its scan)
    GI_FIRST_READY,  # no request with a smaller id is pending with a known submission time (_submit's scan)
) = range(16)
N_GI = 16
# ---- global float columns
GF_CLOCK, GF_REWARD, GF_NEXT_SUBMIT, GF_SWAP_S, GF_AGENT_S = range(5)
N_GF = 5


@dataclass
class AgentSchedState:
    """The simulator state of one episode."""

    workload: Workload  # immutable arrays of this episode's agents and requests (true lengths inside)
    wq: np.ndarray  # (N, dynamics.N_W) int64 the workload's per-request columns the kernels read (W_*)
    qi: np.ndarray  # (N, N_QI) int64 per-request progress (QI_* columns)
    qf: np.ndarray  # (N, N_QF) float64 per-request times (QF_* columns)
    ci: np.ndarray  # (C, N_CI) int64 per-core counters (CI_* columns)
    cf: np.ndarray  # (C, N_CF) float64 per-core times (CF_* columns)
    running: np.ndarray  # (C, S) int64 request ids running on each core, admission order, -1 padded
    sched: np.ndarray  # (C, S) int64 this iteration's work per running slot: >0 prefill chunk, -1 decode, 0 none
    visible: np.ndarray  # (K,) int64 waiting requests offered at an admission / slice-end decision, -1 padded
    victims: np.ndarray  # (K,) int64 running requests offered at a KV-preemption decision (newest first)
    mask: np.ndarray  # (2K + 1,) bool legal actions now
    gi: np.ndarray  # (N_GI,) int64 decision point and counters (GI_*)
    gf: np.ndarray  # (N_GF,) float64 clock, reward accumulator, next submission (GF_*)
    agent_finish_s: np.ndarray  # (A,) float64 (-1 before)
    tenant_waiting: np.ndarray  # (T,) int64 waiting requests per tenant (backlogged iff > 0)
    tenant_service: np.ndarray  # (T,) float64 VTC service received: input + 2 x output tokens
    win_service: np.ndarray  # (W, T) float64 service received per fairness window
    win_backlog_s: np.ndarray  # (W, T) float64 time backlogged per fairness window
    # ---- history for the Gantt chart (only recorded when rendering)
    segments: list = field(default_factory=list)  # ended run segments (core, start_s, end_s, agent)
    switches: list = field(default_factory=list)  # (t_s, core, "swap" | "recompute")
    kv_trace: list = field(default_factory=list)  # (t_s, kv used fraction of each core ...)

    @property
    def clock_s(self) -> float:
        return float(self.gf[GF_CLOCK])

    @property
    def decision_kind(self) -> int:
        return int(self.gi[GI_KIND])

    @property
    def decision_core(self) -> int:
        return int(self.gi[GI_CORE])

    @property
    def decision_req(self) -> int:
        return int(self.gi[GI_REQ])

    @property
    def status(self) -> np.ndarray:
        return self.qi[:, QI_STATE]

    @property
    def generated(self) -> np.ndarray:
        return self.qi[:, QI_GENERATED]

    @property
    def n_done(self) -> int:
        return int(self.gi[GI_N_DONE])

    @property
    def n_waiting(self) -> int:
        return int(self.gi[GI_N_WAITING])
