"""Typed episode state of AgentScheduling (everything mutable lives here, so get_state() snapshots it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schedgym.envs.agent_scheduling.workload import Workload

__all__ = ["PENDING", "WAITING", "RUNNING", "DONE", "NO_DECISION", "ADMIT", "SLICE_END", "AgentSchedState"]

# Request status codes.
PENDING, WAITING, RUNNING, DONE = 0, 1, 2, 3
# Kinds of decision point.
NO_DECISION, ADMIT, SLICE_END = 0, 1, 2


@dataclass
class AgentSchedState:
    """The simulator state. N requests, A agents, C cores with B batch slots each, K visible requests."""

    workload: Workload  # immutable arrays of this episode's agents and requests (true lengths inside)
    clock_s: float
    # ---- per request
    status: np.ndarray  # (N,) int8: PENDING (not submitted yet), WAITING, RUNNING, DONE
    ready_s: np.ndarray  # (N,) float64, submission time (inf while the agent's previous step runs)
    enqueue_s: np.ndarray  # (N,) float64, time it last entered the waiting queue (canonical order)
    generated: np.ndarray  # (N,) float64, output tokens generated so far (fractional between events)
    waited_s: np.ndarray  # (N,) float64, total time spent in the waiting queue so far
    first_token_s: np.ndarray  # (N,) float64, time of the first output token (nan before)
    finish_s: np.ndarray  # (N,) float64 (nan before)
    n_preempted: np.ndarray  # (N,) int32, times preempted
    slice_end_s: np.ndarray  # (N,) float64, end of the running request's time slice (inf: none)
    run_start_s: np.ndarray  # (N,) float64, start of the current run segment (for the Gantt chart)
    kv_reserved: np.ndarray  # (N,) int64, KV tokens reserved while running, else 0
    req_core: np.ndarray  # (N,) int64, core of a running request, else -1
    req_slot: np.ndarray  # (N,) int64, batch slot of a running request, else -1
    last_core: np.ndarray  # (N,) int64, core of the request's latest run segment (-1 never ran)
    last_slot: np.ndarray  # (N,) int64, slot of that segment
    reservation: np.ndarray  # (N,) int64, KV tokens the request reserves while running (fixed per episode)
    pending_ready_s: np.ndarray  # (N,) float64, submission time of PENDING requests whose time is known, else inf
    # ---- per agent
    agent_service: np.ndarray  # (A,) float64, VTC service: input tokens + 2 x output tokens served
    agent_finish_s: np.ndarray  # (A,) float64 (nan before)
    # ---- per core
    slot_req: np.ndarray  # (C, B) int64, request in each batch slot, -1 when empty
    core_ready_s: np.ndarray  # (C,) float64, until then the core runs prefills/context switches
    core_kv_tokens: np.ndarray  # (C,) int64, KV tokens reserved on the core
    # ---- decision point
    decision_kind: int  # NO_DECISION, ADMIT or SLICE_END
    decision_core: int  # core of the free slot / of the expiring request
    decision_req: int  # the running request whose slice ended (SLICE_END), else -1
    visible: np.ndarray  # (K,) int64, the first K waiting requests by (enqueue_s, id), -1 padded
    n_waiting: int
    mask: np.ndarray  # (K + 1,) bool, legal actions at the current decision point
    # ---- counters
    n_switches: int = 0
    switch_overhead_s: float = 0.0
    busy_slot_s: float = 0.0  # integral of running slots over time
    done_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (N,) finish order
    n_done: int = 0
    n_agents_done: int = 0
    next_finish_s: float = -np.inf  # earliest finish time of a running request (-inf: recompute)
    # ---- history for the Gantt chart (only recorded when rendering)
    segments: list = field(default_factory=list)  # preempted run segments (core, slot, start_s, end_s, agent)
    queue_trace: list = field(default_factory=list)  # (t_s, n_waiting)
