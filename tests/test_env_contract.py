"""The env contract, checked for every registered id (ARCHITECTURE.md, "The env contract")."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import schedgym  # noqa: F401
from schedgym.envs import ENV_ENTRIES
from schedgym.envs.core import ActionMaskObservation

ENTRIES = {e.id: e for e in ENV_ENTRIES}
IDS = sorted(ENTRIES)


def make(env_id: str, **extra) -> gym.Env:
    return gym.make(env_id, **{**ENTRIES[env_id].test_kwargs, **extra})


def rollout(env: gym.Env, seed: int, n_steps: int, action_seed: int = 0, masked: bool = True):
    """Observations, rewards and infos of a rollout with seeded random (optionally masked) actions."""
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    trace = [(obs.copy(), 0.0, False, False)]
    for _ in range(n_steps):
        if masked:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        else:
            action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs.copy(), float(reward), terminated, truncated))
        if terminated or truncated:
            break
    return trace


def assert_same_trace(a, b):
    assert len(a) == len(b)
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(a, b):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    check_env(make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_make_with_module_prefix_in_new_interpreter(env_id):
    import subprocess
    import sys

    code = f"import gymnasium as gym; e = gym.make('schedgym:{env_id}'); e.reset(seed=0); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize("env_id", IDS)
def test_deterministic_under_seed(env_id):
    a = rollout(make(env_id), seed=3, n_steps=200)
    b = rollout(make(env_id), seed=3, n_steps=200)
    assert_same_trace(a, b)


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = make(env_id).unwrapped
    rollout(env, seed=1, n_steps=5)
    clone = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(7)
    for _ in range(50):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        o1, r1, te1, tr1, _ = env.step(action)
        o2, r2, te2, tr2, _ = clone.step(action)
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
        if te1 or tr1:
            break


@pytest.mark.parametrize("env_id", IDS)
def test_get_set_state_reproduces_rest_of_episode(env_id):
    env = make(env_id).unwrapped
    rollout(env, seed=2, n_steps=4)
    snapshot = env.get_state()
    rng = np.random.default_rng(11)
    actions, first = [], []
    for _ in range(60):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, reward, te, tr, _ = env.step(action)
        actions.append(action)
        first.append((obs.copy(), reward, te, tr))
        if te or tr:
            break
    env.set_state(snapshot)
    for action, (obs1, r1, te1, tr1) in zip(actions, first):
        obs2, r2, te2, tr2, _ = env.step(action)
        np.testing.assert_array_equal(obs1, obs2)
        assert (r1, te1, tr1) == (r2, te2, tr2)


@pytest.mark.parametrize("env_id", IDS)
def test_unmasked_random_actions_never_raise(env_id):
    env = make(env_id)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    saw_invalid = False
    for _ in range(300):
        action = int(rng.integers(env.action_space.n))
        mask = info["action_mask"]
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid_action"] == (not bool(mask[action]))
        saw_invalid |= info["invalid_action"]
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
        if terminated or truncated:
            assert isinstance(info["metrics"], dict)
            obs, info = env.reset()
    # Out-of-range actions are invalid too, and replaced by the default action.
    _, _, _, _, info = env.step(env.action_space.n + 5)
    assert info["invalid_action"] is True


@pytest.mark.parametrize("env_id", IDS)
def test_three_mask_conventions_agree(env_id):
    env = ActionMaskObservation(make(env_id))
    obs, info = env.reset(seed=4)
    rng = np.random.default_rng(4)
    for _ in range(40):
        assert env.observation_space.contains(obs)
        assert info["action_mask"].dtype == np.int8
        np.testing.assert_array_equal(info["action_mask"].astype(bool), env.unwrapped.action_masks())
        np.testing.assert_array_equal(obs["action_mask"].astype(bool), env.unwrapped.action_masks())
        np.testing.assert_array_equal(env.get_wrapper_attr("action_masks")(), env.unwrapped.action_masks())
        assert info["action_mask"].any(), "some action must always be legal"
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, _, te, tr, info = env.step(action)
        if te or tr:
            break


@pytest.mark.parametrize("env_id", IDS)
def test_render_modes(env_id):
    env = make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    rgb = env.render()
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.std() > 0, "the picture is blank"
    env = make(env_id, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and text.strip()


@pytest.mark.parametrize("env_id", IDS)
def test_bad_render_mode_names_parameter(env_id):
    with pytest.raises(ValueError, match="render_mode"):
        make(env_id, render_mode="bogus")
