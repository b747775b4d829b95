"""Struct-of-arrays state of N serving fleets (a leading env axis on every array).

Column layouts are module constants so that the numba kernels and Python read the same names. Shapes:
``E`` fleets (envs), ``R`` replica slots per fleet, ``S = max_num_seqs`` running slots per replica,
``N`` request slots per fleet (the longest workload; shorter ones are padded and ``n_requests`` says how
many are real).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FleetState", "allocate_state"]

# ------------------------------------------------------------------ request states (QI_STATE)
Q_FUTURE, Q_WAITING, Q_RUNNING, Q_DONE, Q_REJECTED = range(5)
# request int columns
QI_STATE, QI_REPLICA, QI_NEXT, QI_TARGET, QI_PREFILLED, QI_GENERATED, QI_KV, QI_BLOCKS, QI_PREEMPT, QI_SWAPPED = range(
    10
)
N_QI = 10
# request float columns
QF_FIRST_T, QF_FINISH_T, QF_ADMIT_T = range(3)
N_QF = 3

# ------------------------------------------------------------------ replica states (RI_STATE)
R_EMPTY, R_PROVISIONING, R_READY, R_DRAINING = range(4)
# replica int columns
(
    RI_STATE,
    RI_NRUN,
    RI_HEAD,
    RI_TAIL,
    RI_NWAIT,
    RI_FREE,
    RI_BUSY,
    RI_KIND,
    RI_DEC_B,
    RI_OUTSTANDING,
    RI_PREEMPTS,
    RI_DEC_CTX,
    RI_TOKENS,
    RI_LAST_PREEMPTED,
    RI_RUN_J,
    RI_RUN_B,
    RI_RUN_C0,
    RI_RUN_MAXJ,
    RI_RUN_SYNC_J,
) = range(19)
N_RI = 19
# A *decode run* (kernels.py docstring) is a maximal chain of pure-decode iterations of one batch: RI_RUN_J
# is the in-flight iteration's index in it, RI_RUN_B its batch, RI_RUN_C0 the context of its first
# iteration, RI_RUN_MAXJ the last index reachable without a completion or a missing block (-1 = not yet
# computed); RF_RUN_ANCHOR is the run's start time and RF_RUN_FREQ its clock. Jumps over a run update the
# replica's counters and clock only; the running sequences' QI_KV / QI_GENERATED / QI_BLOCKS and RI_FREE
# catch up (``kernels._materialize``) from RI_RUN_SYNC_J, the index they describe, before anything reads
# them and at the end of every ``advance``.
KIND_IDLE, KIND_MIXED, KIND_DECODE = 0, 1, 2
# replica float columns
(
    RF_LAUNCH_T,
    RF_READY_T,
    RF_ITER_START,
    RF_ITER_END,
    RF_FREQ,
    RF_BUSY_S,
    RF_PREFILL_S,
    RF_DECODE_S,
    RF_ENERGY_J,
    RF_RUN_ANCHOR,
    RF_RUN_FREQ,
    RF_LAZY_UNTIL,
    RF_RUN_FIRST_S,
    RF_RUN_GROWTH_S,
    RF_RUN_FREQ_FACTOR,
) = range(15)
N_RF = 15
# RF_LAZY_UNTIL: while the fleet's clock is below it, the replica only moves along its decode run (no
# completion, missing block or admission can happen before it), so the arrival loop may leave it behind
# and routing reads its outstanding tokens from the run's closed form (0 = not known to be safe).
# RF_RUN_FIRST_S / RF_RUN_GROWTH_S / RF_RUN_FREQ_FACTOR: the run's constants in profile.decode_run_end_from.

# ------------------------------------------------------------------ fleet (env) columns
EI_NEXT_ARRIVAL, EI_RR, EI_N_DONE, EI_PREEMPTIONS, EI_REJECTED, EI_N_REQUESTS, EI_ITERATIONS, EI_FAST_ITERATIONS = range(8)
N_EI = 8
EF_NOW, EF_GONE_BILLED_S, EF_GONE_BUSY_S, EF_GONE_ENERGY_J, EF_GONE_PREFILL_S, EF_GONE_DECODE_S = range(6)
N_EF = 6


@dataclass
class FleetState:
    """Mutable state of ``E`` fleets. Every array's first axis is the fleet (env) index."""

    arrival_s: np.ndarray  # (E, N) float64 arrival times, non-decreasing; padding = +inf
    prompt_tokens: np.ndarray  # (E, N) int64
    output_tokens: np.ndarray  # (E, N) int64 (>= 1)
    qi: np.ndarray  # (E, N, N_QI) int64 per-request progress (QI_* columns)
    qf: np.ndarray  # (E, N, N_QF) float64 first-token / finish / first-admission times (-1 = not yet)
    ri: np.ndarray  # (E, R, N_RI) int64 per-replica counters (RI_* columns)
    rf: np.ndarray  # (E, R, N_RF) float64 per-replica times and accumulators (RF_* columns)
    running: np.ndarray  # (E, R, S) int64 request ids of running sequences, admission order
    sched: np.ndarray  # (E, R, S) int64 tokens scheduled for each running sequence this iteration
    ei: np.ndarray  # (E, N_EI) int64 fleet counters (EI_* columns)
    ef: np.ndarray  # (E, N_EF) float64 fleet clock and accumulators of released replicas (EF_*)
    done_ids: np.ndarray  # (E, N) int64 request ids in completion order (first ei[EI_N_DONE] valid)

    @property
    def n_envs(self) -> int:
        return int(self.qi.shape[0])

    @property
    def n_slots(self) -> int:
        return int(self.ri.shape[1])


def allocate_state(
    arrivals: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_slots: int, max_num_seqs: int
) -> FleetState:
    """Empty fleets (no replicas) for the given ``(arrival_s, prompt_tokens, output_tokens)`` per env."""
    e = len(arrivals)
    n = max(1, max(a[0].shape[0] for a in arrivals))
    arr = np.full((e, n), np.inf)
    prompt = np.ones((e, n), dtype=np.int64)
    output = np.ones((e, n), dtype=np.int64)
    ei = np.zeros((e, N_EI), dtype=np.int64)
    for k, (a, p, o) in enumerate(arrivals):
        m = a.shape[0]
        arr[k, :m], prompt[k, :m], output[k, :m] = a, p, o
        ei[k, EI_N_REQUESTS] = m
    qi = np.zeros((e, n, N_QI), dtype=np.int64)
    qi[:, :, QI_REPLICA] = -1
    qi[:, :, QI_NEXT] = -1
    qi[:, :, QI_TARGET] = prompt
    qf = np.full((e, n, N_QF), -1.0)
    ri = np.zeros((e, n_slots, N_RI), dtype=np.int64)
    ri[:, :, RI_HEAD] = -1
    ri[:, :, RI_TAIL] = -1
    rf = np.zeros((e, n_slots, N_RF))
    rf[:, :, RF_FREQ] = 1.0
    return FleetState(
        arrival_s=arr,
        prompt_tokens=prompt,
        output_tokens=output,
        qi=qi,
        qf=qf,
        ri=ri,
        rf=rf,
        running=np.full((e, n_slots, max_num_seqs), -1, dtype=np.int64),
        sched=np.zeros((e, n_slots, max_num_seqs), dtype=np.int64),
        ei=ei,
        ef=np.zeros((e, N_EF)),
        done_ids=np.full((e, n), -1, dtype=np.int64),
    )
