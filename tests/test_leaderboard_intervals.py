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
