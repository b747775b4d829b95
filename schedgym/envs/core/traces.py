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

Trace files are untrusted input, bounded before anything is allocated from them: at most
``MAX_TRACE_REQUESTS`` rows, times within ``MAX_ABS_TIME_S`` of the epoch and a span of at most
``MAX_TRACE_DURATION_S`` (31 days; the envs allocate per-second or per-interval arrays over it), token
counts in ``[0, MAX_TOKENS]``; numbers are ASCII decimal (no Unicode digits), a UTF-8 BOM is tolerated.
Every violation is a :class:`TraceFormatError` naming ``file:line``.
"""

from __future__ import annotations

import array
import csv
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from schedgym.envs.core.validation import json_object, shown_value

__all__ = [
    "RequestTrace",
    "TraceWindow",
    "TraceFormatError",
    "DEFAULT_TRACE_COLUMNS",
    "AZURE_TRACES",
    "load_azure_trace",
    "load_trace_file",
    "load_workload_trace",
    "scale_rate",
    "scale_rate_shifted",
    "check_workload",
]

#: Column names of the Azure LLM inference traces, the default for ``trace:`` files.
DEFAULT_TRACE_COLUMNS = {"time": "TIMESTAMP", "prompt_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"}
AZURE_TRACES = {
    "azure-code": "AzureLLMInferenceTrace_code.csv",
    "azure-conv": "AzureLLMInferenceTrace_conv.csv",
}
TIME_UNITS = ("s", "ms", "datetime")
#: Longest span of a trace (first to last arrival): envs allocate arrays over it.
MAX_TRACE_DURATION_S = 31 * 86400.0
#: Largest |time| in seconds (about 3,000 years from the epoch): beyond it float seconds lose precision.
MAX_ABS_TIME_S = 1e11
#: Most prompt or output tokens of one request.
MAX_TOKENS = 10_000_000
#: Most requests in one trace file.
MAX_TRACE_REQUESTS = 5_000_000
_DATETIME_CHARS = re.compile(r"[0-9 :.-]+", re.ASCII)
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)


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


def _ascii_number(raw: str, what: str) -> float:
    text = raw.strip()
    if len(text) > 40 or not _NUMBER_RE.fullmatch(text):
        raise ValueError(f"{what} {shown_value(text)} is not an ASCII decimal number")
    return float(text)


def _parse_time(raw: str, unit: str) -> float:
    if unit == "datetime":
        # Azure timestamps carry 7 fractional digits; %f takes at most 6 (README of the dataset).
        text = raw.strip()
        if not text.isascii() or len(text) > 40 or not _DATETIME_CHARS.fullmatch(text):
            raise ValueError(f"time {shown_value(text)} is not an ASCII 'YYYY-MM-DD HH:MM:SS[.ffffff]' datetime")
        if "." in text:
            head, frac = text.split(".", 1)
            text = f"{head}.{frac[:6]}"
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()
    value = _ascii_number(raw, "time")
    if not np.isfinite(value):
        raise ValueError(f"time {raw!r} is not finite")
    value = value / 1000.0 if unit == "ms" else value
    if abs(value) > MAX_ABS_TIME_S:
        raise ValueError(f"time {raw.strip()!r} ({unit}) is beyond {MAX_ABS_TIME_S:.0e} s from the epoch")
    return value


def _parse_count(raw: Any, what: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{what} {raw!r} is not an integer")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not (np.isfinite(raw) and raw.is_integer()):
            raise ValueError(f"{what} {raw!r} is not an integer")
        if abs(raw) > MAX_TOKENS:
            raise ValueError(f"{what} {raw!r} is out of range [0, {MAX_TOKENS}]")
        value = int(raw)
    elif isinstance(raw, str):
        f = _ascii_number(raw, what)
        if not (np.isfinite(f) and f.is_integer()):
            raise ValueError(f"{what} {raw.strip()!r} is not an integer")
        if abs(f) > MAX_TOKENS:
            raise ValueError(f"{what} {shown_value(raw.strip())} is out of range [0, {MAX_TOKENS}]")
        value = int(f)
    else:
        raise ValueError(f"{what} must be a number, got a {type(raw).__name__}")
    if value < 0:
        raise ValueError(f"{what} {value} is negative")
    if value > MAX_TOKENS:
        shown = str(value) if value < 10**40 else f"a {len(str(value))}-digit number"
        raise ValueError(f"{what} {shown} is out of range [0, {MAX_TOKENS}]")
    return value


def utf8_error_line(path: Path) -> str:
    """``"LINE"`` (or ``"LINE:COLUMN"``) of the first byte in ``path`` that is not valid UTF-8."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"{lineno}:{exc.start + 1}"
    return "?"


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
        if (
            not isinstance(columns, dict)
            or not set(columns) <= set(DEFAULT_TRACE_COLUMNS)
            or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in columns.values())
        ):
            raise ValueError(
                f"trace_columns must be a dict with keys among {sorted(DEFAULT_TRACE_COLUMNS)} and column names "
                f"as values, got {str(columns)[:200]}"
            )
        cols.update(columns)
    if time_unit not in TIME_UNITS:
        raise ValueError(f"trace_time_unit must be one of {list(TIME_UNITS)}, got {time_unit!r}")
    if path.is_dir():
        raise TraceFormatError(f"trace file {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"trace file {path} must end in .csv, .jsonl or .ndjson")
    # Typed arrays, not lists of Python objects: 8 bytes a value.
    times = array.array("d")
    prompts = array.array("q")
    outputs = array.array("q")
    lines = array.array("q")

    def add(lineno: int, record: dict[str, Any]) -> None:
        if len(times) >= MAX_TRACE_REQUESTS:
            raise TraceFormatError(f"{path}:{lineno}: more than {MAX_TRACE_REQUESTS} requests in one trace")
        try:
            missing = [c for c in cols.values() if c not in record]
            if missing:
                raise ValueError(f"missing column(s) {missing}")
            t = record[cols["time"]]
            if not isinstance(t, (str, int, float)) or isinstance(t, bool):
                raise ValueError(f"time must be a number or a string, got a {type(t).__name__}")
            if isinstance(t, int) and abs(t) > 10**15:
                raise ValueError(f"time is beyond {MAX_ABS_TIME_S:.0e} s from the epoch")
            times.append(_parse_time(str(t), time_unit))
            prompts.append(_parse_count(record[cols["prompt_tokens"]], cols["prompt_tokens"]))
            outputs.append(_parse_count(record[cols["output_tokens"]], cols["output_tokens"]))
            lines.append(lineno)
        except (ValueError, TypeError, OverflowError) as exc:
            del times[len(lines) :], prompts[len(lines) :], outputs[len(lines) :]
            raise TraceFormatError(f"{path}:{lineno}: {exc}") from None

    lineno = 0
    try:
        if suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    if len(line) > 1_000_000:
                        raise TraceFormatError(f"{path}:{lineno}: line longer than 1,000,000 characters")
                    try:
                        record = json_object(line, f"{path}:{lineno}")
                    except ValueError as exc:
                        raise TraceFormatError(str(exc)) from None
                    add(lineno, record)
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                try:
                    header = reader.fieldnames or []
                except csv.Error as exc:
                    raise TraceFormatError(f"{path}:1: malformed CSV header ({exc})") from None
                missing = [c for c in cols.values() if c not in header]
                if missing:
                    # The header itself is not echoed: the file may not be a trace at all (a secret).
                    raise TraceFormatError(
                        f"{path}:1: the header (of {len(header)} columns) lacks column(s) {missing} (set trace_columns)"
                    )
                try:
                    for record in reader:
                        lineno = reader.line_num
                        add(reader.line_num, record)
                except csv.Error as exc:
                    raise TraceFormatError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    except UnicodeDecodeError:
        raise TraceFormatError(f"{path}:{utf8_error_line(path)}: not valid UTF-8") from None
    if not times:
        raise TraceFormatError(f"{path}:1: the trace has no requests")
    t = np.frombuffer(times, dtype=np.float64)
    first, last = int(np.argmin(t)), int(np.argmax(t))
    span = float(t[last] - t[first])
    if span > MAX_TRACE_DURATION_S:
        raise TraceFormatError(
            f"{path}:{lines[last]}: the trace spans {span:.3g} s from its first request (line {lines[first]}), "
            f"more than the limit of {MAX_TRACE_DURATION_S:.0f} s (31 days)"
        )
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order[0]]
    return RequestTrace(
        arrival_s=t,
        prompt_tokens=np.maximum(np.frombuffer(prompts, dtype=np.int64)[order], 1),
        output_tokens=np.maximum(np.frombuffer(outputs, dtype=np.int64)[order], 1),
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


def _check_scaled_size(trace: RequestTrace, rate_scale: float) -> None:
    """Bound the scaled trace before anything allocates: rate_scale=1e9 on a 19k-request trace would need
    150 TB."""
    n = len(trace)
    if n * rate_scale > MAX_TRACE_REQUESTS:
        raise ValueError(
            f"rate_scale={rate_scale!r} would make {n * rate_scale:.3g} requests from {trace.source}'s {n}; "
            f"at most {MAX_TRACE_REQUESTS} (rate_scale <= {MAX_TRACE_REQUESTS / n:.6g})"
        )


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
    _check_scaled_size(trace, rate_scale)
    copies = np.full(n, int(np.floor(rate_scale)), dtype=np.int64)
    copies += rng.random(n) < (rate_scale - np.floor(rate_scale))
    idx = np.repeat(np.arange(n), copies)
    if idx.size == 0:
        idx = np.array([0])
    gaps = np.diff(trace.arrival_s, append=trace.arrival_s[-1])
    first_copy = np.ones(idx.size, dtype=bool)
    first_copy[1:] = idx[1:] != idx[:-1]
    jitter = np.where(first_copy, 0.0, rng.random(idx.size) * gaps[idx])
    return _copies_in_time_order(trace, idx, trace.arrival_s[idx] + jitter, f"{trace.source}*{rate_scale:g}")


def _copies_in_time_order(trace: RequestTrace, idx: np.ndarray, t: np.ndarray, source: str) -> RequestTrace:
    """Requests ``idx`` of ``trace`` (with repeats) arriving at ``t``, sorted by arrival."""
    order = np.argsort(t, kind="stable")
    return RequestTrace(
        arrival_s=t[order],
        prompt_tokens=trace.prompt_tokens[idx][order],
        output_tokens=trace.output_tokens[idx][order],
        source=source,
    )


def scale_rate_shifted(
    trace: RequestTrace, rate_scale: float, rng: np.random.Generator, max_shift_s: float = 300.0
) -> RequestTrace:
    """Scale a trace's rate by superposing independent, time-shifted copies of it.

    :func:`scale_rate` replicates each request within the gap to the next one, so ``k`` copies repeat
    the trace's second-to-minute bursts ``k`` times in step: the scaled trace is ``k`` times as bursty as
    ``k`` independent user populations would be. Here copy ``c`` (``floor(rate_scale)`` whole copies,
    plus one thinned to ``frac(rate_scale)``) is the trace shifted by ``U(0, max_shift_s)`` seconds,
    circularly within its duration: the hour-scale profile is kept (smoothed over ``max_shift_s``), the
    bursts of different copies fall at different times, and token counts are the original requests'.
    Copy 0 is the trace itself. ``rate_scale <= 1`` thins as :func:`scale_rate` does.
    """
    if rate_scale <= 1.0:
        return scale_rate(trace, rate_scale, rng)
    if not max_shift_s > 0:
        raise ValueError(f"max_shift_s must be > 0, got {max_shift_s!r}")
    n = len(trace)
    _check_scaled_size(trace, rate_scale)
    duration = float(trace.arrival_s.max()) + 1e-9 if n else 1.0
    whole = int(np.floor(rate_scale))
    times, idx = [], []
    for c in range(whole + 1):
        keep = np.arange(n) if c < whole else np.flatnonzero(rng.random(n) < rate_scale - whole)
        shift = 0.0 if c == 0 else float(rng.uniform(0.0, max_shift_s))
        times.append((trace.arrival_s[keep] + shift) % duration)
        idx.append(keep)
    return _copies_in_time_order(trace, np.concatenate(idx), np.concatenate(times), f"{trace.source}*{rate_scale:g}~shifted")


@dataclass(frozen=True)
class TraceWindow:
    """Which part of a trace an episode replays: the validated ``trace_window_hours``/``trace_offset_hours``.

    Both None (the default) replays the whole trace, as the leaderboard does. ``window_s`` alone draws a
    new offset in ``[0, duration - window_s]`` from each ``reset`` seed, so ``schedgym run --episodes N``
    replays N different windows; ``offset_s`` fixes it (with ``window_s``: one reproducible window;
    without: the rest of the trace from the offset).
    """

    window_s: float | None
    offset_s: float | None
    duration_s: float  # of the whole trace

    @classmethod
    def make(cls, trace: RequestTrace, window_hours: float | None, offset_hours: float | None) -> TraceWindow:
        dur_h = trace.duration_s / 3600.0
        window_s = offset_s = None
        if window_hours is not None:
            window_s = 3600.0 * _check_hours("trace_window_hours", window_hours, trace, dur_h, positive=True)
        if offset_hours is not None:
            room_h = dur_h - (window_s or 0.0) / 3600.0
            offset_s = 3600.0 * _check_hours("trace_offset_hours", offset_hours, trace, room_h, positive=False)
            if window_s is None and offset_s >= trace.duration_s:
                raise ValueError(f"trace_offset_hours={offset_hours!r} leaves no request of {trace.source} "
                                 f"(its last arrives at {dur_h:.4g} h)")
        return cls(window_s, offset_s, trace.duration_s)

    @property
    def full(self) -> bool:
        return self.window_s is None and self.offset_s is None

    @property
    def length_s(self) -> float:
        """Seconds an episode replays (the whole trace: its last arrival)."""
        return self.duration_s - (self.offset_s or 0.0) if self.window_s is None else self.window_s

    def draw_offset(self, rng: np.random.Generator) -> float:
        """The episode's offset: fixed, 0 for the whole trace, else uniform over the possible windows."""
        if self.offset_s is not None:
            return self.offset_s
        if self.window_s is None:
            return 0.0
        return float(rng.uniform(0.0, self.duration_s - self.window_s))

    def cut(self, trace: RequestTrace, offset_s: float) -> RequestTrace:
        """The requests arriving in ``[offset_s, offset_s + length_s)`` (the last arrival included when the
        window reaches it), with times shifted to start at the window's start."""
        if self.full:
            return trace
        end = offset_s + self.length_s
        t = trace.arrival_s
        keep = (t >= offset_s) & ((t < end) | (end >= self.duration_s))
        return RequestTrace(
            arrival_s=t[keep] - offset_s,
            prompt_tokens=trace.prompt_tokens[keep],
            output_tokens=trace.output_tokens[keep],
            source=f"{trace.source}[{offset_s / 3600.0:.4g}h+{self.length_s / 3600.0:.4g}h]",
        )


def _check_hours(name: str, value: object, trace: RequestTrace, high_h: float, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number of hours or None, got {value!r}")
    v = float(value)
    if (v <= 0.0 if positive else v < 0.0) or v > high_h + 1e-12:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} must be {bound} and <= {high_h:.6g} h for {trace.source} "
                         f"(its requests span {trace.duration_s / 3600.0:.6g} h)")
    return min(v, high_h)
