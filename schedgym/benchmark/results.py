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


def decode_actions(text: str) -> np.ndarray:
    """Inverse of :func:`encode_actions`; ``ValueError`` naming what is wrong with a bad encoding."""
    if not text.startswith(_ACTIONS_TAG):
        raise ValueError(f"actions must start with {_ACTIONS_TAG!r}, got {text[:12]!r}")
    body = text[len(_ACTIONS_TAG) :]
    if not body:
        return np.zeros(0, dtype=np.int64)
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(body.encode("ascii")))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"actions are not valid base64/zlib: {exc}") from None
    if len(raw) % 8:
        raise ValueError(f"actions decode to {len(raw)} bytes, not a whole number of (value, length) int32 pairs")
    pairs = np.frombuffer(raw, dtype="<i4").reshape(-1, 2).astype(np.int64)
    if (pairs[:, 1] < 1).any():
        raise ValueError("actions hold a run length < 1")
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
    """Append one row (header first for a new file), in a single write, flushed to disk."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = format_row(row)
    new = not path.exists() or path.stat().st_size == 0
    if new:
        text = ",".join(COLUMNS) + "\n" + text
    else:
        with path.open("rb") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":  # a run killed mid-line: end that (now unparsable) line first
                text = "\n" + text
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class ResultsFile:
    """Parsed rows of one results CSV plus the lines that did not parse (with reasons)."""

    path: Path
    rows: list[dict[str, Any]]
    bad_lines: list[tuple[int, str]]


_INT_COLS = ("task_version", "seed", "episode_length")
_FLOAT_COLS = ("metric", "episode_return", "walltime_s")
_JSON_COLS = ("env_kwargs", "policy_kwargs", "metrics", "extra")


def _parse_float(text: str) -> float:
    return float(text) if text not in ("", "nan") else math.nan


def read_rows(path: str | Path) -> ResultsFile:
    """Rows of a results file with typed values; malformed lines go to ``bad_lines`` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    with path.open(encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if not lines or not lines[0]:
        return ResultsFile(path, rows, bad)
    header = next(csv.reader([lines[0]]))
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
                row[c] = int(raw[c])
            for c in _FLOAT_COLS:
                row[c] = _parse_float(raw[c])
            for c in _JSON_COLS:
                row[c] = json.loads(raw[c]) if raw[c] else {}
        except (ValueError, json.JSONDecodeError) as exc:
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
