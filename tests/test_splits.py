"""Train/test splits of the benchmark tasks, and validation rejecting agents trained on a task's test split."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

import pytest

from schedgym.benchmark.splits import (
    GENERATED_SOURCES,
    SOURCE_KWARGS,
    InstanceSpec,
    Split,
    instance_source,
    overlapping,
    train_instances_for,
)
from schedgym.benchmark.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "leaderboard" / "results"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_train_and_test_are_disjoint_for_every_task(name: str) -> None:
    split = TASKS[name].split
    assert split.train, f"{name}: no train split"
    assert split.test, f"{name}: no test split"
    assert overlapping(split.train, split.test) == []
    assert split.describe().startswith("train: ") and " | test: " in split.describe()


def test_the_test_split_is_exactly_what_the_committed_rows_score() -> None:
    """Every committed row's instance source (and seed, for generated sources) is in its task's test split,
    and every test spec is scored by some committed row of that task (when the task has rows)."""
    from schedgym.benchmark.results import find_results, read_rows

    used: dict[str, set[str]] = {}
    for path in find_results([RESULTS]):
        for row in read_rows(path).rows:
            task = TASKS.get(str(row["task"]))
            if task is None or task.version != int(row["task_version"]):
                continue
            kw = task.env_kwargs_for(task.instance(str(row["instance"])))
            src = instance_source(task.env_id, kw)
            hits = [s for s in task.split.test if s.overlaps(InstanceSpec(src, seeds=(int(row["seed"]),)))]
            assert hits, f"{path}:{row['_line']}: {src} seed {row['seed']} is outside {task.name}'s test split"
            assert not any(s.overlaps(InstanceSpec(src, seeds=(int(row["seed"]),))) for s in task.split.train)
            used.setdefault(task.name, set()).update(str(h) for h in hits)
    assert used
    for name, specs in used.items():
        assert specs == {str(s) for s in TASKS[name].split.test}, name


def test_spec_strings_round_trip_and_overlap_by_source_and_seed() -> None:
    for text in ("minimalloc:A", "random", "poisson#seeds=0,1,2", "poisson#seeds>=1000"):
        assert str(InstanceSpec.parse(text)) == text
    a, b = InstanceSpec.parse("poisson#seeds=0,1,2"), InstanceSpec.parse("poisson#seeds>=1000")
    assert not a.overlaps(b) and not b.overlaps(a)
    assert a.overlaps(InstanceSpec("poisson")) and b.overlaps(InstanceSpec.parse("poisson#seeds=5,1000"))
    assert not a.overlaps(InstanceSpec("azure-code"))
    with pytest.raises(ValueError, match="seeds"):
        InstanceSpec.parse("poisson#seed=1")
    with pytest.raises(ValueError, match="overlap.*minimalloc:A"):
        Split((InstanceSpec("minimalloc:A"),), (InstanceSpec("minimalloc:A"),))


def test_source_kwargs_match_the_env_constructors() -> None:
    """A default instance/workload changed in an env would silently mislabel what agents trained on."""
    from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv
    from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv
    from schedgym.envs.memory_mapping.env import MemoryMappingEnv
    from schedgym.envs.power_capping.env import PowerCappingEnv

    classes = {"MemoryMapping": MemoryMappingEnv, "GPUAutoscaling": GPUAutoscalingEnv,
               "PowerCapping": PowerCappingEnv, "AgentScheduling": AgentSchedulingEnv}
    assert set(classes) == set(SOURCE_KWARGS) == set(GENERATED_SOURCES)
    for family, cls in classes.items():
        key, default = SOURCE_KWARGS[family]
        assert inspect.signature(cls.__init__).parameters[key].default == default, family
    assert train_instances_for("schedgym/MemoryMapping-v0", {}) == ["random"]
    assert train_instances_for("schedgym/AgentScheduling-v1", {"workload": "tenants"}) == ["tenants"]


def test_json_export_and_list_tasks_carry_the_split(capsys: pytest.CaptureFixture[str]) -> None:
    from schedgym.benchmark.export import leaderboard_document
    from schedgym.benchmark.render import load_boards
    from schedgym.cli import main as cli_main

    boards, _ = load_boards([RESULTS])
    for task in leaderboard_document(boards)["tasks"]:
        assert task["split"] == TASKS[task["task"]].split.as_dict()
        assert task["split"]["train"] and task["split"]["test"]
    assert cli_main(["list", "tasks", "--tier", "quick", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rows and all(r["split"] == TASKS[r["name"]].split.as_dict() for r in rows)


def test_run_dir_records_what_it_trains_on(tmp_path: Path) -> None:
    from schedgym.training.common import TrainSpec
    from schedgym.training.rundir import RunDir

    spec = TrainSpec("schedgym/AgentScheduling-v1", {"workload": "tenants"}, "ppo", "sb3", {}, 10, 0, tmp_path)
    meta = RunDir(tmp_path / "run").prepare(spec)
    assert meta["train_instances"] == ["tenants"] and meta["machine_cpus"]
    on_disk = json.loads((tmp_path / "run" / "schedgym_agent.json").read_text())
    assert on_disk["train_instances"] == ["tenants"] and on_disk["train_instances_note"]


def _agent_results(tmp_path: Path, train_instances: object) -> Path:
    """A results tree with one committed agent row (MiniMalloc A) re-labelled as agent ``fab_agent``,
    and that agent's fabricated record next to it."""
    src = RESULTS / "memory-minimalloc" / "memory_mapping-ppo_sb3.csv"
    with src.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        row = next(r for r in reader if r["instance"] == "minimalloc:A")
    assert fields is not None
    extra = json.loads(row["extra"])
    extra["agent_dir"] = "/somewhere/else/fab_agent"  # only the name is looked up, never this path
    row["extra"], row["policy"] = json.dumps(extra), "fab_agent"
    out = tmp_path / "results" / "memory-minimalloc" / "fab_agent.csv"
    out.parent.mkdir(parents=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerow(row)
    agent = tmp_path / "agents" / "fab_agent"
    agent.mkdir(parents=True)
    meta = json.loads((REPO / "leaderboard" / "agents" / "memory_mapping-ppo_sb3" / "schedgym_agent.json").read_text())
    meta["train_instances"] = train_instances
    meta["train_instances_note"] = "fabricated for the test"
    (agent / "schedgym_agent.json").write_text(json.dumps(meta))
    return out


def test_validate_rejects_an_agent_trained_on_the_test_split(tmp_path: Path) -> None:
    from schedgym.benchmark.validate import validate_file

    path = _agent_results(tmp_path, ["random", "minimalloc:A", "minimalloc:B"])
    (rc,) = validate_file(path).rows
    assert not rc.ok
    assert rc.label == "memory-minimalloc / fab_agent / minimalloc:A / seed 0"
    assert "fab_agent" in rc.reason and "minimalloc:A (trained) ~ minimalloc:A (test)" in rc.reason
    assert "minimalloc:B (trained)" in rc.reason and "random (trained)" not in rc.reason


def test_validate_rejects_an_agent_whose_training_data_is_unknown_or_missing(tmp_path: Path) -> None:
    from schedgym.benchmark.validate import validate_file

    path = _agent_results(tmp_path, None)
    (rc,) = validate_file(path).rows
    assert not rc.ok and "train_instances: null" in rc.reason and "fabricated for the test" in rc.reason
    (tmp_path / "agents" / "fab_agent" / "schedgym_agent.json").unlink()
    (rc,) = validate_file(path).rows
    assert not rc.ok and "cannot check what agent 'fab_agent' trained on" in rc.reason


def test_validate_accepts_an_agent_trained_on_the_train_split(tmp_path: Path) -> None:
    from schedgym.benchmark.validate import validate_file

    path = _agent_results(tmp_path, ["random", "torch:resnet", "somas:resnet50"])
    (rc,) = validate_file(path).rows
    assert rc.ok, rc.reason
    # the committed agents' rows pass (their records say they trained on random instances only)
    for csv_path in sorted(RESULTS.glob("memory-minimalloc/memory_mapping-*.csv")):
        assert not validate_file(csv_path).failed, csv_path


def test_the_page_explains_metric_split_rule_and_agent_budget() -> None:
    """Each task says what its score means and which way is better, and its split; agents show their training
    budget next to their score; rule breakers get "fails the rule" text; every line of a chart is labelled."""
    from schedgym.benchmark.render import _no_bar_reason, bar_chart, load_boards, render_markdown
    from schedgym.benchmark.tasks import METRIC_MEANING

    for task in TASKS.values():
        assert ("servers_deployable" if task.aggregate == "sweep" else task.metric) in METRIC_MEANING, task.name
        assert task.metric_sentence.endswith(("higher is better.", "lower is better."))
    boards, _ = load_boards([RESULTS])
    md = render_markdown(boards)
    for b in boards:
        section = md.split(f"## {b.task.name} (v{b.task.version}", 1)[1].split("\n## ", 1)[0]
        assert b.task.metric_sentence in section and b.task.split.describe() in section
        for s in b.scores:
            if s.kind == "agent":
                assert s.training is not None and s.training.env_steps and s.training.cores
                assert f"agent (trained {s.training.describe()})" in section
            if s.meets is False:
                assert (_no_bar_reason(b.task, s) or "").startswith("fails the rule")
    rule_board = next(b for b in boards if any(s.meets is False for s in b.scores))
    assert bar_chart(rule_board)  # renders with the text in place of the bars
