"""Issue 15, items 7 and 8: snapshots that are checked, and actions that must be integral (every env)."""

from __future__ import annotations

import numpy as np
import pytest

from schedgym.envs import ENV_ENTRIES
from schedgym.evaluation import make_env

IDS = [e.id for e in ENV_ENTRIES]
KWARGS = {e.id: e.test_kwargs for e in ENV_ENTRIES}


def _env(env_id: str, **over):
    return make_env(env_id, {**KWARGS[env_id], **over}).unwrapped


@pytest.mark.parametrize("env_id", IDS)
def test_non_integral_actions_are_invalid_never_truncated(env_id: str) -> None:
    """Item 8: 1.7 is not action 1; "0", True, 1.0 and [1] are invalid (default action + penalty)."""
    env = _env(env_id, invalid_action_penalty=0.5)
    env.reset(seed=0)
    snap = env.get_state()
    legal = int(np.flatnonzero(env.action_masks())[0])
    default = env._default_action()
    _, reward_default, *_ = env.step(default)
    for bad in (legal + 0.7, float(legal), str(legal), True, False, np.array([legal]), np.float32(legal), None, [legal]):
        env.set_state(snap)
        _, reward, *_, info = env.step(bad)
        assert info["invalid_action"] is True, repr(bad)
        assert info["action"] == default
        assert reward == pytest.approx(reward_default - 0.5)  # the default action, penalised
    for good in (legal, np.int64(legal), np.int8(legal), np.uint16(legal), np.array(legal)):
        env.set_state(snap)
        *_, info = env.step(good)
        assert info["invalid_action"] is False, repr(good)
        assert info["action"] == legal


@pytest.mark.parametrize("env_id", IDS)
def test_snapshot_names_env_version_and_instance(env_id: str) -> None:
    env = _env(env_id)
    env.reset(seed=1)
    snap = env.get_state()
    assert snap["env_id"] == env_id and snap["env"].endswith(type(env).__name__)
    assert snap["fingerprint"] and snap["arrays"]
    env.set_state(snap)  # its own snapshot restores


def test_state_of_another_instance_or_env_is_refused() -> None:
    """Item 7: a minimalloc:A state in a random-instance env, or another env's state, is a ValueError."""
    a = make_env("schedgym/MemoryMapping-v0", {"instance": "minimalloc:A"}).unwrapped
    a.reset(seed=0)
    r = make_env("schedgym/MemoryMapping-v0", {"instance": "random", "n_buffers": 40}).unwrapped
    r.reset(seed=0)
    with pytest.raises(ValueError, match="instance.*minimalloc:A.*random"):
        r.set_state(a.get_state())
    other = _env(IDS[0] if IDS[0] != "schedgym/MemoryMapping-v0" else IDS[1])
    other.reset(seed=0)
    with pytest.raises(ValueError, match="env class"):
        r.set_state(other.get_state())
    with pytest.raises(ValueError, match="get_state"):
        r.set_state({"sim": None})
    with pytest.raises(ValueError, match="get_state"):
        r.set_state([1, 2])


def test_truncated_state_arrays_are_refused_at_set_state() -> None:
    """Item 7: cut-short arrays fail in set_state (naming the array), not a step later; nothing is restored."""
    env = make_env("schedgym/MemoryMapping-v0", {"instance": "minimalloc:A"}).unwrapped
    env.reset(seed=0)
    snap = env.get_state()
    snap["sim"].offset = snap["sim"].offset[:3]
    before = env.get_state()
    with pytest.raises(ValueError, match="'offset' has shape"):
        env.set_state(snap)
    snap = env.get_state()
    snap["sim"].placed = snap["sim"].placed.astype(np.int64)
    with pytest.raises(ValueError, match="'placed'"):
        env.set_state(snap)
    np.testing.assert_array_equal(env.state.offset, before["sim"].offset)
    env.step(int(np.flatnonzero(env.action_masks())[0]))  # still steps normally


def test_snapshots_survive_pickle_and_deepcopy() -> None:
    import copy
    import pickle

    env = make_env("schedgym/MemoryMapping-v0", {"instance": "minimalloc:B"}).unwrapped
    env.reset(seed=0)
    snap = env.get_state()
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        clone.set_state(snap)
        np.testing.assert_array_equal(clone.state.offset, env.state.offset)
