"""Replay results rows in fresh envs and re-score them (CompilerGym-style validation).

A row replays when, from ``reset(seed)`` of an env built from the row's ``env_id`` and ``env_kwargs``,
its decoded actions are all legal, the episode ends exactly after the last one, and the replayed
metric, return, length and every recorded env metric match the row within the tolerance. The policy
is not needed (nor trusted): only the env is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgym.benchmark.results import decode_actions, read_rows

__all__ = ["ABS_TOL", "REL_TOL", "FileCheck", "RowCheck", "validate_file", "validate_row"]

REL_TOL = 1e-6
ABS_TOL = 1e-9


@dataclass
class RowCheck:
    line: int
    label: str  # task / policy / instance / seed
    ok: bool
    reason: str = ""
    replayed_metric: float | None = None


@dataclass
class FileCheck:
    path: Path
    rows: list[RowCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[RowCheck]:
        return [r for r in self.rows if not r.ok]


def _close(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _metric_of(row: Mapping[str, Any], metrics: Mapping[str, Any], episode_return: float) -> float:
    """The task's per-row metric when the task is known; else the recorded one's source can't be derived."""
    from schedgym.benchmark.tasks import TASKS

    task = TASKS.get(str(row["task"]))
    if task is None or task.version != int(row["task_version"]):
        raise KeyError(f"task {row['task']!r} version {row['task_version']} is not defined in this schedgym")
    return task.row_metric(metrics, episode_return)


def validate_row(row: Mapping[str, Any]) -> tuple[bool, str, float | None]:
    """``(ok, reason, replayed metric)`` for one parsed results row."""
    import numpy as np

    from schedgym.evaluation import make_env

    try:
        actions = decode_actions(str(row["actions"]))
    except ValueError as exc:
        return False, f"bad actions encoding: {exc}", None
    try:
        env = make_env(str(row["env_id"]), dict(row["env_kwargs"]))
    except Exception as exc:  # noqa: BLE001  (any construction error is a reason to report)
        return False, f"cannot build env {row['env_id']} with {row['env_kwargs']}: {type(exc).__name__}: {exc}", None
    try:
        _, info = env.reset(seed=int(row["seed"]))
        total, steps = 0.0, 0
        done = False
        for action in actions:
            if done:
                return False, f"episode ended after {steps} steps but the row holds {actions.size} actions", None
            mask = info.get("action_mask")
            a = int(action)
            if mask is not None and not (0 <= a < len(mask) and mask[a]):
                return False, f"action {a} at step {steps} is not legal in the replayed state", None
            _, reward, terminated, truncated, info = env.step(np.int64(a))
            if info.get("invalid_action"):
                return False, f"action {a} at step {steps} was invalid in the replayed state", None
            total += float(reward)
            steps += 1
            done = terminated or truncated
        if not done:
            return False, f"actions ran out after {steps} steps before the episode ended", None
        metrics = dict(info.get("metrics") or env.unwrapped.metrics())
    except Exception as exc:  # noqa: BLE001  (any replay error is a reason to report)
        return False, f"replay raised {type(exc).__name__}: {exc}", None
    finally:
        env.close()
    try:
        replayed = _metric_of(row, metrics, total)
    except KeyError as exc:
        return False, str(exc.args[0]), None
    if not _close(replayed, float(row["metric"])):
        return False, f"metric: recorded {row['metric']!r}, replayed {replayed!r}", replayed
    if not _close(total, float(row["episode_return"])):
        return False, f"episode_return: recorded {row['episode_return']!r}, replayed {total!r}", replayed
    if steps != int(row["episode_length"]):
        return False, f"episode_length: recorded {row['episode_length']}, replayed {steps}", replayed
    for key, value in sorted(dict(row.get("metrics") or {}).items()):
        if key not in metrics:
            return False, f"metrics[{key!r}] recorded but the env reports no such metric", replayed
        if isinstance(value, (int, float)) and not _close(float(metrics[key]), float(value)):
            return False, f"metrics[{key!r}]: recorded {value!r}, replayed {metrics[key]!r}", replayed
    return True, "", replayed


def validate_file(path: str | Path, on_row: Any = None) -> FileCheck:
    """Validate every row of a results file; malformed lines count as failures."""
    parsed = read_rows(path)
    check = FileCheck(Path(path))
    for line, why in parsed.bad_lines:
        check.rows.append(RowCheck(line, "(unparsable row)", False, why))
    for row in parsed.rows:
        ok, reason, replayed = validate_row(row)
        label = f"{row['task']} / {row['policy']} / {row['instance']} / seed {row['seed']}"
        rc = RowCheck(int(row["_line"]), label, ok, reason, replayed)
        check.rows.append(rc)
        if on_row is not None:
            on_row(rc)
    check.rows.sort(key=lambda r: r.line)
    return check


def validate_files(paths: Iterable[str | Path], on_row: Any = None) -> list[FileCheck]:
    return [validate_file(p, on_row) for p in paths]
