"""The benchmark leaderboard: replayable results, validation, resume after a kill, deterministic rendering."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from schedgym.benchmark.render import sweep_servers_deployable, write_leaderboard
from schedgym.benchmark.results import (
    COLUMNS,
    decode_actions,
    encode_actions,
    read_rows,
    results_path,
)
from schedgym.benchmark.runner import (
    PolicySpec,
    plan_jobs,
    resolve_policy_specs,
    run_bench,
)
from schedgym.benchmark.tasks import TaskInstance, get_task, tasks_for_tier
from schedgym.benchmark.validate import validate_file
from schedgym.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
GPU_TASK = "gpu-azure-quick"
MM_TASK = "memory-minimalloc-quick"


@pytest.fixture(scope="module")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real results of two families, run in-process: GPUAutoscaling (2 traces) and MiniMalloc (11 instances)."""
    out = tmp_path_factory.mktemp("results")
    tasks = [get_task(GPU_TASK), get_task(MM_TASK)]
    summary = run_bench(tasks, resolve_policy_specs(["hpa", "oracle", "xla_best_fit", "first_fit"]), out, workers=1, progress=False)
    assert not summary.failed
    assert summary.finished == 2 * 2 + 2 * 11
    return out


def test_actions_encoding_round_trips() -> None:
    rng = np.random.default_rng(0)
    for arr in (np.zeros(0, int), np.array([3]), rng.integers(0, 17, 500), np.repeat([0, 16, 0], [900, 3, 97])):
        text = encode_actions(arr)
        assert text.startswith("rle1:")
        assert np.array_equal(decode_actions(text), arr)
    # Runs make long constant stretches short.
    assert len(encode_actions(np.zeros(10_000, int))) < 40
    for bad in ("", "xyz", "rle1:not-base64!!", encode_actions([1, 2])[:-4]):
        with pytest.raises(ValueError):
            decode_actions(bad)


def test_tasks_cover_every_family_in_both_tiers() -> None:
    from schedgym.envs import ENV_ENTRIES

    families = {e.family for e in ENV_ENTRIES}
    for tier in ("quick", "full"):
        tasks = tasks_for_tier(tier)
        assert {t.family for t in tasks} >= families
        for t in tasks:
            assert t.direction in ("max", "min") and t.reference and t.seeds and t.instances
    names = {i.name for t in tasks_for_tier("full") if t.family == "MemoryMapping" for i in t.instances}
    assert {f"minimalloc:{x}" for x in "ABCDEFGHIJK"} <= names and any(n.startswith("torch:") for n in names)
    gpu = {i.name for t in tasks_for_tier("full") if t.family == "GPUAutoscaling" for i in t.instances}
    assert {"azure-code", "azure-conv"} <= gpu
    agents = {i.name for t in tasks_for_tier("quick") if t.family == "AgentScheduling" for i in t.instances}
    assert agents == {"bursty", "steady", "tenants"}
    assert any(t.aggregate == "sweep" for t in tasks_for_tier("quick"))
    with pytest.raises(ValueError, match="unknown task"):
        get_task("no-such-task")


def test_results_file_has_spec_columns_and_replays(small_results: Path) -> None:
    path = results_path(small_results, MM_TASK, "xla_best_fit")
    with path.open(newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS
    parsed = read_rows(path)
    assert len(parsed.rows) == 11 and not parsed.bad_lines
    assert all(r["env_kwargs"]["order"] == "xla" for r in parsed.rows)  # the policy's env_overrides recorded
    for p in sorted(small_results.rglob("*.csv")):
        check = validate_file(p)
        assert check.rows and not check.failed, [(r.label, r.reason) for r in check.failed]
    assert cli_main(["validate", str(small_results), "--quiet"]) == 0


def _rewrite(src: Path, dst: Path, line_no: int, column: str, new_value: str) -> None:
    with src.open(newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index(column)
    rows[line_no - 1][col] = new_value
    with dst.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_altered_metric_or_actions_fail_validation(small_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = results_path(small_results, MM_TASK, "first_fit")
    rows = read_rows(src).rows
    row = rows[3]
    tampered_metric = tmp_path / "metric.csv"
    _rewrite(src, tampered_metric, row["_line"], "metric", repr(row["metric"] + 0.01))
    check = validate_file(tampered_metric)
    assert [r.line for r in check.failed] == [row["_line"]]
    assert "metric" in check.failed[0].reason

    # Send the first buffer that was placed to slow memory instead (action K is always legal).
    actions = decode_actions(row["actions"]).copy()
    k = int(row["env_kwargs"].get("K", 16))
    first_placed = int(np.flatnonzero(actions != k)[0])
    actions[first_placed] = k
    tampered_actions = tmp_path / "actions.csv"
    _rewrite(src, tampered_actions, row["_line"], "actions", encode_actions(actions))
    check = validate_file(tampered_actions)
    assert [r.line for r in check.failed] == [row["_line"]]
    # Either a later action is no longer legal or the replayed metric differs.
    assert re.search("not legal|recorded", check.failed[0].reason)

    # Too few actions and an undecodable encoding are reported with their reasons too.
    truncated = tmp_path / "short.csv"
    _rewrite(src, truncated, row["_line"], "actions", encode_actions(decode_actions(row["actions"])[:-5]))
    assert "ran out" in validate_file(truncated).failed[0].reason
    garbage = tmp_path / "garbage.csv"
    _rewrite(src, garbage, row["_line"], "actions", "rle1:@@@")
    assert "encoding" in validate_file(garbage).failed[0].reason

    # One file at a time: given together, the copies' untouched rows would be duplicates of each other.
    assert cli_main(["validate", str(tampered_metric)]) == 1
    assert cli_main(["validate", str(tampered_actions)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 2 and out.count("1 row(s) fail") == 2


def test_rendering_is_deterministic(small_results: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(small_results, copy)
    md1, html1, boards, report = write_leaderboard([small_results], tmp_path / "a")
    md2, html2, _, _ = write_leaderboard([copy], tmp_path / "b")
    assert md1.read_bytes() == md2.read_bytes()
    assert html1.read_bytes() == html2.read_bytes()
    assert not report.ignored
    text = md1.read_text()
    for name in (GPU_TASK, MM_TASK):
        assert f"## {name} (v{get_task(name).version}" in text
    board = next(b for b in boards if b.task.name == GPU_TASK)
    hpa = next(s for s in board.scores if s.policy == "hpa")
    # hpa misses the SLA on azure-code: it ranks after every policy that meets it and scores 0
    assert hpa.meets is False and hpa.normalised == 0.0 and board.scores[-1].policy == "hpa"
    # the gap is to the proven cost_lower_bound_usd of the rows: the best-known oracle sits above it
    oracle = next(s for s in board.scores if s.policy == "oracle")
    assert oracle.meets and oracle.gap_pct is not None and oracle.gap_pct > 0.0
    # The MiniMalloc bound is none of these policies' (cpsat did not run): no gap column values.
    mm = next(b for b in boards if b.task.name == MM_TASK)
    assert all(s.gap_pct is None for s in mm.scores)
    assert "data:image/png;base64," in html1.read_text()


def test_learning_curves_plot_the_episode_return_tag(small_results: Path, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from schedgym.benchmark.render import _learning_curves

    tb_run = tmp_path / "ppo_run"
    writer = SummaryWriter(str(tb_run / "tb"))
    for step in range(0, 1000, 100):
        writer.add_scalar("episode/return", step / 1000, step)
        writer.add_scalar("learner/reward_loss", 1.0, step)
    writer.close()
    old_run = tmp_path / "old_run"  # an older PPO run: only the smoothed rollout/ep_rew_mean
    writer = SummaryWriter(str(old_run / "tb"))
    writer.add_scalar("rollout/ep_rew_mean", 0.5, 10)
    writer.close()
    tb_curves = _learning_curves(tb_run)
    assert list(tb_curves) == ["episode/return"] and tb_curves["episode/return"][1][-1] == pytest.approx(0.9)
    assert _learning_curves(old_run) == {}
    _, page, _, _ = write_leaderboard([small_results], tmp_path / "lb", run_dirs=[tb_run, old_run])
    text = page.read_text()
    assert 'alt="learning curve ppo_run"' in text
    assert "old_run: no <code>episode/return</code> points" in text


def test_sweep_score_walks_counts_like_servers_deployable() -> None:
    task = get_task("power-servers-deployable-quick")
    rule = task.sweep

    def rows(outcomes: dict[int, tuple[int, float]]) -> list[dict]:
        return [
            {"instance": f"n_servers={n}", "seed": s, "metrics": {"brake_events": b, "hp_perf_loss": hp, "lp_perf_loss": 0.0}}
            for n, (b, hp) in outcomes.items()
            for s in task.seeds
        ]

    ok, brake, slow = (0, 0.0), (1, 0.0), (0, rule.hp_loss_max * 2)
    # 40..44 pass, 46 fails, 48 passes again, then two failures in a row stop the walk before 54.
    outcome = {40: ok, 42: ok, 44: ok, 46: brake, 48: ok, 50: slow, 52: brake, 54: ok}
    assert sweep_servers_deployable(task, rows(outcome))[0] == 48
    assert sweep_servers_deployable(task, rows({40: brake, 42: ok}))[0] == 42
    assert sweep_servers_deployable(task, rows({40: brake, 42: brake, 44: ok}))[0] == 0


def test_sweep_task_agrees_with_the_servers_deployable_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's per-episode sweep rows give the same answer as PowerCapping's own sweep function."""
    from schedgym.benchmark import tasks as tasks_module
    from schedgym.benchmark.render import load_boards
    from schedgym.envs.power_capping.oversubscription import servers_deployable

    env_kwargs = {"workload": "azure-conv", "provisioned_servers": 8, "episode_hours": 0.25, "rate_scale": 2.0}
    base = get_task("power-servers-deployable-quick")
    tiny = dataclasses.replace(
        base,
        name="tiny-sweep",
        env_kwargs=env_kwargs,
        instances=tuple(TaskInstance(f"n_servers={n}", {"n_servers": n}) for n in range(8, 17)),
        sweep=dataclasses.replace(base.sweep, provisioned_servers=8),
    )
    monkeypatch.setitem(tasks_module.TASKS, tiny.name, tiny)
    summary = run_bench([tiny], [PolicySpec("polca", "polca")], tmp_path, workers=1, progress=False)
    assert summary.finished == 9 * len(tiny.seeds) and not summary.failed
    boards, _ = load_boards([tmp_path])
    expected = servers_deployable("polca", env_kwargs=env_kwargs, seeds=tiny.seeds, max_servers=16)
    assert 8 < expected.servers_deployable < 16  # the walk passes some counts and stops on failures
    assert boards[0].scores[0].value == expected.servers_deployable


def test_unregistered_env_is_skipped_with_a_message() -> None:
    ghost = dataclasses.replace(get_task(GPU_TASK), name="ghost", env_id="schedgym/Ghost-v0")
    messages: list[str] = []
    plan = plan_jobs([ghost, get_task(GPU_TASK)], [PolicySpec("hpa", "hpa")], messages.append)
    assert [t.name for t, _, _ in plan] == [GPU_TASK]
    assert any("skipping task ghost" in m and "not registered" in m for m in messages)
    with pytest.raises(ValueError, match="no such directory"):
        resolve_policy_specs(["./not/a/dir"])


def test_killed_bench_resumes_without_repeating_rows(tmp_path: Path) -> None:
    task = get_task("agents-bursty-steady")  # 10 episodes of 100 agents: long enough to be killed mid-way
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "schedgym.cli", "bench", "--task", task.name, "--policy", "fifo",
           "--workers", "1", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    path = results_path(out, task.name, "fifo")
    expected = len(task.instances) * len(task.seeds)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if path.exists() and len(read_rows(path).rows) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"bench exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = path.read_bytes()
    n_before = len(read_rows(path).rows)
    assert 2 <= n_before < expected, "the run was not interrupted mid-way"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{n_before} of {expected} episodes already in" in done.stderr
    assert path.read_bytes().startswith(before)  # appended, never rewritten
    rows = read_rows(path).rows
    keys = [(r["instance"], r["seed"]) for r in rows]
    assert len(rows) == expected and len(set(keys)) == expected
    # A third run has nothing left to do.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and len(read_rows(path).rows) == expected


def test_truncated_last_line_is_skipped_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "r"
    task = get_task(GPU_TASK)
    run_bench([task], [PolicySpec("hpa", "hpa")], out, workers=1, progress=False)
    path = results_path(out, task.name, "hpa")
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    # Simulate a kill in the middle of writing the last row.
    path.write_text(text[: len(text) - len(last) - 1] + last[: len(last) // 2])
    parsed = read_rows(path)
    assert len(parsed.rows) == 1 and len(parsed.bad_lines) == 1
    summary = run_bench([task], [PolicySpec("hpa", "hpa")], out, workers=1, progress=False)
    assert summary.finished == 1 and summary.skipped_done == 1
    parsed = read_rows(path)
    assert len(parsed.rows) == 2 and len(parsed.bad_lines) == 1
    assert [r.ok for r in validate_file(path).rows] == [True, False, True]


def test_bench_on_ray(ray_session, tmp_path: Path) -> None:
    summary = run_bench([get_task(GPU_TASK)], resolve_policy_specs(["hpa", "random"]), tmp_path, workers=2, progress=False)
    assert summary.finished == 4 and not summary.failed
    for p in sorted(tmp_path.rglob("*.csv")):
        assert not validate_file(p).failed


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "", shutil.which("google-chrome") or ""):
        if name and Path(name).exists():
            return name
    return None


def test_index_html_in_headless_chromium(small_results: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (install Debian's `chromium`; .ci/run does so)")
    _, page, boards, _ = write_leaderboard([small_results], tmp_path / "lb")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "leaderboard.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]
    url = page.resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = set(re.findall(r'<table class="task-table" data-task="([^"]+)"', dom.stdout))
    assert found == {b.task.name for b in boards} == {GPU_TASK, MM_TASK}
    assert 'id="aggregate-table"' in dom.stdout
    shot.unlink(missing_ok=True)
    subprocess.run([browser, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 1000
