"""LLM request traces shared by GPUAutoscaling, PowerCapping and AgentScheduling.

Sources:
- ``"azure-code"`` / ``"azure-conv"``: the Azure LLM Inference Trace 2023 (CC-BY 4.0), shipped in
  ``schedgym/data/azure_llm_inference_2023``. Attribution: Patel et al., "Splitwise: Efficient
  generative LLM inference using phase splitting", ISCA 2024.
- ``"trace:<path>"``: any CSV or JSONL file with an arrival time and prompt/output token counts; column
  names via ``columns={"time": ..., "prompt_tokens": ..., "output_tokens": ...}`` (defaults: the Azure
  names ``TIMESTAMP``, ``ContextTokens``, ``GeneratedTokens``) and ``time_unit`` in ``"s"``, ``"ms"`` or
  ``"datetime"``.

A trace is returned with arrivals in seconds relative to its first request, sorted.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RequestTrace",
    "TraceFormatError",
    "DEFAULT_TRACE_COLUMNS",
    "AZURE_TRACES",
    "load_azure_trace",
    "load_trace_file",
    "load_workload_trace",
    "scale_rate",
    "check_workload",
]

#: Column names of the Azure LLM inference traces, the default for ``trace:`` files.
DEFAULT_TRACE_COLUMNS = {"time": "TIMESTAMP", "prompt_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"}
AZURE_TRACES = {
    "azure-code": "AzureLLMInferenceTrace_code.csv",
    "azure-conv": "AzureLLMInferenceTrace_conv.csv",
}
TIME_UNITS = ("s", "ms", "datetime")


class TraceFormatError(ValueError):
    """A trace file that cannot be parsed; the message names the file, line and reason."""


@dataclass(frozen=True)
class RequestTrace:
    """LLM requests in arrival order."""

    arrival_s: np.ndarray  # (n,) float64, seconds since the first arrival, non-decreasing
    prompt_tokens: np.ndarray  # (n,) int64, >= 1
    output_tokens: np.ndarray  # (n,) int64, >= 1
    source: str

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    @property
    def mean_rate_per_s(self) -> float:
        return len(self) / max(self.duration_s, 1e-9)


def _parse_time(raw: str, unit: str) -> float:
    if unit == "datetime":
        # Azure timestamps carry 7 fractional digits; %f takes at most 6 (README of the dataset).
        text = raw.strip()
        if "." in text:
            head, frac = text.split(".", 1)
            text = f"{head}.{frac[:6]}"
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()
    value = float(raw)
    if not np.isfinite(value):
        raise ValueError(f"time {raw!r} is not finite")
    return value / 1000.0 if unit == "ms" else value


def _parse_count(raw: Any, what: str) -> int:
    value = float(raw)
    if not value.is_integer():
        raise ValueError(f"{what} {raw!r} is not an integer")
    if value < 0:
        raise ValueError(f"{what} {raw!r} is negative")
    return int(value)


def load_trace_file(
    path: str | Path,
    columns: dict[str, str] | None = None,
    time_unit: str = "datetime",
    source: str | None = None,
) -> RequestTrace:
    """Load a CSV (``.csv``) or JSON-lines (``.jsonl``/``.ndjson``) request trace.

    Raises :class:`TraceFormatError` naming the file, line and reason for a bad row, and
    ``ValueError`` naming the parameter for bad ``columns``/``time_unit``.
    """
    path = Path(path)
    cols = dict(DEFAULT_TRACE_COLUMNS)
    if columns is not None:
        if not isinstance(columns, dict) or not set(columns) <= set(DEFAULT_TRACE_COLUMNS):
            raise ValueError(
                f"trace_columns must be a dict with keys among {sorted(DEFAULT_TRACE_COLUMNS)}, got {columns!r}"
            )
        cols.update(columns)
    if time_unit not in TIME_UNITS:
        raise ValueError(f"trace_time_unit must be one of {list(TIME_UNITS)}, got {time_unit!r}")
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    suffix = path.suffix.lower()
    times: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []

    def add(lineno: int, record: dict[str, Any]) -> None:
        try:
            missing = [c for c in cols.values() if c not in record]
            if missing:
                raise ValueError(f"missing column(s) {missing}")
            times.append(_parse_time(str(record[cols["time"]]), time_unit))
            prompts.append(_parse_count(record[cols["prompt_tokens"]], cols["prompt_tokens"]))
            outputs.append(_parse_count(record[cols["output_tokens"]], cols["output_tokens"]))
        except (ValueError, TypeError) as exc:
            raise TraceFormatError(f"{path}:{lineno}: {exc}") from None

    if suffix in (".jsonl", ".ndjson"):
        with path.open() as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TraceFormatError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise TraceFormatError(f"{path}:{lineno}: expected a JSON object per line")
                add(lineno, record)
    elif suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in cols.values() if c not in header]
            if missing:
                raise TraceFormatError(f"{path}:1: header {header} lacks column(s) {missing} (set trace_columns)")
            for record in reader:
                add(reader.line_num, record)
    else:
        raise ValueError(f"trace file {path} must end in .csv, .jsonl or .ndjson")
    if not times:
        raise TraceFormatError(f"{path}: the trace has no requests")
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order[0]]
    return RequestTrace(
        arrival_s=t,
        prompt_tokens=np.maximum(np.asarray(prompts, dtype=np.int64)[order], 1),
        output_tokens=np.maximum(np.asarray(outputs, dtype=np.int64)[order], 1),
        source=source or f"trace:{path}",
    )


@functools.lru_cache(maxsize=4)
def load_azure_trace(name: str) -> RequestTrace:
    """The shipped Azure LLM inference trace ``"azure-code"`` or ``"azure-conv"`` (cached, read-only)."""
    if name not in AZURE_TRACES:
        raise ValueError(f"unknown Azure trace {name!r}; choose one of {sorted(AZURE_TRACES)}")
    ref = resources.files("schedgym.data").joinpath("azure_llm_inference_2023", AZURE_TRACES[name])
    with resources.as_file(ref) as p:
        trace = load_trace_file(p, time_unit="datetime", source=name)
    for arr in (trace.arrival_s, trace.prompt_tokens, trace.output_tokens):
        arr.setflags(write=False)
    return trace


def check_workload(workload: object, generated: tuple[str, ...]) -> str:
    """Validate a ``workload`` kwarg: one of the env's ``generated`` names, an Azure trace or ``trace:<path>``."""
    if isinstance(workload, str) and (workload in generated or workload in AZURE_TRACES or workload.startswith("trace:")):
        return workload
    raise ValueError(f"workload must be one of {list(generated) + sorted(AZURE_TRACES)} or 'trace:<path>', got {workload!r}")


def load_workload_trace(
    workload: str, trace_columns: dict[str, str] | None = None, trace_time_unit: str = "datetime"
) -> RequestTrace:
    """Resolve ``"azure-code"``, ``"azure-conv"`` or ``"trace:<path>"`` to a :class:`RequestTrace`."""
    if workload in AZURE_TRACES:
        return load_azure_trace(workload)
    if workload.startswith("trace:"):
        return load_trace_file(workload[len("trace:") :], trace_columns, trace_time_unit, source=workload)
    raise ValueError(f"workload must be one of {sorted(AZURE_TRACES)} or 'trace:<path>', got {workload!r}")


def scale_rate(trace: RequestTrace, rate_scale: float, rng: np.random.Generator) -> RequestTrace:
    """Thin (``rate_scale < 1``) or replicate (``> 1``) arrivals, keeping the trace's time profile.

    Each request is kept ``floor(rate_scale)`` times plus once more with probability
    ``frac(rate_scale)``; replicas are jittered uniformly within the gap to the next arrival so that
    they do not all land on the same instant. Token counts are those of the original request.
    """
    if rate_scale == 1.0:
        return trace
    if not rate_scale > 0:
        raise ValueError(f"rate_scale must be > 0, got {rate_scale!r}")
    n = len(trace)
    copies = np.full(n, int(np.floor(rate_scale)), dtype=np.int64)
    copies += rng.random(n) < (rate_scale - np.floor(rate_scale))
    idx = np.repeat(np.arange(n), copies)
    if idx.size == 0:
        idx = np.array([0])
    gaps = np.diff(trace.arrival_s, append=trace.arrival_s[-1])
    first_copy = np.ones(idx.size, dtype=bool)
    first_copy[1:] = idx[1:] != idx[:-1]
    jitter = np.where(first_copy, 0.0, rng.random(idx.size) * gaps[idx])
    t = trace.arrival_s[idx] + jitter
    order = np.argsort(t, kind="stable")
    return RequestTrace(
        arrival_s=t[order],
        prompt_tokens=trace.prompt_tokens[idx][order],
        output_tokens=trace.output_tokens[idx][order],
        source=f"{trace.source}*{rate_scale:g}",
    )
