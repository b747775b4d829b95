"""Interval estimates (IQM, bootstrap CIs, probability of improvement) and the JSON export of the leaderboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from schedgym.benchmark.intervals import interval_estimate, iqm, probability_of_improvement

REPO = Path(__file__).resolve().parents[1]


def test_iqm_trims_a_quarter_from_each_end() -> None:
    assert iqm([1, 2, 3, 4, 100, -100, 2.5, 3.5]) == pytest.approx(np.mean([2, 2.5, 3, 3.5]))
    with pytest.raises(ValueError):
        iqm([])


def test_bootstrap_interval_covers_the_point_and_shrinks_with_samples() -> None:
    rng = np.random.default_rng(0)
    small = {f"i{k}": list(rng.normal(10, 2, 3)) for k in range(3)}
    large = {f"i{k}": list(rng.normal(10, 2, 30)) for k in range(3)}
    a, b = interval_estimate(small), interval_estimate(large)
    for est in (a, b):
        assert est.ci_low <= est.iqm <= est.ci_high
        assert est.method == "stratified bootstrap over seeds"
    assert b.ci_high - b.ci_low < a.ci_high - a.ci_low
    assert b.ci_low < 10.0 < b.ci_high
    assert interval_estimate(small) == a  # deterministic (byte-identical pages)
    one_seed = interval_estimate({"A": [1.0], "B": [3.0], "C": [2.0]})
    assert one_seed.method == "bootstrap over instances" and one_seed.ci_low < 2.0 < one_seed.ci_high
    assert interval_estimate({"A": [5.0]}).method == "single sample"


def test_probability_of_improvement_respects_direction_and_ties() -> None:
    x = {"A": [2.0, 3.0], "B": [1.0]}
    y = {"A": [1.0, 2.0], "B": [1.0]}
    # A: pairs (2>1, 2=2, 3>1, 3>2) -> (1 + .5 + 1 + 1) / 4; B: tie -> .5
    assert probability_of_improvement(x, y, "max") == pytest.approx((3.5 / 4 + 0.5) / 2)
    assert probability_of_improvement(x, y, "min") == pytest.approx((0.5 / 4 + 0.5) / 2)
    assert probability_of_improvement(x, {"C": [1.0]}, "max") is None


def test_json_export_matches_the_markdown_tables(tmp_path: Path) -> None:
    """The committed results: every JSON row is a row of the task's Markdown table, with the same interval."""
    from schedgym.benchmark.export import SCHEMA, write_json
    from schedgym.benchmark.render import _fmt, load_boards, render_markdown

    boards, _ = load_boards([REPO / "leaderboard" / "results"])
    assert boards
    doc = json.loads(write_json(boards, tmp_path / "lb.json").read_text())
    assert doc["schema"] == SCHEMA and len(doc["tasks"]) == len(boards)
    md = render_markdown(boards)
    for task in doc["tasks"]:
        section = md.split(f"## {task['task']} (v{task['version']}", 1)[1].split("\n## ", 1)[0]
        table_policies = re.findall(r"^\| (\S+)", section, flags=re.M)[1:]
        assert [r["policy"] for r in task["rows"]] == [p for p in table_policies if p != "---|"]
        assert task["direction"] in ("max", "min")
        for row in task["rows"]:
            assert isinstance(row["meets_rule"], bool)
            if row["ci_low"] is not None:
                assert row["ci_low"] <= row["score"] <= row["ci_high"]
                assert f"{_fmt(row['score'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]" in section
        # a proven bound is never beaten by a policy that keeps the task's rule
        if task["bound"] is not None and task["metric"] != "servers_deployable":
            for row in task["rows"]:
                if row["meets_rule"] and row["kind"] != "bound" and row["gap_to_bound_pct"] is not None:
                    assert row["gap_to_bound_pct"] >= -1e-6, (task["task"], row["policy"])


def test_bound_is_proven_only_and_oracles_are_best_known() -> None:
    """A task's bound comes from a proof (the exact solver or a proven bound metric); oracles are best-known."""
    from schedgym.baselines import list_policies
    from schedgym.benchmark.tasks import TASKS

    for t in TASKS.values():
        registered = list_policies(t.env_id)
        if t.bound is not None:
            assert registered[t.bound].kind == "exact", t.name
        for p in t.best_known:
            assert p in registered, (t.name, p)
        oracles = {p for p, spec in registered.items() if spec.kind == "oracle"}
        assert t.bound not in oracles and oracles <= set(t.best_known), t.name
    assert TASKS["power-servers-deployable"].bound is None  # clairvoyant is greedy: not a proof


def test_committed_rows_keep_proven_bounds_and_every_score_has_an_interval(tmp_path: Path) -> None:
    """The render test of issue 16: no committed episode beats a proven bound; every score has an interval."""
    from schedgym.benchmark.export import write_json
    from schedgym.benchmark.render import _interval_cell, load_boards, render_markdown

    boards, _ = load_boards([REPO / "leaderboard" / "results"])
    checked = 0
    for b in boards:
        assert not b.violations, b.violations
        if b.bound_value is not None:
            checked += 1
        for s in b.scores:
            assert s.interval is not None and s.interval.ci_low <= s.interval.iqm <= s.interval.ci_high, (b.task.name, s.policy)
            assert _interval_cell(s) != "—"
    assert checked >= 3  # memory (exact), gpu (cost bound), agents (turnaround bound)
    doc = json.loads(write_json(boards, tmp_path / "lb.json").read_text())
    for task in doc["tasks"]:
        assert "best_known" in task and "bound" in task
        for row in task["rows"]:
            assert row["ci_low"] is not None and row["ci_high"] is not None, (task["task"], row["policy"])
    md = render_markdown(boards)
    assert "## Bound and best known" in md and "BOUND VIOLATED" not in md


def test_an_episode_beating_a_proven_bound_is_reported() -> None:
    from schedgym.benchmark.render import build_board, bound_violations
    from schedgym.benchmark.tasks import get_task

    gpu = get_task("gpu-azure-quick")

    def row(policy: str, cost: float, lb: float, sla: float) -> dict:
        return {"instance": "azure-code", "seed": 0, "policy": policy, "metric": cost, "walltime_s": 1.0,
                "date": "2026-01-01", "extra": {}, "metrics": {"cost_usd": cost, "cost_lower_bound_usd": lb,
                                                              "sla_met": sla, "sla_attainment": sla}}
    rows = {"static_peak": [row("static_peak", 100.0, 50.0, 1.0)], "cheat": [row("cheat", 40.0, 50.0, 1.0)],
            "misses": [row("misses", 10.0, 50.0, 0.0)]}  # breaking the SLA is outside the proof: not a violation
    found = bound_violations(gpu, rows)
    assert len(found) == 1 and found[0].startswith("cheat on azure-code seed 0")
    board = build_board(gpu, rows)
    assert board.violations == found and board.bound_value == 50.0

    mm = get_task("memory-minimalloc-quick")

    def mrow(policy: str, value: float, extra: dict) -> dict:
        return {"instance": "minimalloc:A", "seed": 0, "policy": policy, "metric": value, "walltime_s": 1.0,
                "date": "2026-01-01", "extra": extra, "metrics": {}}
    rows = {"exact": [mrow("exact", 0.8, {"bound": 0.9, "optimal": False})],
            "xla_best_fit": [mrow("xla_best_fit", 0.95, {})], "ok": [mrow("ok", 0.9, {})]}
    assert [v.split(" ")[0] for v in bound_violations(mm, rows)] == ["xla_best_fit"]
    # an unproven solver score is never a bound: without a recorded bound or optimality there is nothing to check
    rows["exact"] = [mrow("exact", 0.8, {"optimal": False})]
    assert bound_violations(mm, rows) == [] and build_board(mm, rows).bound_value is None
