"""``state_copy`` (what ``get_state``/``set_state`` copy with) is a deep copy, as ``copy.deepcopy`` is."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import schedgym
from schedgym.envs import env_entry
from schedgym.envs.core.base import state_copy


def _assert_equal_and_disjoint(a: Any, b: Any, where: str = "state") -> None:
    """Same values and types everywhere; no mutable object (array, list, dict, dataclass) shared."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
        assert not np.shares_memory(a, b), f"{where} shares memory with the original"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        if isinstance(a, list):
            assert a is not b, f"{where} is the original list"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_and_disjoint(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a is not b and a.keys() == b.keys(), where
        for k in a:
            _assert_equal_and_disjoint(a[k], b[k], f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(a):
        if type(a).__dataclass_params__.frozen and a is b:
            return  # an immutable workload that is its own deep copy (it defines __deepcopy__)
        assert a is not b, f"{where} is the original object"
        for f in dataclasses.fields(a):
            _assert_equal_and_disjoint(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:  # immutable values
        assert a == b, where


@pytest.mark.parametrize("env_id", schedgym.env_ids())
def test_state_copy_is_a_deep_copy_of_every_env_state(env_id: str) -> None:
    env = gym.make(env_id, **env_entry(env_id).test_kwargs).unwrapped
    _, info = env.reset(seed=3)
    for _ in range(5):
        _, _, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"])[-1]))
        if term or trunc:
            break
    state = env.state
    copied = state_copy(state)
    _assert_equal_and_disjoint(state, copied)
    # and it plays on exactly as the original: restore the copy into a second env, step both
    snap = env.get_state()
    twin = gym.make(env_id, **env_entry(env_id).test_kwargs).unwrapped
    twin.reset(seed=3)
    twin.set_state(snap)
    if not (term or trunc):
        a = env.step(0)
        b = twin.step(0)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]


def test_state_copy_keeps_shared_references_shared() -> None:
    @dataclasses.dataclass
    class S:
        a: np.ndarray
        b: np.ndarray
        log: list

    arr = np.arange(4)
    s = S(a=arr, b=arr, log=[(1, "x")])
    c = state_copy(s)
    assert c.a is c.b and c.a is not arr  # as copy.deepcopy keeps them
    c.a[0] = 9
    assert arr[0] == 0 and c.b[0] == 9
