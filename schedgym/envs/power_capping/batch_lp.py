"""Low-priority servers as backlogged batch servers (``lp_workload="batch"``).

POLCA states its rule on throughput: high priority within 1 %, low priority within 2 % (Patel et al.,
ASPLOS'24; ``env-power-capping.md``). A server fed by an open-loop arrival stream below saturation
completes every request whatever its clock, so its throughput loss is zero under any cap that does not
saturate it and the rule would price LP capping at nothing (``benchmarks/power_rule_probe.py``). Low
priority in an inference cluster is offline work (batch inference, evaluation, synthetic data): a queue
that never empties, whose throughput is what a cap takes away. That is what this module models.

A backlogged server keeps its batch full, so its state does not depend on its history: at a fixed clock
it is a stationary process of iterations (chunked prefill of new prompts, decode of the running batch).
:func:`saturated_server_table` runs one such server on the serving core (the same kernels, profile and
power model as every other server of the row) at each clock level, on a backlog of requests whose token
counts are drawn from the workload, and records its 1-s power and tokens processed. In the row, LP server
``k`` at clock level ``c`` reads row ``c`` of the table at ``(t + phase_k) mod L``, with ``phase_k``
drawn at reset, so the servers' prefill spikes do not coincide. A cap switches the row of the table at
the second it takes effect (a full batch has no queue to drain). The LP class's loss is its throughput
against the uncapped reference row: ``1 - tokens(controlled) / tokens(reference)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchTable", "saturated_server_table", "TABLE_SECONDS", "WARMUP_SECONDS"]

#: Length of each level's recorded series (s): LP servers read it at 30+ phases, so it is long enough
#: that they do not repeat each other within an episode's decision-relevant scale (minutes).
TABLE_SECONDS = 1800
#: Seconds run before recording: the batch fills (up to 64 sequences) in the first seconds.
WARMUP_SECONDS = 120


@dataclass(frozen=True)
class BatchTable:
    """1-s power and tokens of one backlogged server per clock level (rows: ``levels_mhz``)."""

    levels_mhz: np.ndarray  # (n_levels,) float64
    power_w: np.ndarray  # (n_levels, TABLE_SECONDS) float64 server watts
    tokens: np.ndarray  # (n_levels, TABLE_SECONDS) float64 prompt + output tokens processed


def _backlog(prompt: np.ndarray, output: np.ndarray, m: int, seed: int):
    from schedgym.envs.power_capping.workload import RowRequests

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, prompt.shape[0], m)
    return RowRequests(
        arrival_s=np.zeros(m),
        prompt_tokens=np.ascontiguousarray(prompt[idx], dtype=np.int64),
        output_tokens=np.ascontiguousarray(np.maximum(output[idx], 1), dtype=np.int64),
        server=np.zeros(m, dtype=np.int64),
    )


def _run_level(serving_arrays: tuple, max_num_seqs: int, kv_blocks: int, reqs, mhz: float, seconds: int):
    """Power and tokens per second of one server with the backlog ``reqs`` at a fixed clock; ``None``
    if the backlog ran out (the caller retries with a larger one)."""
    from schedgym.envs.power_capping import dynamics as dyn
    from schedgym.envs.power_capping.types import RowParams
    from schedgym.sim.serving.state import EI_N_DONE, EI_N_REQUESTS

    pi, pf, prof = serving_arrays
    caps = np.array([mhz])
    p = RowParams(
        n_servers=1, n_hp_servers=1, budget_w=np.inf, horizon_s=seconds, decision_interval_s=seconds,
        actuation_delay_s=0, brake_delay_s=1, brake_duration_s=1, lp_caps_mhz=caps, hp_caps_mhz=caps,
    )  # fmt: skip
    s = dyn.new_state(p, reqs, max_num_seqs, kv_blocks)
    tokens = np.zeros(seconds)
    prev = 0.0
    for t in range(1, seconds + 1):
        dyn.run_seconds_py(s, p, t, pi, pf, prof)
        now = float(dyn.tokens_processed(s)[0])
        tokens[t - 1] = now - prev
        prev = now
    ei = s.fleet.ei[0]
    if ei[EI_N_DONE] + max_num_seqs >= ei[EI_N_REQUESTS]:
        return None
    return s.power_w[:seconds].copy(), tokens


_CACHE: dict[tuple, BatchTable] = {}


def saturated_server_table(
    cache_key: tuple,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    levels_mhz: tuple[float, ...],
    serving_arrays: tuple,
    max_num_seqs: int,
    kv_blocks: int,
    seed: int = 0,
) -> BatchTable:
    """The :class:`BatchTable` of one backlogged server at each clock in ``levels_mhz`` (module docstring).

    Deterministic (``seed``) and cached per ``cache_key`` (which must identify the model, the token
    distribution and the levels): a few seconds the first time, nothing after.
    """
    key = (cache_key, tuple(float(x) for x in levels_mhz), int(seed))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    seconds = WARMUP_SECONDS + TABLE_SECONDS
    levels = [float(x) for x in levels_mhz]
    power = np.empty((len(levels), TABLE_SECONDS))
    tokens = np.empty_like(power)
    m = 4096
    done: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for mhz in sorted(set(levels), reverse=True):  # the fastest clock drains the backlog first
        while True:
            out = _run_level(serving_arrays, max_num_seqs, kv_blocks, _backlog(prompt_tokens, output_tokens, m, seed),
                             mhz, seconds)
            if out is not None:
                break
            m *= 2
        done[mhz] = out[0][WARMUP_SECONDS:], out[1][WARMUP_SECONDS:]
    for row, mhz in enumerate(levels):
        power[row], tokens[row] = done[mhz]
    table = BatchTable(levels_mhz=np.asarray(levels_mhz, dtype=np.float64), power_w=power, tokens=tokens)
    for a in (table.levels_mhz, table.power_w, table.tokens):
        a.setflags(write=False)
    _CACHE[key] = table
    return table

