"""LLM inference latency and power from the SplitwiseSim profile table (MIT).

Source: ``schedgym/data/splitwise_sim_perf_model/perf_model.csv`` from github.com/Mutinifni/splitwise-sim
(commit 8f99e7d, ``data/perf_model.csv``); Patel et al., "Splitwise", ISCA 2024.

The table holds three one-dimensional sweeps around the point (prompt 512, batch 1, output 128) for each
(model, hardware, tensor_parallel): a prompt-size sweep at batch 1, a batch sweep at prompt 512 and an
output-length sweep. Each configuration was measured 5 times; we take the median. Times are in ms in the
file and in seconds here. Power columns (``peak_power``/``average_power``, normalised to GPU TDP) are
only measured on A100 rows.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["PerfProfile", "load_perf_profile", "available_profiles"]

_REF_PROMPT, _REF_BATCH, _REF_OUTPUT = 512, 1, 128


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, str], ...]:
    ref = resources.files("schedgym.data").joinpath("splitwise_sim_perf_model", "perf_model.csv")
    with ref.open() as f:
        return tuple(csv.DictReader(f))


def available_profiles() -> list[tuple[str, str, int]]:
    """All ``(model, hardware, tensor_parallel)`` triples in the table."""
    return sorted({(r["model"], r["hardware"], int(r["tensor_parallel"])) for r in _rows()})


@dataclass(frozen=True)
class PerfProfile:
    """Median latency curves of one (model, hardware, tensor_parallel) configuration."""

    model: str
    hardware: str
    tensor_parallel: int
    prompt_sizes: np.ndarray  # (7,) prompt tokens of the batch-1 sweep
    prefill_s: np.ndarray  # (7,) prefill time at batch 1, seconds
    batch_sizes: np.ndarray  # (7,) batch sizes of the prompt-512 sweep
    prefill_batch_s: np.ndarray  # (7,) prefill time of a batch of 512-token prompts, seconds
    decode_step_s: np.ndarray  # (7,) time per decode iteration (one token for every sequence), seconds
    prefill_peak_power: np.ndarray  # (7,) peak power / TDP over the prompt sweep (A100 only, else nan)
    batch_avg_power: np.ndarray  # (7,) average power / TDP over the batch sweep (A100 only, else nan)
    #: (7,) time per decode iteration at batch 1 over the prompt sweep (context grows with the prompt), seconds
    decode_by_prompt_s: np.ndarray | None = None

    def prefill_time_s(self, prompt_tokens: np.ndarray | float) -> np.ndarray:
        """Prefill time of a prompt (or of a batch with this many prompt tokens in total).

        Piecewise-linear in tokens between measured sizes; linear extrapolation through the last two
        points beyond 8192 tokens and proportional below 128.
        """
        x = np.asarray(prompt_tokens, dtype=np.float64)
        xs, ys = self.prompt_sizes, self.prefill_s
        inside = np.interp(x, xs, ys)
        slope_hi = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return np.where(x > xs[-1], ys[-1] + slope_hi * (x - xs[-1]), np.where(x < xs[0], ys[0] * x / xs[0], inside))

    def decode_step_time_s(self, batch: np.ndarray | float) -> np.ndarray:
        """Time of one decode iteration of a batch of ``batch`` sequences (one token each)."""
        b = np.clip(np.asarray(batch, dtype=np.float64), 1.0, None)
        xs, ys = self.batch_sizes, self.decode_step_s
        slope_hi = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return np.where(b > xs[-1], ys[-1] + slope_hi * (b - xs[-1]), np.interp(b, xs, ys))

    def decode_tokens_per_s(self, batch: np.ndarray | float) -> np.ndarray:
        """Output-token throughput of a replica running ``batch`` sequences."""
        b = np.clip(np.asarray(batch, dtype=np.float64), 1.0, None)
        return b / self.decode_step_time_s(b)

    def prefill_tokens_per_s(self, prompt_tokens: float = _REF_PROMPT) -> float:
        return float(prompt_tokens / self.prefill_time_s(prompt_tokens))


@functools.lru_cache(maxsize=None)
def load_perf_profile(
    model: str = "llama2-70b", hardware: str = "a100-80gb", tensor_parallel: int = 8
) -> PerfProfile:
    """Median curves for one configuration; raises ``ValueError`` listing the available ones."""
    rows = [
        r
        for r in _rows()
        if r["model"] == model and r["hardware"] == hardware and int(r["tensor_parallel"]) == tensor_parallel
    ]
    if not rows:
        raise ValueError(
            f"no perf profile for model={model!r}, hardware={hardware!r}, tensor_parallel={tensor_parallel}; "
            f"available (model, hardware, tensor_parallel): {available_profiles()}"
        )

    def sweep(key: str, fixed: dict[str, int], col: str) -> tuple[np.ndarray, np.ndarray]:
        sel: dict[int, list[float]] = {}
        for r in rows:
            if all(int(r[k]) == v for k, v in fixed.items()):
                sel.setdefault(int(r[key]), []).append(float(r[col]))
        xs = np.array(sorted(sel), dtype=np.float64)
        ys = np.array([np.median(sel[int(x)]) for x in xs], dtype=np.float64)
        return xs, ys

    p_sizes, prefill_ms = sweep("prompt_size", {"batch_size": _REF_BATCH, "token_size": _REF_OUTPUT}, "prompt_time")
    b_sizes, prefill_b_ms = sweep("batch_size", {"prompt_size": _REF_PROMPT, "token_size": _REF_OUTPUT}, "prompt_time")
    _, decode_ms = sweep("batch_size", {"prompt_size": _REF_PROMPT, "token_size": _REF_OUTPUT}, "token_time")
    _, decode_by_prompt_ms = sweep(
        "prompt_size", {"batch_size": _REF_BATCH, "token_size": _REF_OUTPUT}, "token_time"
    )
    _, peak = sweep("prompt_size", {"batch_size": _REF_BATCH, "token_size": _REF_OUTPUT}, "peak_power")
    _, avg = sweep("batch_size", {"prompt_size": _REF_PROMPT, "token_size": _REF_OUTPUT}, "average_power")
    peak = np.where(peak > 0, peak, np.nan)
    avg = np.where(avg > 0, avg, np.nan)
    # The batch sweep's prefill is not monotone at the top for some configurations (the README notes
    # anomalous rows); enforce monotonicity so that bigger batches never get faster.
    prefill_b_ms = np.maximum.accumulate(prefill_b_ms)
    decode_ms = np.maximum.accumulate(decode_ms)
    prefill_ms = np.maximum.accumulate(prefill_ms)
    return PerfProfile(
        model=model,
        hardware=hardware,
        tensor_parallel=tensor_parallel,
        prompt_sizes=p_sizes,
        prefill_s=prefill_ms / 1000.0,
        batch_sizes=b_sizes,
        prefill_batch_s=prefill_b_ms / 1000.0,
        decode_step_s=decode_ms / 1000.0,
        prefill_peak_power=peak,
        batch_avg_power=avg,
        decode_by_prompt_s=decode_by_prompt_ms / 1000.0,
    )
