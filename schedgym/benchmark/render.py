"""Leaderboard tables from results CSVs: ``leaderboard/README.md`` and a self-contained ``index.html``.

Per task and policy: the metric mean ± std over seeds (each seed's value is the mean over the task's
instances), its interquartile mean with a 95 % bootstrap interval (sweep tasks: the sweep re-walked on
resampled seeds), the score normalised to the task's reference policy (per instance ``m / ref`` when
higher is better, ``ref / m`` when lower is better, geometric mean over instances: > 1 beats the
reference), the gaps to the task's two reference values (mean over instances, in %), mean walltime per
episode and the latest run date. Across tasks: the geometric mean of the normalised scores per (env
family, policy).

The two reference values are kept apart:

- **bound**: proven only. The exact solver's bound recorded in its rows (``extra["bound"]``, or its score
  where it proved optimality) or a proven bound metric every row records (``Task.bound_metric``). No
  episode that keeps the task's rule may beat it: :func:`bound_violations` lists any that does, the page
  prints them under the task and the tests fail on them.
- **best known**: the best score among the task's ``best_known`` policies (oracles that are not proofs,
  solvers stopped at their limit), which other policies may beat.

Output depends only on the CSV rows (sorted; nothing about when it was rendered), so rendering the same
results twice gives byte-identical files.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schedgym.benchmark.agent_records import TrainingBudget, agent_name, default_agents_dirs, find_agent_record, training_budget
from schedgym.benchmark.intervals import IntervalEstimate, interval_estimate
from schedgym.benchmark.results import find_results, read_rows
from schedgym.benchmark.tasks import TASKS, Task

__all__ = ["PolicyScore", "TaskBoard", "load_boards", "render_html", "render_markdown", "write_leaderboard"]


@dataclass
class PolicyScore:
    policy: str
    kind: str
    value: float  # task metric: mean over seeds (sweep: servers deployable)
    std: float | None
    n_seeds: int
    n_episodes: int
    expected_episodes: int
    normalised: float | None
    gap_pct: float | None
    walltime_s: float
    date: str
    per_instance: dict[str, float] = field(default_factory=dict)
    #: With a task constraint: whether every episode kept it, and the mean of ``constraint_order``.
    meets: bool | None = None
    order_value: float | None = None
    #: Per instance, the metric of each seed (sorted by seed): the samples of the interval estimate.
    samples: dict[str, list[float]] = field(default_factory=dict)
    #: IQM over instances x seeds with its 95 % bootstrap CI (intervals.py); sweep tasks: :func:`sweep_interval`.
    interval: IntervalEstimate | None = None
    #: Agents only: the training budget and train instances from the agent's record (None when not found).
    training: TrainingBudget | None = None
    train_instances: list[str] | None = None
    #: Gap to the task's best-known score (mean over instances, in %; negative: beats it).
    gap_best_pct: float | None = None
    #: Agents only: the run directory of the agent's record (its TensorBoard logs give its learning curve).
    agent_dir: Path | None = None

    @property
    def complete(self) -> bool:
        return self.n_episodes >= self.expected_episodes


@dataclass
class TaskBoard:
    task: Task
    scores: list[PolicyScore]
    #: The proven bound (mean over instances of each instance's bound, averaged over seeds; comparable with
    #: the mean column); None when the task has none or an instance lacks a proof.
    bound_value: float | None = None
    #: The best-known score and the policy it comes from (not a proof).
    best_known_value: float | None = None
    best_known_policy: str | None = None
    #: Episodes that beat the proven bound (each a sentence): must be empty.
    violations: list[str] = field(default_factory=list)

    @property
    def bound_source(self) -> str | None:
        return self.task.bound or self.task.bound_metric


def _kind_of(task: Task, policy: str, rows: Sequence[Mapping[str, Any]]) -> str:
    if any("agent_dir" in (r.get("extra") or {}) for r in rows):
        return "agent"
    try:
        from schedgym.baselines import list_policies

        registered = list_policies(task.env_id)
    except Exception:  # noqa: BLE001  (an unregistered family: the kind is unknown, not an error)
        return "?"
    return registered[policy].kind if policy in registered else "?"


def _mean_over_seeds(rows: Sequence[Mapping[str, Any]], key: Any) -> dict[str, float]:
    """Per instance: the mean of ``key(row)`` over its seeds."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        acc[str(r["instance"])].append(float(key(r)))
    return {inst: float(np.mean(v)) for inst, v in acc.items()}


def _ratio(task: Task, value: float, ref: float) -> float | None:
    """> 1 beats the reference; 0 for nothing achieved (e.g. no server deployable); None if undefined."""
    if not (math.isfinite(value) and math.isfinite(ref)):
        return None
    if task.direction == "max":
        return value / ref if ref > 0 and value >= 0 else None
    return ref / value if value > 0 and ref >= 0 else None


def _gap(task: Task, value: float, bound: float) -> float | None:
    if not (math.isfinite(value) and math.isfinite(bound)) or bound == 0:
        return None
    diff = bound - value if task.direction == "max" else value - bound
    return 100.0 * diff / abs(bound)


def _geomean(values: Iterable[float | None]) -> float | None:
    """Geometric mean of the defined values (0 if any is 0); None when none is defined."""
    vals = [v for v in values if v is not None]
    if not vals or any(v < 0 for v in vals):
        return None
    if any(v == 0 for v in vals):
        return 0.0
    return float(np.exp(np.mean(np.log(vals))))


def sweep_servers_deployable(task: Task, rows: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, float]]:
    """Largest passing server count, walking counts upwards as ``servers_deployable`` does.

    A count passes with zero brake events over its seeds and mean HP/LP perf loss within the limits;
    the walk stops after ``patience`` failing counts in a row. Also returns per count 1.0/0.0 (pass).
    """
    rule = task.sweep
    assert rule is not None
    by_inst: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_inst[str(r["instance"])].append(r)
    deployable, failures, passed = 0, 0, {}
    for inst in task.instances:
        runs = by_inst.get(inst.name)
        if not runs:
            break  # the walk cannot go past a count that was not run
        brakes = sum(float(r["metrics"]["brake_events"]) for r in runs)
        hp = float(np.mean([float(r["metrics"]["hp_perf_loss"]) for r in runs]))
        lp = float(np.mean([float(r["metrics"]["lp_perf_loss"]) for r in runs]))
        ok = brakes == 0 and hp <= rule.hp_loss_max and lp <= rule.lp_loss_max
        passed[inst.name] = 1.0 if ok else 0.0
        if ok:
            deployable, failures = int(inst.env_kwargs.get("n_servers", task.env_kwargs.get("n_servers", 0))), 0
        else:
            failures += 1
            if failures >= rule.patience:
                break
    return deployable, passed


def _score_mean_task(task: Task, policy: str, rows: list[Mapping[str, Any]]) -> PolicyScore:
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        by_seed[int(r["seed"])].append(float(r["metric"]))
    seed_values = [float(np.mean(v)) for _, v in sorted(by_seed.items())]
    value = float(np.mean(seed_values))
    samples: dict[str, list[float]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (str(r["instance"]), int(r["seed"]))):
        samples[str(r["instance"])].append(float(r["metric"]))
    std = float(np.std(seed_values, ddof=1)) if len(seed_values) > 1 else None  # one seed: no spread to show
    return PolicyScore(
        policy=policy,
        kind=_kind_of(task, policy, rows),
        value=value,
        std=std,
        n_seeds=len(seed_values),
        n_episodes=len(rows),
        expected_episodes=len(task.instances) * len(task.seeds),
        normalised=None,
        gap_pct=None,
        walltime_s=float(np.mean([float(r["walltime_s"]) for r in rows])),
        date=max(str(r["date"]) for r in rows),
        per_instance=_mean_over_seeds(rows, lambda r: r["metric"]),
        samples=dict(samples),
        interval=interval_estimate(samples),
        meets=None if task.constraint is None else all(
            float((r.get("metrics") or {}).get(task.constraint, 0.0)) >= 1.0 for r in rows
        ),
        order_value=None if task.constraint_order is None else float(
            np.mean([float((r.get("metrics") or {}).get(task.constraint_order, 0.0)) for r in rows])
        ),
    )


def sweep_interval(task: Task, rows: Sequence[Mapping[str, Any]], reps: int = 2000, seed: int = 0) -> IntervalEstimate:
    """Servers deployable with a 95 % bootstrap interval: the walk re-run on seeds resampled with replacement.

    A seed is one workload draw at every count, so a replicate keeps a seed's episodes together across
    counts. The point is the walk on all seeds (a sweep has one value, so its "IQM" is that value).
    """
    point, _ = sweep_servers_deployable(task, rows)
    by_seed: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_seed[int(r["seed"])].append(r)
    seeds = sorted(by_seed)
    if len(seeds) < 2:
        return IntervalEstimate(float(point), float(point), float(point), len(seeds), "single sample")
    rng = np.random.default_rng(seed)
    cache: dict[tuple[int, ...], int] = {}
    values = np.empty(reps)
    for k in range(reps):
        draw = tuple(sorted(int(x) for x in rng.choice(seeds, size=len(seeds), replace=True)))
        if draw not in cache:  # few distinct multisets: walk each once
            cache[draw] = sweep_servers_deployable(task, [r for sd in draw for r in by_seed[sd]])[0]
        values[k] = cache[draw]
    low, high = np.percentile(values, [2.5, 97.5])
    return IntervalEstimate(float(point), float(low), float(high), len(seeds), "bootstrap over seeds (sweep re-walked)")


def _score_sweep_task(task: Task, policy: str, rows: list[Mapping[str, Any]]) -> PolicyScore:
    deployable, _ = sweep_servers_deployable(task, rows)
    return PolicyScore(
        policy=policy,
        kind=_kind_of(task, policy, rows),
        value=float(deployable),
        std=None,
        n_seeds=len({int(r["seed"]) for r in rows}),
        n_episodes=len(rows),
        expected_episodes=len(task.instances) * len(task.seeds),
        normalised=None,
        gap_pct=None,
        walltime_s=float(np.mean([float(r["walltime_s"]) for r in rows])),
        date=max(str(r["date"]) for r in rows),
        per_instance={"sweep": float(deployable)},
        interval=sweep_interval(task, rows),
    )


#: Slack of the bound check: solver bounds and metrics are floats summed in different orders.
_BOUND_RTOL = 1e-9


def _keeps_rule(task: Task, row: Mapping[str, Any]) -> bool:
    return task.constraint is None or float((row.get("metrics") or {}).get(task.constraint, 0.0)) >= 1.0


def _solver_bound(row: Mapping[str, Any]) -> float:
    """The proven bound a bound-policy row records (its score where it proved optimality), else nan."""
    extra = row.get("extra") or {}
    if extra.get("bound") is not None:
        return float(extra["bound"])
    if extra.get("optimal") is True:
        return float(row["metric"])
    return math.nan


def proven_bounds(task: Task, rows_by_policy: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[tuple[str, int], float]:
    """(instance, seed) -> the task's proven bound on that episode (proven only; none for sweep tasks).

    From the bound policy's rows (``extra["bound"]``), else from the ``bound_metric`` of the reference's
    rows (the same workload, so the same bound, for every policy).
    """
    out: dict[tuple[str, int], float] = {}
    if task.aggregate != "mean":
        return out
    if task.bound:
        for r in rows_by_policy.get(task.bound, ()):
            v = _solver_bound(r)
            if math.isfinite(v):
                out[(str(r["instance"]), int(r["seed"]))] = v
    elif task.bound_metric:
        rows = rows_by_policy.get(task.reference) or next((r for r in rows_by_policy.values() if r), [])
        for r in rows:
            v = float((r.get("metrics") or {}).get(task.bound_metric, math.nan))
            if math.isfinite(v):
                out[(str(r["instance"]), int(r["seed"]))] = v
    return out


def _beats(task: Task, value: float, bound: float) -> bool:
    slack = _BOUND_RTOL * max(1.0, abs(bound))
    if task.bound:  # a solver's bound is proven up to its MILP tolerances (solver.MILP_BOUND_SLACK)
        from schedgym.envs.memory_mapping.solver import MILP_BOUND_SLACK

        slack = max(slack, MILP_BOUND_SLACK * max(1.0, abs(bound)))
    return value > bound + slack if task.direction == "max" else value < bound - slack


def bound_violations(task: Task, rows_by_policy: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Every episode that keeps the task's rule and beats its proven bound (direction-aware): must be none.

    A ``bound_metric`` is checked against the row's own value (the proof is about that episode); a bound
    policy's bound against every policy's episode on the same instance and seed.
    """
    bounds = proven_bounds(task, rows_by_policy)
    out = []
    for policy, rows in sorted(rows_by_policy.items()):
        for r in rows:
            if not _keeps_rule(task, r):
                continue
            key = (str(r["instance"]), int(r["seed"]))
            if task.bound_metric and not task.bound:
                b = float((r.get("metrics") or {}).get(task.bound_metric, math.nan))
            else:
                b = bounds.get(key, math.nan)
            value = float(r["metric"])
            if math.isfinite(b) and _beats(task, value, b):
                side = "upper" if task.direction == "max" else "lower"
                out.append(f"{policy} on {key[0]} seed {key[1]}: {task.metric} {value:.10g} beats the proven "
                           f"{side} bound {b:.10g} ({task.bound or task.bound_metric})")
    return out


def build_board(task: Task, rows_by_policy: Mapping[str, list[Mapping[str, Any]]]) -> TaskBoard:
    scorer = _score_sweep_task if task.aggregate == "sweep" else _score_mean_task
    scores = {p: scorer(task, p, rows) for p, rows in rows_by_policy.items() if rows}
    ref = scores.get(task.reference)
    bounds = proven_bounds(task, rows_by_policy)
    by_inst: dict[str, list[float]] = defaultdict(list)
    for (inst, _), v in sorted(bounds.items()):
        by_inst[inst].append(v)
    bound_per_inst = {inst: float(np.mean(v)) for inst, v in by_inst.items()}
    keepers = [s for s in scores.values() if s.policy in task.best_known and s.meets is not False
               and math.isfinite(s.value) and not (task.aggregate == "sweep" and s.value == 0)]
    best = (max if task.direction == "max" else min)(keepers, key=lambda s: s.value) if keepers else None
    for s in scores.values():
        if ref is not None:
            common = [i for i in s.per_instance if i in ref.per_instance]
            if common:
                s.normalised = _geomean(_ratio(task, s.per_instance[i], ref.per_instance[i]) for i in common)
        if s.meets is False:  # broke the task's rule: score 0, no gap (a cheaper miss is not closer to the bound)
            s.normalised = 0.0
            continue
        if bound_per_inst:
            gaps = [_gap(task, s.per_instance[i], bound_per_inst[i]) for i in s.per_instance if i in bound_per_inst]
            gaps = [g for g in gaps if g is not None]
            s.gap_pct = float(np.mean(gaps)) if gaps else None
        if best is not None:
            if task.aggregate == "sweep":
                s.gap_best_pct = _gap(task, s.value, best.value)
            else:
                gaps = [_gap(task, s.per_instance[i], best.per_instance[i]) for i in s.per_instance if i in best.per_instance]
                gaps = [g for g in gaps if g is not None]
                s.gap_best_pct = float(np.mean(gaps)) if gaps else None
    # The task's bound: only when every instance it scores has one (a mean over some is not comparable).
    have_all = bool(bound_per_inst) and all(i.name in bound_per_inst for i in task.instances
                                            if any(i.name in s.per_instance for s in scores.values()))
    bound_value = float(np.mean(list(bound_per_inst.values()))) if have_all else None
    reverse = task.direction == "max"

    def rank(s: PolicyScore) -> tuple[int, float, str]:
        if s.meets is False:  # after every policy that keeps the rule, best attainment first
            return (1, -(s.order_value if s.order_value is not None else -math.inf), s.policy)
        return (0, (-s.value if reverse else s.value) if math.isfinite(s.value) else math.inf, s.policy)

    ordered = sorted(scores.values(), key=rank)
    return TaskBoard(task, ordered, bound_value, best.value if best else None, best.policy if best else None,
                     bound_violations(task, rows_by_policy))


@dataclass
class LoadReport:
    files: list[Path] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def load_boards(
    results: Sequence[str | Path],
    exclude: Iterable[tuple[str, int]] = (),
    tiers: Sequence[str] | None = None,
    agents_dirs: Sequence[str | Path] = (),
) -> tuple[list[TaskBoard], LoadReport]:
    """Task boards from every CSV under ``results``; ``exclude``: (file path, line) of rejected rows.

    Agent rows get their training budget from the agent's record, looked up by name in ``agents_dirs``
    and then ``agents/`` beside the results folder (agent_records.py).
    """
    excluded = {(str(Path(p).resolve()), int(line)) for p, line in exclude}
    report = LoadReport()
    rows_by_task: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    agent_dirs_of: dict[str, list[Path]] = {}  # agent name -> where to look for its record
    paths = find_results([p for p in results if Path(p).exists()])
    for path in paths:
        parsed = read_rows(path)
        report.files.append(path)
        for line, why in parsed.bad_lines:
            report.ignored.append(f"{path}:{line}: {why}")
        for r in parsed.rows:
            task = TASKS.get(str(r["task"]))
            if (str(path.resolve()), int(r["_line"])) in excluded:
                report.ignored.append(f"{path}:{r['_line']}: failed validation")
                continue
            if task is None or task.version != int(r["task_version"]):
                report.ignored.append(f"{path}:{r['_line']}: task {r['task']} v{r['task_version']} is not current")
                continue
            if tiers is not None and task.tier not in tiers:
                continue
            try:
                name = agent_name(r)
            except ValueError:
                name = None
            if name is not None and name not in agent_dirs_of:
                agent_dirs_of[name] = [*map(Path, agents_dirs), *default_agents_dirs(path)]
            rows_by_task[task.name][str(r["policy"])].append(r)
    # Duplicates (same task version, instance, seed) count once: the first row written wins.
    for by_pol in rows_by_task.values():
        for pol, rows in by_pol.items():
            seen, unique = set(), []
            for r in rows:
                k = (r["instance"], int(r["seed"]))
                if k not in seen:
                    seen.add(k)
                    unique.append(r)
            by_pol[pol] = unique
    # The full tier (the real numbers) first, then the quick tier; tasks in their definition order.
    order = {name: (TASKS[name].tier != "full", i) for i, name in enumerate(TASKS)}
    boards = [build_board(TASKS[name], rows_by_task[name]) for name in sorted(rows_by_task, key=lambda n: order[n])]
    for b in boards:
        for s in b.scores:
            rows = rows_by_task[b.task.name][s.policy]
            names = {n for n in (_safe_agent_name(r) for r in rows) if n is not None}
            if len(names) != 1:
                continue
            (name,) = names
            try:
                record = find_agent_record(name, agent_dirs_of.get(name, []))
            except ValueError as exc:
                report.ignored.append(f"{b.task.name} / {s.policy}: no training budget shown: {exc}")
                continue
            s.training = training_budget(record)
            s.agent_dir = record.path
            s.train_instances = None if record.train is None else [str(x) for x in record.train]
    return boards, report


def _safe_agent_name(row: Mapping[str, Any]) -> str | None:
    try:
        return agent_name(row)
    except ValueError:
        return None


def aggregate(boards: Sequence[TaskBoard]) -> list[tuple[str, str, str, str, str, float | None]]:
    """(tier, family, policy, kind, "scored/run tasks", geometric mean of normalised scores).

    Full tier first, then by family, best first. Only tasks where the score is defined count (e.g. not
    where the reference itself scored 0).
    """
    acc: dict[tuple[str, str, str], list[float | None]] = defaultdict(list)
    kinds: dict[tuple[str, str, str], str] = {}
    for b in boards:
        for s in b.scores:
            key = (b.task.tier, b.task.family, s.policy)
            acc[key].append(s.normalised)
            kinds[key] = s.kind
    out = [
        (tier, fam, pol, kinds[(tier, fam, pol)], f"{sum(x is not None for x in v)}/{len(v)}", _geomean(v))
        for (tier, fam, pol), v in acc.items()
    ]
    return sorted(out, key=lambda t: (t[0] != "full", t[1], -(t[5] if t[5] is not None else -1.0), t[2]))


# ---------------------------------------------------------------------------------------- formatting
def _fmt(x: float | None, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def _value_cell(s: PolicyScore) -> str:
    txt = _fmt(s.value) + (f" ± {_fmt(s.std, '.2g')}" if s.std is not None else "")
    if not s.complete:
        txt += f" ({s.n_episodes}/{s.expected_episodes} episodes)"
    if s.meets is False:
        txt += " (misses the rule" + (f", {_fmt(s.order_value, '.4f')}" if s.order_value is not None else "") + ")"
    return txt


def _interval_cell(s: PolicyScore) -> str:
    if s.interval is None:
        return "—"
    i = s.interval
    return f"{_fmt(i.iqm)} [{_fmt(i.ci_low)}, {_fmt(i.ci_high)}]"


def _role_suffix(b: TaskBoard, s: PolicyScore) -> str:
    if s.policy == b.task.bound:
        return " (proves the bound)"
    if s.policy == b.best_known_policy:
        return " (best known)"
    return ""


def _bound_text(b: TaskBoard) -> str:
    if b.bound_value is not None:
        return f"{_fmt(b.bound_value)} ({b.bound_source})"
    if b.bound_source:
        return f"— ({b.bound_source}: not proven on every instance)"
    return "— (none proven)"


def _best_known_text(b: TaskBoard) -> str:
    if b.best_known_value is None:
        return "—" + (f" ({', '.join(b.task.best_known)} not run or all break the rule)" if b.task.best_known else "")
    return f"{_fmt(b.best_known_value)} ({b.best_known_policy})"


def _reference_rows(boards: Sequence[TaskBoard]) -> tuple[list[str], list[list[str]]]:
    """Per task: the proven bound and the best-known score, side by side (the two reference columns)."""
    header = ["task", "tier", "metric", "bound (proven)", "best known (not a proof)"]
    rows = [[b.task.name, b.task.tier, b.task.metric_label, _bound_text(b), _best_known_text(b)] for b in boards]
    return header, rows


def _task_rows(b: TaskBoard) -> tuple[list[str], list[list[str]]]:
    t = b.task
    header = ["policy", "kind", t.metric_label, "IQM [95 % CI]", "seeds", "score vs " + t.reference,
              "gap to bound (proven" + (f": {b.bound_source})" if b.bound_source else ")"),
              "gap to best known" + (f" ({b.best_known_policy})" if b.best_known_policy else ""),
              "walltime s/episode", "date"]
    rows = []
    for s in b.scores:
        name = s.policy + (" (reference)" if s.policy == t.reference else "") + _role_suffix(b, s)
        rows.append([
            name,
            s.kind + (f" (trained {s.training.describe()})" if s.training is not None else ""),
            _value_cell(s),
            _interval_cell(s),
            str(s.n_seeds),
            _fmt(s.normalised, ".3f"),
            (_fmt(s.gap_pct, ".2f") + " %") if s.gap_pct is not None else "—",
            (_fmt(s.gap_best_pct, ".2f") + " %") if s.gap_best_pct is not None else "—",
            _fmt(s.walltime_s, ".3g"),
            s.date,
        ])
    return header, rows


def _task_note(b: TaskBoard) -> str:
    t = b.task
    inst = ", ".join(i.name for i in t.instances) if len(t.instances) <= 12 else f"{len(t.instances)} instances ({t.instances[0].name} .. {t.instances[-1].name})"
    kw = ", ".join(f"{k}={v!r}" for k, v in sorted(t.env_kwargs.items())) or "defaults"
    note = (
        f"{t.metric_sentence} {t.description[0].upper() + t.description[1:]}. Env `{t.env_id}` ({kw}); instances: {inst}; "
        f"seeds: {', '.join(map(str, t.seeds))}. Split: scored on the test split, agents may train only on the train "
        f"split ({t.split.describe()})."
    )
    if t.policy_kwargs:
        note += " Budgets: " + "; ".join(f"{p} {dict(k)}" for p, k in sorted(t.policy_kwargs.items())) + "."
    if t.aggregate == "sweep" and t.sweep is not None:
        note += (
            f" Score: largest n_servers with 0 brake events and mean HP/LP perf loss <= {t.sweep.hp_loss_max:.0%}/"
            f"{t.sweep.lp_loss_max:.0%} over the seeds, walking up from {t.sweep.provisioned_servers} "
            f"(stop after {t.sweep.patience} failing counts)."
        )
    if t.constraint is not None:
        note += (
            f" Rule: `{t.constraint}` in every episode; policies that break it rank after all that keep it "
            f"(by mean `{t.constraint_order}`) and score 0."
        )
    side = "upper" if t.direction == "max" else "lower"
    if b.bound_value is not None:
        note += (f" Bound (proven {side} bound, {b.bound_source}; mean over the instances, comparable with the "
                 f"mean column): {_fmt(b.bound_value)}.")
    elif b.bound_source:
        note += f" Bound: {b.bound_source} proved no {side} bound on some instances, so the task shows none."
    else:
        note += " Bound: none proven for this task."
    if b.best_known_value is not None:
        note += f" Best known (not a proof, may be beaten): {_fmt(b.best_known_value)} by {b.best_known_policy}."
    for v in b.violations:
        note += f" BOUND VIOLATED: {v}."
    return note


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _aggregate_rows(boards: Sequence[TaskBoard]) -> tuple[list[str], list[list[str]]]:
    header = ["tier", "family", "policy", "kind", "tasks scored", "geomean score vs reference"]
    rows = [[tier, fam, pol, kind, n, _fmt(g, ".3f")] for tier, fam, pol, kind, n, g in aggregate(boards)]
    return header, rows


_INTRO = (
    "Scores are normalised to each task's reference policy (> 1 beats it). Two reference values per task: "
    "the bound is proven only (an exact solver's proven optimum or bound, or a proven bound every episode "
    "records; no episode that keeps the rule beats it, which the tests check), and the best known is the "
    "best score of the task's oracles, which are not proofs and may be beaten. The interval "
    "column is the interquartile mean over instances x seeds with a 95 % bootstrap confidence interval "
    "(stratified by instance when every instance has several seeds, else over instances; a sweep is "
    "re-walked on resampled seeds; see `schedgym/benchmark/intervals.py`). Every task is scored on its test split; an agent may train only on "
    "the task's train split (both are listed under each task; `schedgym validate` rejects an agent row whose "
    "training instances overlap the test split), and its training budget (env steps, wall time, cores) "
    "is shown in its kind column. A policy that breaks a task's rule ranks last with \"fails the rule\" "
    "where its bar would be. `schedgym leaderboard --json PATH` exports all of it. Every row of "
    "every results CSV replays with `schedgym validate`. Regenerate with `make bench` "
    "(quick tier) or `schedgym bench --tier full && schedgym leaderboard`."
)


def render_markdown(boards: Sequence[TaskBoard]) -> str:
    out = ["# schedgym leaderboard", "", _INTRO, "", "Interactive page with plots: [index.html](index.html).", ""]
    out += ["## Aggregate", "", "Geometric mean over the family's tasks of the normalised score.", ""]
    out += [_md_table(*_aggregate_rows(boards)), ""]
    out += ["## Bound and best known", "", "Per task: the proven bound and the best-known score (details under each task).", ""]
    out += [_md_table(*_reference_rows(boards)), ""]
    for b in boards:
        out += [f"## {b.task.name} (v{b.task.version}, {b.task.tier} tier)", "", _task_note(b), "", _md_table(*_task_rows(b)), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


_BAR_COLOURS = {"reference": "#d62728", "bound": "#7f7f7f", "best": "#9467bd", "agent": "#2ca02c", "other": "#1f77b4"}


def _bar_role(b: TaskBoard, s: PolicyScore) -> str:
    t = b.task
    if s.policy == t.reference:
        return "reference"
    if s.policy == t.bound:
        return "bound"
    if s.policy == b.best_known_policy:
        return "best"
    return "agent" if s.kind == "agent" else "other"


def _no_bar_reason(t: Task, s: PolicyScore) -> str | None:
    """Why a policy gets a text instead of a bar (None: it gets a bar)."""
    if s.meets is False:
        attained = f", {t.constraint_order} {_fmt(s.order_value, '.3f')}" if s.order_value is not None else ""
        return f"fails the rule ({t.constraint} in every episode{attained})"
    if t.aggregate == "sweep" and s.value == 0:
        return f"fails the rule: no count from {t.sweep.provisioned_servers if t.sweep else '?'} servers up passes"
    if not math.isfinite(s.value):
        return "no score"
    return None


def bar_chart(b: TaskBoard) -> str:
    """Horizontal bars of the task score, best first, with every line and colour in the legend.

    A policy that breaks the task's rule gets the words "fails the rule" where its bar would be: its
    metric is not comparable (a cheaper autoscaler that misses the SLA is not better), and an empty
    bar would read as a score of 0 with no explanation.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = b.task
    scores = b.scores[::-1]
    fig = _figure(7.5, 0.45 * max(3, len(scores)) + 1.9)
    ax = fig.add_subplot()
    names = [s.policy for s in scores]
    reasons = [_no_bar_reason(t, s) for s in scores]
    vals = [0.0 if r is not None else s.value for s, r in zip(scores, reasons)]
    errs = [0.0 if r is not None else (s.std or 0.0) for s, r in zip(scores, reasons)]
    roles = [_bar_role(b, s) for s in scores]
    ax.barh(names, vals, xerr=errs if any(e > 0 for e in errs) else None, color=[_BAR_COLOURS[r] for r in roles],
            capsize=3)
    for i, reason in enumerate(reasons):
        if reason is not None:
            ax.annotate(reason, xy=(0, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                        color="#a00000", style="italic")
    handles: list[Any] = [Patch(color=_BAR_COLOURS[r], label=label) for r, label in (
        ("reference", f"reference policy ({t.reference})"),
        ("bound", f"policy that proves the bound ({t.bound})" if t.bound else ""),
        ("best", f"best-known policy ({b.best_known_policy}, not a proof)"),
        ("agent", "trained agent"),
        ("other", "other policies"),
    ) if r in roles and label]
    ref = next((s for s in b.scores if s.policy == t.reference and _no_bar_reason(t, s) is None), None)
    if ref is not None:
        ax.axvline(ref.value, color=_BAR_COLOURS["reference"], linestyle="-.", linewidth=1)
        handles.append(Line2D([], [], color=_BAR_COLOURS["reference"], linestyle="-.",
                              label=f"reference score ({t.reference}) = {_fmt(ref.value)}"))
    if b.bound_value is not None:
        ax.axvline(b.bound_value, color="k", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="k", linestyle="--",
                              label=f"proven bound ({b.bound_source}) = {_fmt(b.bound_value)}"))
    if b.best_known_value is not None:
        ax.axvline(b.best_known_value, color=_BAR_COLOURS["best"], linestyle=(0, (1, 1)), linewidth=1.2)
        handles.append(Line2D([], [], color=_BAR_COLOURS["best"], linestyle=(0, (1, 1)),
                              label=f"best known ({b.best_known_policy}, not a proof) = {_fmt(b.best_known_value)}"))
    if t.aggregate == "sweep" and t.sweep is not None:
        ax.axvline(t.sweep.provisioned_servers, color="k", linestyle=":", linewidth=1)
        handles.append(Line2D([], [], color="k", linestyle=":",
                              label=f"power budget: {t.sweep.provisioned_servers} provisioned servers"))
    if any(r is not None for r in reasons):
        ax.set_xlim(left=0.0)
    if any(e > 0 for e in errs):
        handles.append(Line2D([], [], color="k", marker="|", linestyle="-", label="± std over seeds"))
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=2, frameon=False)
    ax.set_xlabel(t.metric_label)
    what = "servers deployable over the seeds" if t.aggregate == "sweep" else "mean over seeds"
    ax.set_title(f"{t.name}: {what} ({'higher' if t.direction == 'max' else 'lower'} is better)", fontsize=10)
    return _png(fig)


def _learning_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The run's ``episode/return`` points (schedgym/training/curves.py), the one tag every algorithm writes.

    Nothing else is plotted: older PPO runs logged only a smoothed ``rollout/ep_rew_mean``, which is not
    comparable with per-episode returns, so such a run gets a line saying it has no curve.
    """
    from schedgym.training.curves import EPISODE_RETURN_TAG, read_episode_returns

    curve = read_episode_returns(run_dir)
    return {} if curve is None else {EPISODE_RETURN_TAG: curve}


def _algo_label(run_dir: Path) -> str:
    """``ppo/sb3``, ``ppo/rllib`` or ``muzero`` from the run's record (the directory name if it has none)."""
    import json

    try:
        meta = json.loads((run_dir / "schedgym_agent.json").read_text(encoding="utf-8"))
        algo = str(meta["algo"]) + (f"/{meta['backend']}" if meta.get("backend") else "")
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name
    return f"{run_dir.name} ({algo})"


def learning_curve_plot(run_dir: Path) -> str | None:
    """Every training episode's return as a point at its env step, with the running mean of 20 episodes."""
    curves = _learning_curves(run_dir)
    if not curves:
        return None
    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot()
    for tag, (x, y) in sorted(curves.items()):
        ax.plot(x, y, ".", markersize=2, alpha=0.35, color="#1f77b4", label=f"{tag} (one point per episode)")
        k = min(20, len(y))
        mean = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1:], mean, color="#1f77b4", linewidth=1.4, label=f"running mean of {k} episodes")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (env units)")
    ax.set_title(f"learning curve: {_algo_label(run_dir)}", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.6em 0 1em;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
td{white-space:nowrap}
td.num{text-align:right}
th{background:#f3f3f3}
tr.reference td{background:#fff2f2}
tr.bound td{background:#f2f2f2}
tr.best-known td{background:#f4f8ff}
section{margin-bottom:2.5em}
p.note{color:#555;font-size:13px}
img{max-width:100%}
"""


_NUMERIC = re.compile(r"^[-—0-9.]")


def _html_table(header: list[str], rows: list[list[str]], attrs: str = "", row_classes: Sequence[str] = ()) -> str:
    out = [f"<table {attrs}>".replace("<table >", "<table>"), "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for i, r in enumerate(rows):
        cls = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        cells = "".join(f'<td class="num">{html.escape(c)}</td>' if _NUMERIC.match(c) else f"<td>{html.escape(c)}</td>" for c in r)
        out.append((f'<tr class="{cls}">' if cls else "<tr>") + cells + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(boards: Sequence[TaskBoard], run_dirs: Sequence[str | Path] = ()) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>schedgym leaderboard</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>schedgym leaderboard</h1>",
        f"<p>{html.escape(_INTRO)}</p>",
        "<h2>Tasks</h2><ul>" + "".join(f'<li><a href="#task-{html.escape(b.task.name)}">{html.escape(b.task.name)}</a></li>' for b in boards) + "</ul>",
        '<h2 id="aggregate">Aggregate</h2>',
        _html_table(*_aggregate_rows(boards), attrs='class="aggregate-table" id="aggregate-table"'),
        '<h2 id="references">Bound and best known</h2>',
        _html_table(*_reference_rows(boards), attrs='class="reference-table" id="reference-table"'),
    ]
    for b in boards:
        t = b.task
        header, rows = _task_rows(b)
        classes = ["reference" if s.policy == t.reference else "bound" if s.policy == t.bound
                   else "best-known" if s.policy == b.best_known_policy else "" for s in b.scores]
        parts += [
            f'<section id="task-{html.escape(t.name)}">',
            f"<h2>{html.escape(t.name)} <small>(v{t.version}, {t.tier} tier)</small></h2>",
            f'<p class="note">{html.escape(_task_note(b))}</p>',
            _html_table(header, rows, attrs=f'class="task-table" data-task="{html.escape(t.name)}"', row_classes=classes),
            f'<img alt="{html.escape(t.name)} bar chart" src="data:image/png;base64,{bar_chart(b)}">',
            "</section>",
        ]
    curves = [(Path(d), learning_curve_plot(Path(d))) for d in sorted(set(map(str, run_dirs)))]
    if curves:
        parts.append('<h2 id="learning-curves">Learning curves</h2>')
        parts.append("<p>Every algorithm logs the same tag, <code>episode/return</code>: the return of each "
                     "finished training episode in the env's own units at the env step it ended "
                     "(<code>schedgym/training/curves.py</code>); the line is a running mean.</p>")
        for d, png in curves:
            if png is None:
                parts.append(f"<p>{html.escape(_algo_label(d))}: no <code>episode/return</code> points in its "
                             "TensorBoard logs (a run trained before the common tag logged only a smoothed mean, "
                             "which is not plotted beside per-episode returns).</p>")
            else:
                parts.append(f'<img alt="learning curve {html.escape(d.name)}" src="data:image/png;base64,{png}">')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_leaderboard(
    results: Sequence[str | Path],
    out_dir: str | Path,
    run_dirs: Sequence[str | Path] = (),
    exclude: Iterable[tuple[str, int]] = (),
    agents_dirs: Sequence[str | Path] = (),
) -> tuple[Path, Path, list[TaskBoard], LoadReport]:
    """Render ``out_dir/README.md`` and ``out_dir/index.html`` from the CSVs under ``results``.

    ``agents_dirs``: where agents' records (training budgets) are looked up first (see :func:`load_boards`).
    Learning curves: ``run_dirs`` and the run directory of every agent on the board.
    """
    boards, report = load_boards(results, exclude, agents_dirs=agents_dirs)
    run_dirs = [*run_dirs, *sorted({str(s.agent_dir) for b in boards for s in b.scores if s.agent_dir is not None})]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "README.md", out / "index.html"
    md.write_text(render_markdown(boards), encoding="utf-8")
    page.write_text(render_html(boards, run_dirs), encoding="utf-8")
    return md, page, boards, report
