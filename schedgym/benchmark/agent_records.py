"""The training records of the agents behind leaderboard rows: what they trained on and at what budget.

A results row of an agent names its run directory in ``extra.agent_dir``, as the path it was benchmarked
from (often absolute, on another machine). Rows are untrusted, so that path is never opened: only its
last component, a plain directory name, is looked up in trusted agent directories (``--agents``, the
``agents/`` folder next to the ``results/`` folder the CSV lives in, and ``leaderboard/agents``).

The record (``schedgym_agent.json``) says what the agent trained on in ``train_instances``: a list of
instance specs (see :mod:`schedgym.benchmark.splits`), or ``null`` when unknown (with
``train_instances_note`` saying why). Records written before the field existed are read as what
``schedgym train`` would have recorded from their ``env_id`` and ``env_kwargs``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedgym.benchmark.splits import InstanceSpec, parse_specs, train_instances_for

__all__ = [
    "AgentRecord",
    "TrainingBudget",
    "agent_name",
    "default_agents_dirs",
    "find_agent_record",
    "training_budget",
]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def agent_name(row: Mapping[str, Any]) -> str | None:
    """The agent directory's name of an agent row (``None`` for a row that is not an agent's).

    ``ValueError`` when ``extra.agent_dir`` is there but its last component is not a plain name.
    """
    extra = row.get("extra") or {}
    if not isinstance(extra, Mapping) or "agent_dir" not in extra:
        return None
    raw = extra["agent_dir"]
    name = Path(str(raw).rstrip("/\\")).name if isinstance(raw, str) else ""
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"extra.agent_dir {str(raw)[:80]!r} does not end in a plain directory name")
    return name


def default_agents_dirs(results_path: str | Path | None) -> list[Path]:
    """``agents/`` beside the ``results/`` folder above ``results_path``, then ``./leaderboard/agents``."""
    out: list[Path] = []
    if results_path is not None:
        for parent in Path(results_path).resolve().parents:
            if parent.name == "results" and (parent.parent / "agents").is_dir():
                out.append(parent.parent / "agents")
                break
    local = Path("leaderboard/agents")
    if local.is_dir() and all(local.resolve() != p.resolve() for p in out):
        out.append(local)
    return out


@dataclass(frozen=True)
class AgentRecord:
    """What the leaderboard needs from an agent's ``schedgym_agent.json``."""

    name: str
    path: Path
    meta: dict[str, Any]
    #: Instance specs it trained on; ``None`` when the record says it does not know.
    train: tuple[InstanceSpec, ...] | None
    train_note: str = ""


def find_agent_record(name: str, agents_dirs: Iterable[str | Path]) -> AgentRecord:
    """The record of agent ``name`` in the first of ``agents_dirs`` holding it; ``ValueError`` if none does."""
    from schedgym.agents import AGENT_META_FILE, read_agent_meta

    dirs = [Path(d) for d in agents_dirs]
    for d in dirs:
        if (d / name / AGENT_META_FILE).is_file():
            meta = read_agent_meta(d / name)
            where = f"{d / name / AGENT_META_FILE}"
            note = str(meta.get("train_instances_note") or "")
            if "train_instances" not in meta:  # written before the field existed
                if not isinstance(meta.get("env_id"), str) or not isinstance(meta.get("env_kwargs", {}), dict):
                    raise ValueError(f"{where}: no train_instances and no env_id/env_kwargs to derive them from")
                train: tuple[InstanceSpec, ...] | None = parse_specs(
                    train_instances_for(meta["env_id"], meta.get("env_kwargs") or {}), where
                )
                note = note or "derived from the recorded env_id and env_kwargs"
            elif meta["train_instances"] is None:
                train = None
            else:
                train = parse_specs(meta["train_instances"], f"{where}: train_instances")
            return AgentRecord(name, d / name, meta, train, note)
    raise ValueError(f"agent {name!r}: no {AGENT_META_FILE} under any agents directory {[str(d) for d in dirs]}")


@dataclass(frozen=True)
class TrainingBudget:
    """How much training an agent had: env steps, wall time and CPU cores (``None`` where unknown)."""

    env_steps: int | None
    wall_s: float | None
    cores: int | None

    def describe(self) -> str:
        steps = f"{self.env_steps:,} env steps" if self.env_steps is not None else "steps unknown"
        wall = f"{self.wall_s / 60:.1f} min" if self.wall_s is not None else "wall time unknown"
        cores = f"{self.cores} cores" if self.cores is not None else "cores unknown"
        return f"{steps}, {wall}, {cores}"


def _log_events(path: Path) -> list[dict[str, Any]]:
    log = path / "train_log.jsonl"
    if not log.is_file() or log.stat().st_size > 16 * 1024 * 1024:
        return []
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def training_budget(record: AgentRecord) -> TrainingBudget:
    """The record's ``training_budget`` where it has one, else what its ``train_log.jsonl`` shows.

    Steps: the last ``done`` event's step (MuZero: its played steps), else the record's ``timesteps``. Wall
    time: first ``start`` to last ``done``. Cores: the record's ``training_budget.cores`` or ``machine_cpus``.
    """
    meta = record.meta
    given = meta.get("training_budget") if isinstance(meta.get("training_budget"), dict) else {}
    events = _log_events(record.path)
    starts = [e for e in events if e.get("event") == "start" and isinstance(e.get("time_unix_s"), (int, float))]
    dones = [e for e in events if e.get("event") == "done" and isinstance(e.get("time_unix_s"), (int, float))]
    steps: Any = given.get("env_steps")
    if steps is None and dones:
        d = dones[-1]
        steps = (d.get("counters") or {}).get("played_steps", d.get("step"))
    if steps is None:
        steps = meta.get("timesteps")
    wall: Any = given.get("wall_s")
    if wall is None and starts and dones:
        wall = float(dones[-1]["time_unix_s"]) - float(starts[0]["time_unix_s"])
    cores: Any = given.get("cores", meta.get("machine_cpus"))

    def as_int(x: Any) -> int | None:
        return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    return TrainingBudget(as_int(steps), float(wall) if isinstance(wall, (int, float)) else None, as_int(cores))


def records_for(names: Sequence[str], agents_dirs: Iterable[str | Path]) -> dict[str, AgentRecord]:
    """The records found among ``names`` (agents without a record are left out)."""
    dirs = list(agents_dirs)
    out = {}
    for n in names:
        try:
            out[n] = find_agent_record(n, dirs)
        except ValueError:
            continue
    return out
