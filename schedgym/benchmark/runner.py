"""Run policies over benchmark tasks, one episode per job, in parallel on Ray (or in-process).

Every finished episode is appended to ``DIR/<task>/<policy>.csv`` at once, so a run that is killed
resumes where it stopped: jobs whose (task version, instance, seed) row already exists are skipped.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedgym.benchmark.results import (
    append_row,
    encode_actions,
    read_rows,
    results_path,
    row_key,
)
from schedgym.benchmark.tasks import Task, get_task

__all__ = ["BenchSummary", "Job", "PolicySpec", "plan_jobs", "resolve_policy_specs", "run_bench", "run_job"]


@dataclass(frozen=True)
class PolicySpec:
    """A baseline name, or a trained agent's run directory (``path``) with the env id it was trained on."""

    label: str  # the name rows and files carry
    name: str  # the baseline name, or the directory
    is_agent: bool = False
    env_id: str | None = None  # agents: the only env id they run on


@dataclass(frozen=True)
class Job:
    task: str
    instance: str
    seed: int
    policy: PolicySpec

    def describe(self) -> str:
        return f"{self.task} / {self.policy.label} / {self.instance} / seed {self.seed}"


def _registered_env_ids() -> set[str]:
    from schedgym.envs import ENV_ENTRIES

    return {e.id for e in ENV_ENTRIES}


def _baselines_for(task: Task) -> dict[str, Any] | None:
    """The task's family's registered policies, or None when the env or its baselines are missing."""
    if task.env_id not in _registered_env_ids():
        return None
    from schedgym.baselines import list_policies

    try:
        return list_policies(task.env_id)
    except ImportError:
        return None


def resolve_policy_specs(names: Sequence[str]) -> list[PolicySpec]:
    """``--policy`` values: directories with ``schedgym_agent.json`` become agents, the rest baseline names."""
    from schedgym.agents import AGENT_META_FILE, read_agent_meta

    specs = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            meta_file = path / AGENT_META_FILE
            if not meta_file.is_file():
                raise ValueError(f"--policy {name}: a directory must hold {AGENT_META_FILE} (a `schedgym train` run dir)")
            meta = read_agent_meta(path)
            env_id = str(meta.get("env_id", ""))
            env_id = env_id.split(":", 1)[1] if env_id.startswith("schedgym:") else env_id
            specs.append(PolicySpec(label=path.resolve().name, name=str(path.resolve()), is_agent=True, env_id=env_id))
        elif "/" in name or name.startswith("."):
            raise ValueError(f"--policy {name}: no such directory")
        else:
            specs.append(PolicySpec(label=name, name=name))
    return specs


def plan_jobs(
    tasks: Sequence[Task], policies: Sequence[PolicySpec] | None, log: Callable[[str], None] = print
) -> list[tuple[Task, PolicySpec, list[Job]]]:
    """Every (task, policy) pair to run with its episodes. ``policies=None``: all baselines of each family.

    Tasks whose env (or baselines module) is not registered are skipped with a message; a baseline name
    that none of the selected tasks' families knows is an error.
    """
    plan: list[tuple[Task, PolicySpec, list[Job]]] = []
    used: set[str] = set()
    known: set[str] = set()
    for task in tasks:
        registered = _baselines_for(task)
        if registered is None:
            log(f"skipping task {task.name}: env {task.env_id} (or its baselines) is not registered in this build")
            continue
        known |= set(registered)
        specs = policies if policies is not None else [PolicySpec(label=n, name=n) for n in sorted(registered)]
        for spec in specs:
            if spec.is_agent:
                if spec.env_id != task.env_id:
                    continue
            elif spec.name not in registered:
                continue
            used.add(spec.label)
            jobs = [Job(task.name, inst.name, seed, spec) for inst in task.instances for seed in task.seeds]
            plan.append((task, spec, jobs))
    if policies is not None:
        unknown = [p.name for p in policies if not p.is_agent and p.name not in known]
        if unknown:
            raise ValueError(f"unknown policy name(s) {unknown} for the selected tasks; baselines: {sorted(known)}")
        for p in policies:
            if p.label not in used:
                log(f"policy {p.label} ({p.env_id}) matches none of the selected tasks; nothing to run for it")
    return plan


def _make_policy(task: Task, spec: PolicySpec, seed: int) -> tuple[Any, dict[str, Any]]:
    if spec.is_agent:
        from schedgym.agents import load_agent_policy

        return load_agent_policy(spec.name, env_id=task.env_id), {}
    from schedgym.baselines import make_policy

    kwargs = dict(task.policy_kwargs.get(spec.name, {}))
    if spec.name == "random":
        kwargs.setdefault("seed", seed)
    return make_policy(spec.name, task.env_id, **kwargs), kwargs


def _policy_extra(policy: Any) -> dict[str, Any]:
    """Solver facts worth keeping: an exact solver's bound (CP-SAT) and whether it proved optimality."""
    extra: dict[str, Any] = {}
    result = getattr(policy, "result", None)
    for attr, key in (("bound_frac", "bound"), ("optimal", "optimal"), ("objective_frac", "solver_objective")):
        value = getattr(result, attr, None)
        if value is not None:
            extra[key] = bool(value) if key == "optimal" else float(value)
    return extra


def _check_agent_spaces(spec: PolicySpec, env: Any, env_kwargs: dict[str, Any]) -> None:
    """A trained agent only runs on the spaces it was trained on: say so clearly instead of a shape error."""
    from schedgym.agents import read_agent_meta
    from schedgym.evaluation import make_env

    meta = read_agent_meta(spec.name)
    trained_kwargs = meta.get("env_kwargs") or {}
    if not isinstance(trained_kwargs, dict):
        raise ValueError(f"{spec.name}: schedgym_agent.json env_kwargs must be a JSON object")
    trained = make_env(env.spec.id if env.spec else str(meta.get("env_id")), trained_kwargs)
    try:
        same = (
            trained.observation_space.shape == env.observation_space.shape
            and trained.action_space == env.action_space
        )
    finally:
        trained.close()
    if not same:
        raise ValueError(
            f"agent {spec.label} was trained with env kwargs {trained_kwargs} whose observation/action spaces "
            f"({trained.observation_space.shape}, {trained.action_space}) differ from the task's "
            f"({env.observation_space.shape}, {env.action_space}) with {env_kwargs}; train it with the task's "
            "kwargs or give its policy env_overrides"
        )


def run_job(job: Job) -> dict[str, Any]:
    """Run one episode and return its results row (the policy is rebuilt per episode)."""
    import schedgym
    from schedgym.baselines import env_kwargs_for
    from schedgym.evaluation import make_env, run_episode

    task = get_task(job.task)
    inst = task.instance(job.instance)
    policy, policy_kwargs = _make_policy(task, job.policy, job.seed)
    env_kwargs = env_kwargs_for(policy, task.env_kwargs_for(inst))
    env = make_env(task.env_id, env_kwargs)
    if job.policy.is_agent:
        _check_agent_spaces(job.policy, env, env_kwargs)
    try:
        result = run_episode(env, policy, seed=job.seed, record_actions=True)
    finally:
        env.close()
    metrics = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in result.metrics.items()}
    return {
        "task": task.name,
        "task_version": task.version,
        "env_id": task.env_id,
        "env_kwargs": env_kwargs,
        "instance": inst.name,
        "seed": job.seed,
        "policy": job.policy.label,
        "metric": task.row_metric(metrics, result.episode_return),
        "episode_return": float(result.episode_return),
        "episode_length": int(result.episode_length),
        "walltime_s": round(float(result.walltime_s), 4),
        "package_version": schedgym.__version__,
        "actions": encode_actions(result.actions),
        "date": _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
        "policy_kwargs": policy_kwargs,
        "metrics": metrics,
        "extra": {**_policy_extra(policy), **({"agent_dir": job.policy.name} if job.policy.is_agent else {})},
    }


def _run_job_safe(job: Job) -> tuple[Job, dict[str, Any] | None, str | None]:
    try:
        return job, run_job(job), None
    except Exception as exc:  # noqa: BLE001  (reported by the driver; one failing episode must not lose the others)
        return job, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"


@dataclass
class BenchSummary:
    planned: int = 0
    skipped_done: int = 0
    finished: int = 0
    failed: list[tuple[str, str]] | None = None
    files: list[Path] | None = None


def _init_ray(workers: int, address: str | None) -> Any:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        if address:
            from schedgym.raynet import connect_ray

            connect_ray(address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return ray


#: Lock file ``bench`` holds in ``--out`` while it runs (one writer per results directory).
LOCK_FILE = ".bench.lock"


class OutDirLock:
    """An exclusive, non-blocking ``flock`` on ``DIR/.bench.lock``: a second ``bench`` on the same ``--out``
    fails fast with a clear message instead of writing duplicate rows. Released when the process ends."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> OutDirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ValueError(
                f"--out {self.path.parent} is in use by another `schedgym bench` (pid {holder}; lock {self.path}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def run_bench(
    tasks: Sequence[Task],
    policies: Sequence[PolicySpec] | None,
    out_dir: str | Path,
    workers: int = 2,
    address: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> BenchSummary:
    """Run every planned episode not yet in ``out_dir``; rows are appended as episodes finish.

    ``workers == 1`` without ``address`` runs in this process (no Ray); otherwise episodes are Ray tasks
    on an embedded local Ray with ``workers`` CPUs (or the cluster at ``address``).
    """
    from rich.console import Console

    console = Console(stderr=True)
    log = log or (lambda msg: console.print(msg, markup=False, highlight=False))
    out_dir = Path(out_dir)
    plan = plan_jobs(tasks, policies, log)
    with OutDirLock(out_dir):
        return _run_locked(plan, out_dir, workers, address, progress, log, console)


def _run_locked(
    plan: list[tuple[Task, PolicySpec, list[Job]]],
    out_dir: Path,
    workers: int,
    address: str | None,
    progress: bool,
    log: Callable[[str], None],
    console: Any,
) -> BenchSummary:
    summary = BenchSummary(failed=[], files=[])
    todo: list[Job] = []
    for task, spec, jobs in plan:
        path = results_path(out_dir, task.name, spec.label)
        summary.files.append(path)
        summary.planned += len(jobs)
        done: set[tuple[int, str, int]] = set()
        if path.exists():
            parsed = read_rows(path)
            done = {row_key(r) for r in parsed.rows}
            for line, why in parsed.bad_lines:
                log(f"{path}:{line}: ignoring a malformed row ({why}); its episode is rerun")
        for job in jobs:
            if (task.version, job.instance, job.seed) in done:
                summary.skipped_done += 1
            else:
                todo.append(job)
    if summary.skipped_done:
        log(f"resuming: {summary.skipped_done} of {summary.planned} episodes already in {out_dir}")
    if not todo:
        return summary
    # Expensive policies first, so the last jobs to finish are short ones.
    slow = ("cpsat", "bayesian", "oracle")
    todo.sort(key=lambda j: (not any(s in j.policy.label for s in slow), j.task, j.policy.label, j.instance, j.seed))

    def record(job: Job, row: dict[str, Any] | None, error: str | None) -> None:
        if row is not None:
            task = get_task(job.task)
            append_row(results_path(out_dir, task.name, job.policy.label), row)
            summary.finished += 1
        else:
            summary.failed.append((job.describe(), error or "unknown error"))
            log(f"FAILED {job.describe()}: {(error or 'unknown error').splitlines()[0]}")

    from schedgym.progress import Progress

    with Progress(len(todo), "bench", unit="episodes", enabled=progress, stream=console.file) as bar:
        if workers == 1 and not address:
            for job in todo:
                bar.update(description=job.describe())
                record(*_run_job_safe(job))
                bar.update(advance=1)
        else:
            ray = _init_ray(workers, address)
            remote = ray.remote(num_cpus=1, max_retries=0)(_run_job_safe)
            pending = {remote.remote(job): job for job in todo}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        record(*ray.get(ref))
                    except Exception as exc:  # noqa: BLE001  (the worker died, e.g. out of memory)
                        record(job, None, f"{type(exc).__name__}: {exc}")
                    bar.update(advance=1, description=job.describe())
    return summary


def print_summary(summary: BenchSummary, out_dir: str | Path) -> None:
    print(
        f"bench: {summary.finished} episode(s) run, {summary.skipped_done} already done, "
        f"{len(summary.failed or [])} failed; results in {out_dir}",
        file=sys.stderr,
    )
