"""MemoryMapping-v0: instances, the game in both modes, and its baselines."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.baselines.memory_mapping import (
    best_fit_reference,
    evaluate_offsets,
    first_fit_reference,
    solve_cpsat,
)
from schedgym.envs.memory_mapping.geometry import prepare
from schedgym.envs.memory_mapping.instances import (
    MINIMALLOC_NAMES,
    InstanceFormatError,
    generate_planted,
    generate_random,
    load_csv,
    load_minimalloc,
    with_capacity,
)
from schedgym.evaluation import run_episode

ENV_ID = "schedgym/MemoryMapping-v0"


def play(env, choose) -> dict:
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(choose(env.unwrapped, info))
        done = terminated or truncated
    return info["metrics"]


# ------------------------------------------------------------------ instances
@pytest.mark.parametrize(
    "body, reason",
    [
        ("id,lower,upper,size\n0,0,5,10\n1,3,2,10\n", "upper must be > lower"),
        ("id,lower,upper,size\n0,0,5,10\n1,0,4,-3\n", "size must be > 0"),
        ("id,lower,upper,size\n0,0,5,10\n0,1,4,3\n", "duplicate id 0"),
        ("id,lower,upper,size\n0,0,5,10\n1,0,4,3.5\n", "not an integer"),
        ("id,lower,upper,size\n0,0,5,10\n1,0,4\n", "expected 4 fields"),
        ("id,begin,finish,size\n0,0,5,10\n", "header"),
    ],
)
def test_malformed_csv_names_file_line_and_reason(tmp_path, body, reason):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(InstanceFormatError) as exc:
        load_csv(path, capacity=100)
    msg = str(exc.value)
    assert str(path) in msg and reason in msg
    if "header" not in reason:
        assert f"{path}:3:" in msg or f"{path}:2:" in msg


def test_legacy_inclusive_end_and_optional_columns(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_text("id,start,end,size\n7,0,4,16\n8,5,5,32\n")
    inst = load_csv(path, capacity=64)
    np.testing.assert_array_equal(inst.end, [5, 6])  # inclusive end -> half-open
    assert inst.benefit_source == "area"
    np.testing.assert_array_equal(inst.benefit, [16 * 5, 32 * 1])
    path2 = tmp_path / "with_benefit.4096.csv"
    path2.write_text("id,lower,upper,size,benefit,alignment\n0,0,4,16,2.5,8\n")
    inst2 = load_csv(path2)
    assert inst2.capacity == 4096 and inst2.benefit_source == "file" and inst2.alignment[0] == 8


def test_minimalloc_instances_shipped_and_tight():
    for letter in MINIMALLOC_NAMES:
        inst = load_minimalloc(letter)
        assert inst.capacity == 1_048_576 and 154 <= inst.n <= 454
        assert 0.9 <= inst.peak_live_bytes() / inst.capacity <= 1.0


def test_capacity_kwarg_int_fraction_and_required():
    env = gym.make(ENV_ID, instance="somas:resnet50", capacity=0.5).unwrapped
    peak = env.instance.peak_live_bytes()
    assert env.instance.capacity == int(0.5 * peak)
    assert gym.make(ENV_ID, instance="minimalloc:A", capacity=4096).unwrapped.instance.capacity == 4096
    with pytest.raises(ValueError, match="capacity"):
        gym.make(ENV_ID, instance="somas:resnet50")
    with pytest.raises(ValueError, match="capacity"):
        gym.make(ENV_ID, instance="minimalloc:A", capacity=1.5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"action_mode": "swap"}, "action_mode"),
        ({"K": 0}, "K"),
        ({"order": "random"}, "order"),
        ({"instance": "minimalloc:Z"}, "MiniMalloc"),
        ({"instance": "minimalloc:A", "n_buffers": 10}, "n_buffers"),
        ({"instance": "nope"}, "instance"),
        ({"instance": "torch:vgg"}, "vgg"),
    ],
)
def test_bad_kwargs_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(ENV_ID, **kwargs)


def test_conflict_graph_matches_brute_force():
    for inst in (load_minimalloc("C"), with_capacity(generate_random(np.random.default_rng(0), n_buffers=2000), 0.5)):
        prep = prepare(inst, "xla")
        for i in range(0, inst.n, 5):
            ref = np.flatnonzero((inst.start < inst.end[i]) & (inst.end > inst.start[i]))
            np.testing.assert_array_equal(np.sort(prep.neighbours(i)), ref[ref != i])


def test_planted_instance_is_a_perfect_packing():
    inst = generate_planted(np.random.default_rng(5), n_buffers=60)
    assert inst.optimum == 1.0
    assert evaluate_offsets(inst, inst.planted_offset) == pytest.approx(1.0)
    assert inst.peak_live_bytes() == inst.capacity


# ------------------------------------------------------------------ the game
@pytest.mark.parametrize("instance", ["minimalloc:A", "minimalloc:D", "minimalloc:K"])
@pytest.mark.parametrize("order", ["xla", "size", "lifetime"])
def test_action_zero_equals_standalone_best_fit(instance, order):
    env = gym.make(ENV_ID, instance=instance, order=order)
    play(env, lambda e, info: 0)
    np.testing.assert_array_equal(env.unwrapped.placements(), best_fit_reference(env.unwrapped.instance, order))


def test_action_zero_equals_best_fit_on_random_aligned_instances():
    for seed in range(3):
        env = gym.make(ENV_ID, instance="random", n_buffers=300)
        env.reset(seed=seed)
        inst = env.unwrapped.instance
        done = False
        while not done:
            _, _, done, _, _ = env.step(0)
        np.testing.assert_array_equal(env.unwrapped.placements(), best_fit_reference(inst, "xla"))


def test_first_fit_policy_equals_standalone_first_fit():
    env = gym.make(ENV_ID, instance="minimalloc:B")
    result = run_episode(env, make_policy("first_fit", ENV_ID))
    ref = first_fit_reference(env.unwrapped.instance, "xla")
    np.testing.assert_array_equal(env.unwrapped.placements(), ref)
    assert result.metrics["benefit_placed_frac"] == pytest.approx(evaluate_offsets(env.unwrapped.instance, ref))


@pytest.mark.parametrize("mode", ["place", "order"])
def test_random_play_gives_valid_mapping_and_return_equals_fraction(mode):
    env = gym.make(ENV_ID, instance="minimalloc:E", action_mode=mode)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        total += r
    inst = env.unwrapped.instance
    frac = evaluate_offsets(inst, env.unwrapped.placements())  # raises on any overlap
    assert total == pytest.approx(frac) == pytest.approx(info["metrics"]["benefit_placed_frac"])
    assert info["metrics"]["peak_fast_bytes"] <= inst.capacity


def test_place_mode_has_one_step_per_buffer_and_slow_memory_always_legal():
    env = gym.make(ENV_ID, instance="minimalloc:A")
    obs, info = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        assert info["action_mask"][-1] == 1
        obs, r, done, _, info = env.step(env.action_space.n - 1)
        assert r == 0.0
        steps += 1
    assert steps == env.unwrapped.instance.n and info["metrics"]["buffers_placed"] == 0


def test_invalid_action_is_replaced_and_penalised():
    env = gym.make(ENV_ID, instance="minimalloc:A", K=16, invalid_action_penalty=0.25)
    ref = gym.make(ENV_ID, instance="minimalloc:A")
    ref.reset(seed=0)
    _, r_default, *_ = ref.step(0)  # the default action while a candidate exists
    env.reset(seed=0)
    illegal = int(np.flatnonzero(env.unwrapped.action_masks() == 0)[0])
    _, r, _, _, info = env.step(illegal)
    assert info["invalid_action"] is True
    assert r == pytest.approx(r_default - 0.25)


def test_order_mode_replays_planted_packing_to_100_percent():
    n = 30
    env = gym.make(ENV_ID, instance="random", n_buffers=n, planted=True, action_mode="order", K=n)
    obs, info = env.reset(seed=11)
    inst = env.unwrapped.instance
    sequence = list(np.argsort(inst.planted_offset, kind="stable"))
    done = False
    while not done:
        st = env.unwrapped.state
        nxt = next(b for b in sequence if not st.decided[b])
        action = int(np.flatnonzero(st.cand_buffer[: st.n_candidates] == nxt)[0])
        obs, _, done, _, info = env.step(action)
    assert info["metrics"]["benefit_placed_frac"] == pytest.approx(1.0)
    assert info["metrics"]["optimum"] == 1.0 and info["metrics"]["gap_to_optimum"] == pytest.approx(0.0)
    assert np.all(env.unwrapped.placements() <= inst.planted_offset)


def test_planted_instances_report_their_optimum_and_best_fit_falls_short_somewhere():
    gaps = []
    for seed in range(6):
        env = gym.make(ENV_ID, instance="random", n_buffers=30, planted=True)
        m = run_episode(env, make_policy("xla_best_fit", ENV_ID), seed=seed).metrics
        assert m["optimum"] == 1.0
        gaps.append(m["gap_to_optimum"])
    assert min(gaps) >= 0.0 and max(gaps) > 0.0


# ------------------------------------------------------------------ baselines
def test_cpsat_reaches_planted_optimum():
    inst = generate_planted(np.random.default_rng(3), n_buffers=14)
    result = solve_cpsat(inst, time_limit_s=20)
    assert result.optimal
    assert result.objective_frac == pytest.approx(1.0)
    assert evaluate_offsets(inst, result.offsets) == pytest.approx(1.0)


@pytest.mark.parametrize("instance", ["minimalloc:A", "random"])
def test_cpsat_search_never_below_heuristics(instance):
    env = gym.make(ENV_ID, instance=instance, **({"n_buffers": 60} if instance == "random" else {}))
    env.reset(seed=2)
    inst = env.unwrapped.instance
    result = solve_cpsat(inst, time_limit_s=3)
    frac = evaluate_offsets(inst, result.offsets)  # the search's mapping is feasible
    assert frac == pytest.approx(result.objective_frac)
    assert result.bound_frac >= frac - 1e-9
    for order in ("xla", "size", "lifetime"):
        assert frac >= evaluate_offsets(inst, best_fit_reference(inst, order)) - 1e-12
    assert frac >= evaluate_offsets(inst, first_fit_reference(inst)) - 1e-12


def test_cpsat_search_policy_replays_its_solution_in_order_mode():
    env = gym.make(ENV_ID, instance="random", n_buffers=25, planted=True, action_mode="order", K=25)
    policy = make_policy("cpsat_search", ENV_ID, time_limit_s=10)
    result = run_episode(env, policy, seed=4)
    assert result.metrics["benefit_placed_frac"] == pytest.approx(policy.result.objective_frac)
    assert result.policy_metrics["replay_lossless"]


def test_bayesian_order_search_plays_its_best_evaluation():
    env = gym.make(ENV_ID, instance="minimalloc:A", action_mode="order")
    policy = make_policy("bayesian_order_search", ENV_ID, budget=6, seed=0)
    result = run_episode(env, policy)
    assert len(policy.history) == 6
    assert result.metrics["benefit_placed_frac"] == pytest.approx(policy.best_value)
    assert policy.best_value >= policy.history[0]  # trial 0 is the greedy canonical order


def test_policy_env_overrides_are_checked():
    env = gym.make(ENV_ID, instance="minimalloc:A", order="xla")
    with pytest.raises(ValueError, match="order='size'"):
        run_episode(env, make_policy("spatial_best_fit", ENV_ID))


def test_best_fit_leaves_a_gap_on_minimalloc():
    fracs = [evaluate_offsets(load_minimalloc(x), best_fit_reference(load_minimalloc(x))) for x in "ABC"]
    assert all(0.5 < f < 0.99 for f in fracs)


# ------------------------------------------------------------------ CLI
def test_cli_run_json_one_object_per_episode(capsys):
    from schedgym.cli import main

    kwargs = json.dumps({"instance": "random", "n_buffers": 30})
    assert main(["run", "--env", ENV_ID, "--kwargs", kwargs, "--policy", "xla_best_fit", "--episodes", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 3
    for rec in lines:
        assert set(rec) == {"episode_return", "episode_length", "metrics", "walltime_s"}
        assert rec["episode_return"] == pytest.approx(rec["metrics"]["benefit_placed_frac"])
    assert len({rec["episode_return"] for rec in lines}) > 1  # episodes use seeds seed, seed+1, ...


def test_cli_errors_list_valid_choices(capsys):
    from schedgym.cli import main

    assert main(["run", "--env", "schedgym/Nope-v0", "--policy", "random"]) == 2
    assert "registered ids" in capsys.readouterr().err
    assert main(["run", "--env", ENV_ID, "--policy", "nope"]) == 2
    assert "xla_best_fit" in capsys.readouterr().err
    assert main(["run", "--env", ENV_ID, "--policy", "random", "--kwargs", '{"bogus": 1}']) == 2
    assert "valid kwargs" in capsys.readouterr().err


def test_cli_render_writes_png(tmp_path):
    from schedgym.cli import main

    out = tmp_path / "mapping.png"
    assert main(["run", "--env", ENV_ID, "--kwargs", '{"instance": "minimalloc:A"}', "--policy", "xla_best_fit", "--render", str(out), "--json"]) == 0
    assert out.stat().st_size > 10_000


def test_large_csv_instance(tmp_path):
    inst = with_capacity(generate_random(np.random.default_rng(0), n_buffers=20_000), 0.5)
    path = tmp_path / "big.csv"
    rows = "\n".join(f"{i},{inst.start[i]},{inst.end[i]},{inst.size[i]}" for i in range(inst.n))
    path.write_text("id,lower,upper,size\n" + rows + "\n")
    env = gym.make(ENV_ID, instance=f"csv:{path}", capacity=0.5)
    m = run_episode(env, make_policy("xla_best_fit", ENV_ID)).metrics
    assert m["buffers_total"] == 20_000 and 0.5 < m["benefit_placed_frac"] < 1.0


def test_order_mode_candidate_gaps_match_brute_force():
    env = gym.make(ENV_ID, instance="minimalloc:F", action_mode="order").unwrapped
    env.reset(seed=0)
    inst = env.instance
    rng = np.random.default_rng(1)
    done = False
    while not done:
        st = env.state
        for j in range(st.n_candidates):
            b, x = int(st.cand_buffer[j]), int(st.cand_offset[j])
            live = np.flatnonzero(st.placed & (inst.start < inst.end[b]) & (inst.end > inst.start[b]))
            xs, tops = st.offset[live], st.offset[live] + inst.size[live]
            assert not np.any((xs < x + inst.size[b]) & (tops > x)), "candidate slot overlaps a placed buffer"
            assert st.cand_gap_lo[j] == max([0, *tops[tops <= x]])
            assert st.cand_gap_hi[j] == min([inst.capacity, *xs[xs >= x + inst.size[b]]])
            if x > 0:  # lowest viable: one step lower would not be feasible
                assert st.cand_gap_lo[j] == x
        _, _, done, _, _ = env.step(int(rng.integers(0, st.n_candidates + 1)) if st.n_candidates else env.K)
