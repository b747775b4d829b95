"""The leaderboard as one machine-readable JSON document (``schedgym leaderboard --json PATH``).

Schema (version 1)::

    {"schema": "schedgym-leaderboard/1",
     "tasks": [{
        "task": str, "version": int, "tier": "quick"|"full", "family": str, "env_id": str,
        "split": {"train": [str], "test": [str]},  # instance specs (splits.py): the rows score exactly
                                       # the test split; an agent may train only on the train split
        "metric": str, "direction": "max"|"min", "reference": str,
        "bound": number|null,          # proven only: the exact solver's proven optimum or bound, or a
                                       # proven bound metric every episode records; the mean over the
                                       # instances (compare with a row's "mean"); null when the task has
                                       # none or some instance has no proof. No episode that keeps the
                                       # rule beats it (tests check each episode, direction-aware).
        "bound_source": str|null,      # which policy or metric the bound comes from
        "best_known": number|null,     # best score (the "mean" column) of the task's best-known policies:
                                       # oracles that are not proofs, solvers stopped at their limit
        "best_known_source": str|null, # the policy it comes from
        "rule": str|null,              # a metric every episode must keep (e.g. sla_met), else null
        "rows": [{
            "policy": str, "kind": "heuristic"|"bayesian"|"oracle"|"bound"|"agent"|"random"|...,
            "score": number,           # IQM of the metric over instances x seeds (sweep tasks: the sweep value)
            "ci_low": number, "ci_high": number,   # its 95 % bootstrap interval (sweeps: seeds resampled)
            "ci_method": str|null,
            "mean": number,            # the mean over seeds of the per-seed instance means (the table's column)
            "normalised": number|null, # score vs the reference (> 1 beats it; 0 = breaks the rule)
            "probability_of_improvement": number|null,  # P(this policy beats the reference), per instance
            "meets_rule": bool,        # true when the task has no rule
            "gap_to_bound_pct": number|null,       # to the proven bound, mean over instances (%)
            "gap_to_best_known_pct": number|null,  # to the best known (negative: beats it)
            "episodes": int, "walltime_s": number,
            # agents only (from the agent's schedgym_agent.json; null where it has none or is not an agent):
            "training": {"env_steps": int|null, "wall_s": number|null, "cores": int|null,
                         "train_instances": [str]|null}|null}]}]}

Rows are in leaderboard order (rule keepers first, best first). Everything comes from validated rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schedgym.benchmark.intervals import probability_of_improvement
from schedgym.benchmark.render import TaskBoard

__all__ = ["SCHEMA", "leaderboard_document", "write_json"]

SCHEMA = "schedgym-leaderboard/1"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _task_document(b: TaskBoard) -> dict[str, Any]:
    t = b.task
    ref = next((s for s in b.scores if s.policy == t.reference), None)
    rows = []
    for s in b.scores:
        kind = "bound" if s.policy == t.bound else s.kind
        pi = None
        if ref is not None and s.policy != ref.policy and s.samples and ref.samples:
            pi = probability_of_improvement(s.samples, ref.samples, t.direction)
        rows.append({
            "policy": s.policy,
            "kind": kind,
            "score": _num(s.interval.iqm if s.interval is not None else s.value),
            "ci_low": _num(s.interval.ci_low) if s.interval is not None else None,
            "ci_high": _num(s.interval.ci_high) if s.interval is not None else None,
            "ci_method": s.interval.method if s.interval is not None else None,
            "mean": _num(s.value),
            "normalised": _num(s.normalised),
            "probability_of_improvement": _num(pi),
            "meets_rule": s.meets is not False,
            "gap_to_bound_pct": _num(s.gap_pct),
            "gap_to_best_known_pct": _num(s.gap_best_pct),
            "episodes": int(s.n_episodes),
            "walltime_s": _num(s.walltime_s),
            "training": None if s.training is None else {
                "env_steps": s.training.env_steps,
                "wall_s": _num(s.training.wall_s),
                "cores": s.training.cores,
                "train_instances": s.train_instances,
            },
        })
    return {
        "task": t.name,
        "version": int(t.version),
        "tier": t.tier,
        "family": t.family,
        "env_id": t.env_id,
        "split": t.split.as_dict(),
        "metric": "servers_deployable" if t.aggregate == "sweep" else t.metric,
        "direction": t.direction,
        "reference": t.reference,
        "bound": _num(b.bound_value),
        "bound_source": b.bound_source,
        "best_known": _num(b.best_known_value),
        "best_known_source": b.best_known_policy,
        "rule": t.constraint,
        "rows": rows,
    }


def leaderboard_document(boards: Sequence[TaskBoard]) -> dict[str, Any]:
    """The JSON-serialisable leaderboard (schema in the module docstring)."""
    return {"schema": SCHEMA, "tasks": [_task_document(b) for b in boards]}


def write_json(boards: Sequence[TaskBoard], path: str | Path) -> Path:
    """Write the document to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(leaderboard_document(boards), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
