"""Results files: one CSV per (task, policy), rows appended and flushed as episodes finish.

Columns (the spec's, then ours): ``task, task_version, env_id, env_kwargs, instance, seed, policy,
metric, episode_return, episode_length, walltime_s, package_version, actions, date, policy_kwargs,
metrics, extra``. ``env_kwargs``, ``policy_kwargs``, ``metrics`` and ``extra`` are JSON; ``actions`` is
:func:`encode_actions` of the executed actions (after invalid-action replacement), which replay the
episode exactly from ``reset(seed)``.

Files are only ever appended to. A run killed mid-write can leave a last line without its newline;
the next append first ends that line, and readers skip (and report) rows that do not parse.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "ResultsFile",
    "append_row",
    "decode_actions",
    "encode_actions",
    "read_rows",
    "results_path",
    "row_key",
]

COLUMNS = (
    "task",
    "task_version",
    "env_id",
    "env_kwargs",
    "instance",
    "seed",
    "policy",
    "metric",
    "episode_return",
    "episode_length",
    "walltime_s",
    "package_version",
    "actions",
    "date",
    "policy_kwargs",
    "metrics",
    "extra",
)

_ACTIONS_TAG = "rle1:"
#: Longest episode a row may hold (actions); the longest shipped episode has ~6k steps.
MAX_ACTIONS = 5_000_000
#: Largest results file read (bytes): results are untrusted input, bounded before they are read.
MAX_RESULTS_BYTES = 256 * 1024 * 1024
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def encode_actions(actions: Iterable[int]) -> str:
    """``rle1:`` + base64url(zlib(int32 pairs (value, run length))): compact for repeated actions."""
    arr = np.asarray(list(actions), dtype=np.int64)
    if arr.size == 0:
        return _ACTIONS_TAG
    starts = np.flatnonzero(np.r_[True, arr[1:] != arr[:-1]])
    lengths = np.diff(np.r_[starts, arr.size])
    pairs = np.stack([arr[starts], lengths], axis=1).astype("<i4")
    return _ACTIONS_TAG + base64.urlsafe_b64encode(zlib.compress(pairs.tobytes(), 9)).decode("ascii")


def decode_actions(text: str, max_actions: int = MAX_ACTIONS) -> np.ndarray:
    """Inverse of :func:`encode_actions`; ``ValueError`` naming what is wrong with a bad encoding.

    Bounded before allocating: at most ``max_actions`` actions (a zip bomb of long runs is refused).
    """
    if not text.startswith(_ACTIONS_TAG):
        raise ValueError(f"actions must start with {_ACTIONS_TAG!r}, got {text[:12]!r}")
    body = text[len(_ACTIONS_TAG) :]
    if not body:
        return np.zeros(0, dtype=np.int64)
    if len(body) > 8 * max_actions:
        raise ValueError(f"actions encoding is {len(body)} characters long, more than {max_actions} actions can need")
    try:
        packed = base64.urlsafe_b64decode(body.encode("ascii"))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, 8 * max_actions)
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"actions are not valid base64/zlib: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"actions decode to more than {max_actions} (value, length) pairs")
    if not inflater.eof:
        raise ValueError("actions are not valid base64/zlib: the compressed stream is truncated")
    if len(raw) % 8:
        raise ValueError(f"actions decode to {len(raw)} bytes, not a whole number of (value, length) int32 pairs")
    pairs = np.frombuffer(raw, dtype="<i4").reshape(-1, 2).astype(np.int64)
    if (pairs[:, 1] < 1).any():
        raise ValueError("actions hold a run length < 1")
    total = int(pairs[:, 1].sum())
    if total > max_actions:
        raise ValueError(f"actions hold {total} steps, more than the limit of {max_actions}")
    return np.repeat(pairs[:, 0], pairs[:, 1])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "policy"


def results_path(out_dir: str | Path, task_name: str, policy_name: str) -> Path:
    """``DIR/<task>/<policy>.csv``."""
    return Path(out_dir) / _safe(task_name) / f"{_safe(policy_name)}.csv"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def format_row(row: Mapping[str, Any]) -> str:
    """One CSV line (with its newline) for ``row``; dict/list values become JSON."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"results row lacks column(s) {missing}")
    values = [_json(row[c]) if isinstance(row[c], (dict, list, tuple)) else row[c] for c in COLUMNS]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in values])
    text = buf.getvalue()
    # One row per physical line, so a line cut short by a kill never swallows the next row.
    if "\n" in text[:-1] or "\r" in text:
        raise ValueError(f"results row values must not contain line breaks: {row!r}"[:300])
    return text


def append_row(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one row (header first for a new file) atomically: one ``O_APPEND`` write under an
    exclusive ``flock`` of the file, flushed to disk. Nothing already in the file is ever rewritten."""
    import fcntl
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = format_row(row)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            text = ",".join(COLUMNS) + "\n" + text
        else:
            with path.open("rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":  # a run killed mid-line: end that (now unparsable) line first
                    text = "\n" + text
        data = text.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)
    finally:
        os.close(fd)  # also releases the lock


@dataclass
class ResultsFile:
    """Parsed rows of one results CSV plus the lines that did not parse (with reasons)."""

    path: Path
    rows: list[dict[str, Any]]
    bad_lines: list[tuple[int, str]]


_INT_COLS = ("task_version", "seed", "episode_length")
_FLOAT_COLS = ("metric", "episode_return", "walltime_s")
_JSON_COLS = ("env_kwargs", "policy_kwargs", "metrics", "extra")
# ASCII decimal only: int()/float() also take Arabic-Indic and other Unicode digits, and "1_000".
_INT_RE = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?|[+-]?(?:nan|inf)", re.ASCII)


def _parse_int(text: str, column: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"column {column}: {_short(text)} is not an ASCII decimal integer")
    return int(text)


def _parse_float(text: str, column: str = "value") -> float:
    if text == "":
        return math.nan
    if len(text) > 64 or not _FLOAT_RE.fullmatch(text):
        raise ValueError(f"column {column}: {_short(text)} is not an ASCII decimal number")
    return float(text)


def _parse_json(text: str, column: str) -> Any:
    from schedgym.envs.core.validation import json_object

    return json_object(text, f"column {column}") if text else {}


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters (never a whole field of a file)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(text)} chars)"


def read_text_bounded(path: Path, max_bytes: int, what: str) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped); ``ValueError`` naming the file (and line) otherwise."""
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: {what} is {size} bytes, more than the limit of {max_bytes}")
    data = path.read_bytes()[: max_bytes + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: {what} is not valid UTF-8 (byte offset {exc.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_rows(path: str | Path) -> ResultsFile:
    """Rows of a results file with typed values; malformed lines go to ``bad_lines`` with the reason.

    Results files are untrusted: the file is bounded in size before it is read, numbers must be ASCII
    decimal, JSON columns must be objects, and reasons never quote more than a few characters of a field.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    lines = read_text_bounded(path, MAX_RESULTS_BYTES, "results file").split("\n")
    if not lines or not lines[0]:
        return ResultsFile(path, rows, bad)
    try:
        header = next(csv.reader([lines[0].rstrip("\r")]))
    except csv.Error as exc:
        raise ValueError(f"{path}:1: malformed CSV header ({exc})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}:1: header lacks column(s) {missing}")
    # Rows are parsed line by line (rows never span lines): a truncated line is one bad row, no more.
    for line, text in enumerate(lines[1:], start=2):
        if not text:
            continue
        try:
            values = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            bad.append((line, f"malformed CSV line ({exc}; a truncated write?)"))
            continue
        if len(values) != len(header):
            bad.append((line, f"{len(values)} fields, expected {len(header)} (a truncated write?)"))
            continue
        raw = dict(zip(header, values))
        try:
            row: dict[str, Any] = dict(raw)
            for c in _INT_COLS:
                row[c] = _parse_int(raw[c], c)
            for c in _FLOAT_COLS:
                row[c] = _parse_float(raw[c], c)
            for c in _JSON_COLS:
                row[c] = _parse_json(raw[c], c)
        except ValueError as exc:
            bad.append((line, f"unparsable value: {exc}"))
            continue
        row["_line"] = line
        rows.append(row)
    return ResultsFile(path, rows, bad)


def row_key(row: Mapping[str, Any]) -> tuple[int, str, int]:
    """What identifies an episode inside one (task, policy) file: (task version, instance, seed)."""
    return (int(row["task_version"]), str(row["instance"]), int(row["seed"]))


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """CSV files named directly or found (recursively) under directories, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(p.rglob("*.csv")))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no results file or directory: {p}")
    return sorted(set(out))
