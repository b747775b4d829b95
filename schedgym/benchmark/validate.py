"""Replay results rows in fresh envs and re-score them (CompilerGym-style validation).

A row is untrusted input. It replays only from the *frozen task's own* settings: the task named by
``(task, task_version)`` must exist, ``instance`` and ``seed`` must be among the task's, and the row's
``env_id``, ``env_kwargs`` and ``policy_kwargs`` must equal what the task prescribes (the only extra env
kwargs allowed are the presentation kwargs a baseline may declare in ``env_overrides``, such as
MemoryMapping's ``action_mode``/``order``, which never change the instance or the objective). A row
whose settings differ is rejected with the difference named, before any env is built, so a row never
makes the validator open a path the task does not name, and reasons never echo file contents.

The env is then built from the task's env id and kwargs, and the row replays when, from
``reset(seed)``, its decoded actions are all legal, the episode ends exactly after the last one, and
the replayed metric, return, length and every recorded env metric match the row within the
tolerance. An agent's row is rejected, before any replay, when the agent's record
(:mod:`schedgym.benchmark.agent_records`) says it trained on instances that overlap the task's test
split, or does not say what it trained on. Duplicate ``(task, policy, instance, seed)`` rows (in one file or across the files validated
together) and files without any row are rejected too. The policy is not needed (nor trusted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgym.baselines import PRESENTATION_KWARGS
from schedgym.benchmark.results import _short, decode_actions, read_rows

__all__ = [
    "ABS_TOL",
    "PRESENTATION_KWARGS",
    "REL_TOL",
    "FileCheck",
    "RowCheck",
    "check_agent_training",
    "task_settings",
    "validate_file",
    "validate_files",
    "validate_row",
]



class RowRejected(ValueError):
    """A row whose recorded settings are not the frozen task's (the message names the difference)."""

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


def _canon(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, allow_nan=True, default=repr)


def task_settings(row: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(task, env kwargs to replay with)`` from the frozen task; :class:`RowRejected` naming a difference."""
    from schedgym.benchmark.tasks import TASKS

    name, version = str(row["task"]), row["task_version"]
    task = TASKS.get(name)
    if task is None:
        raise RowRejected(f"task {_short(name)} is not defined in this schedgym")
    if task.version != version:
        raise RowRejected(f"task {task.name} is at version {task.version}, the row is for version {_short(version)}")
    names = [i.name for i in task.instances]
    if row["instance"] not in names:
        raise RowRejected(f"task {task.name} has no instance {_short(row['instance'])}")
    if row["seed"] not in task.seeds:
        raise RowRejected(f"seed {row['seed']} is not one of task {task.name}'s seeds {list(task.seeds)}")
    if row["env_id"] != task.env_id:
        raise RowRejected(f"env_id: recorded {_short(row['env_id'])}, task {task.name} uses {task.env_id!r}")
    expected = task.env_kwargs_for(task.instance(str(row["instance"])))
    recorded = row["env_kwargs"]
    if not isinstance(recorded, dict):
        raise RowRejected("env_kwargs: not a JSON object")
    for key in sorted(expected):
        if key not in recorded:
            raise RowRejected(f"env_kwargs[{key!r}]: missing, task {task.name} sets {expected[key]!r}")
        if _canon(recorded[key]) != _canon(expected[key]):
            raise RowRejected(
                f"env_kwargs[{key!r}]: recorded {_short(recorded[key])}, task {task.name} sets {expected[key]!r}"
            )
    allowed = PRESENTATION_KWARGS.get(task.family, ())
    replay = dict(expected)
    for key in sorted(set(recorded) - set(expected)):
        value = recorded[key]
        if key not in allowed:
            raise RowRejected(
                f"env_kwargs[{_short(key)}]: not a setting of task {task.name} "
                f"(a policy may only add {list(allowed)})"
            )
        # A short string, or a small positive int (MemoryMapping's candidate window K: the exact
        # solver's replay widens it to every buffer; the env checks its range again).
        small_int = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096
        if not small_int and (not isinstance(value, str) or len(value) > 32):
            raise RowRejected(f"env_kwargs[{key!r}]: {_short(value)} is not a short string or a small int")
        replay[key] = value
    want_pk = dict(task.policy_kwargs.get(str(row["policy"]), {}))
    if row["policy"] == "random":
        want_pk.setdefault("seed", row["seed"])
    if _canon(row.get("policy_kwargs") or {}) != _canon(want_pk):
        raise RowRejected(f"policy_kwargs: recorded {_short(row.get('policy_kwargs'))}, task {task.name} sets {want_pk!r}")
    return task, replay


def check_agent_training(task: Any, row: Mapping[str, Any], agents_dirs: Sequence[str | Path]) -> None:
    """:class:`RowRejected` when the row is an agent's whose training data is unknown or meets the test split.

    Why: a score on instances the agent trained on measures memorisation, not scheduling; the leaderboard
    only ranks agents on data they have not seen (the task's test split).
    """
    from schedgym.benchmark.agent_records import agent_name, find_agent_record
    from schedgym.benchmark.splits import overlapping

    try:
        name = agent_name(row)
    except ValueError as exc:
        raise RowRejected(str(exc)) from None
    if name is None:
        return
    try:
        record = find_agent_record(name, agents_dirs)
    except ValueError as exc:
        raise RowRejected(f"cannot check what agent {name!r} trained on: {exc}") from None
    if record.train is None:
        raise RowRejected(
            f"agent {name!r} records train_instances: null (unknown"
            + (f": {record.train_note}" if record.train_note else "")
            + f"), so it cannot be shown disjoint from task {task.name}'s test split {task.split.as_dict()['test']}"
        )
    clash = overlapping(record.train, task.split.test)
    if clash:
        pairs = ", ".join(f"{a} (trained) ~ {b} (test)" for a, b in clash)
        raise RowRejected(
            f"agent {name!r} trained on instances that overlap task {task.name}'s test split: {pairs}; "
            f"train on the task's train split instead ({', '.join(map(str, task.split.train))})"
        )


def validate_row(
    row: Mapping[str, Any], agents_dirs: Sequence[str | Path] = ()
) -> tuple[bool, str, float | None]:
    """``(ok, reason, replayed metric)`` for one parsed results row.

    ``agents_dirs``: where agent records are looked up by name (an agent row found in none is rejected).
    """
    import numpy as np

    from schedgym.evaluation import make_env

    try:
        task, env_kwargs = task_settings(row)
        check_agent_training(task, row, agents_dirs)
    except RowRejected as exc:
        return False, str(exc), None
    try:
        actions = decode_actions(str(row["actions"]))
    except ValueError as exc:
        return False, f"bad actions encoding: {exc}", None
    try:
        env = make_env(task.env_id, env_kwargs)
    except Exception as exc:  # noqa: BLE001  (any construction error is a reason to report)
        return False, f"cannot build env {task.env_id} with {_short(env_kwargs, 200)}: {type(exc).__name__}: {exc}", None
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
        replayed = task.row_metric(metrics, total)
    except KeyError as exc:
        return False, f"the replayed env reports no metric {exc}", None
    if not _close(replayed, float(row["metric"])):
        return False, f"metric: recorded {row['metric']!r}, replayed {replayed!r}", replayed
    if not _close(total, float(row["episode_return"])):
        return False, f"episode_return: recorded {row['episode_return']!r}, replayed {total!r}", replayed
    if steps != int(row["episode_length"]):
        return False, f"episode_length: recorded {row['episode_length']}, replayed {steps}", replayed
    for key, value in sorted(dict(row.get("metrics") or {}).items()):
        if key not in metrics:
            return False, f"metrics[{_short(key)}] recorded but the env reports no such metric", replayed
        if isinstance(value, (int, float)) and not _close(float(metrics[key]), float(value)):
            return False, f"metrics[{key!r}]: recorded {value!r}, replayed {metrics[key]!r}", replayed
    return True, "", replayed


def _label(row: Mapping[str, Any]) -> str:
    parts = [row["task"], row["policy"], row["instance"]]
    return " / ".join(p if isinstance(p, str) and len(p) <= 60 and p.isprintable() else _short(p) for p in parts) + (
        f" / seed {row['seed']}"
    )


def validate_file(
    path: str | Path,
    on_row: Any = None,
    seen: dict[tuple[str, str, str, int], str] | None = None,
    agents_dirs: Sequence[str | Path] | None = None,
) -> FileCheck:
    """Validate every row of a results file; malformed lines, duplicates and an empty file count as failures.

    ``seen`` maps ``(task, policy, instance, seed)`` to where it was first met; pass one dict to several
    calls to reject duplicates across files (as :func:`validate_files` does). ``agents_dirs`` are searched
    for the records of agent rows before the defaults (``agents/`` beside the ``results/`` folder holding
    ``path``, then ``./leaderboard/agents``).
    """
    from schedgym.benchmark.agent_records import default_agents_dirs

    dirs = [*(agents_dirs or ()), *default_agents_dirs(path)]
    parsed = read_rows(path)
    check = FileCheck(Path(path))
    seen = {} if seen is None else seen
    for line, why in parsed.bad_lines:
        check.rows.append(RowCheck(line, "(unparsable row)", False, why))
    if not parsed.rows and not parsed.bad_lines:
        check.rows.append(RowCheck(1, "(file)", False, "no result rows (an empty or header-only results file)"))
    for row in parsed.rows:
        line = int(row["_line"])
        label = _label(row)
        key = (str(row["task"]), str(row["policy"]), str(row["instance"]), int(row["seed"]))
        if key in seen:
            rc = RowCheck(line, label, False, f"duplicate (task, policy, instance, seed): first at {seen[key]}")
        else:
            seen[key] = f"{path}:{line}"
            ok, reason, replayed = validate_row(row, dirs)
            rc = RowCheck(line, label, ok, reason, replayed)
        check.rows.append(rc)
        if on_row is not None:
            on_row(rc)
    check.rows.sort(key=lambda r: r.line)
    return check


def validate_files(
    paths: Iterable[str | Path], on_row: Any = None, agents_dirs: Sequence[str | Path] | None = None
) -> list[FileCheck]:
    """:func:`validate_file` over ``paths``, rejecting duplicate rows across them."""
    seen: dict[tuple[str, str, str, int], str] = {}
    return [validate_file(p, on_row, seen, agents_dirs) for p in paths]
