"""Prioritised replay of whole self-play episodes, with bounded memory and validated priorities.

muzero-general's users report replay buffers that grow without bound and NaN priorities that break
sampling; here the buffer holds at most ``capacity`` transitions (oldest episodes are evicted first),
every priority is checked (non-finite -> the current maximum, then clipped to
``[PRIORITY_MIN, PRIORITY_MAX]``), and the buffer can be saved to / restored from an ``.npz`` file
(no pickle) so that training resumes after a crash.

Sampling follows prioritised experience replay (Schaul et al. 2016): position ``i`` is drawn with
probability ``p_i^alpha / sum p^alpha`` and weighted by ``(N P(i))^-beta`` normalised by the max.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PRIORITY_MAX", "PRIORITY_MIN", "Episode", "ReplayBuffer"]

PRIORITY_MIN = 1e-4
PRIORITY_MAX = 1e3


@dataclass
class Episode:
    """One self-play episode of length T."""

    obs: np.ndarray  # (T, obs_dim) float32, observation before each action
    actions: np.ndarray  # (T,) int64
    rewards: np.ndarray  # (T,) float32, reward of each action
    root_values: np.ndarray  # (T,) float32, search value of each root
    policies: np.ndarray  # (T, A) float32, improved-policy targets

    def __post_init__(self) -> None:
        t = self.actions.shape[0]
        if t == 0:
            raise ValueError("an episode needs at least one step")
        for name in ("obs", "rewards", "root_values", "policies"):
            if getattr(self, name).shape[0] != t:
                raise ValueError(f"Episode.{name} has {getattr(self, name).shape[0]} rows, expected {t}")
        for name in ("obs", "rewards", "root_values", "policies"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"Episode.{name} contains NaN or inf")

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def _validate_priorities(p: np.ndarray, fallback: float) -> np.ndarray:
    p = np.asarray(p, np.float64).copy()
    p[~np.isfinite(p)] = fallback
    return np.clip(p, PRIORITY_MIN, PRIORITY_MAX)


class ReplayBuffer:
    """Bounded prioritised buffer of episodes; samples K-step unroll targets for the learner."""

    def __init__(
        self,
        capacity: int,
        unroll_steps: int,
        td_steps: int,
        discount: float,
        alpha: float = 1.0,
        beta: float = 1.0,
        seed: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 transition, got {capacity}")
        if unroll_steps < 0 or td_steps < 1:
            raise ValueError(f"unroll_steps must be >= 0 and td_steps >= 1, got {unroll_steps}, {td_steps}")
        self.capacity, self.unroll_steps, self.td_steps = int(capacity), int(unroll_steps), int(td_steps)
        self.discount, self.alpha, self.beta = float(discount), float(alpha), float(beta)
        self.rng = np.random.default_rng(seed)
        self.episodes: OrderedDict[int, Episode] = OrderedDict()
        self.value_targets: dict[int, np.ndarray] = {}
        self.priorities: dict[int, np.ndarray] = {}
        self.next_id = 0
        self.num_transitions = 0
        self.total_added = 0  # transitions ever added (for stats)

    # ------------------------------------------------------------------ adding
    def _value_targets(self, ep: Episode) -> np.ndarray:
        """n-step targets ``sum_i<n gamma^i r_{t+i} + gamma^n v_root[t+n]`` (0 past the end)."""
        t_len, n, g = len(ep), self.td_steps, self.discount
        rewards = np.concatenate([ep.rewards.astype(np.float64), np.zeros(n)])
        values = np.concatenate([ep.root_values.astype(np.float64), np.zeros(n)])
        z = np.zeros(t_len)
        for i in range(n):  # vectorised over t
            z += g**i * rewards[i : i + t_len]
        z += g**n * values[n : n + t_len]
        return z.astype(np.float32)

    def add(self, ep: Episode) -> int:
        eid = self.next_id
        self.next_id += 1
        z = self._value_targets(ep)
        fallback = max((float(p.max()) for p in self.priorities.values()), default=1.0)
        self.episodes[eid] = ep
        self.value_targets[eid] = z
        self.priorities[eid] = _validate_priorities(np.abs(ep.root_values - z), fallback)
        self.num_transitions += len(ep)
        self.total_added += len(ep)
        while self.num_transitions > self.capacity and len(self.episodes) > 1:
            old, old_ep = self.episodes.popitem(last=False)
            del self.value_targets[old], self.priorities[old]
            self.num_transitions -= len(old_ep)
        return eid

    def __len__(self) -> int:
        return self.num_transitions

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        if self.num_transitions == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        ids = np.fromiter(self.episodes.keys(), np.int64, len(self.episodes))
        lens = np.array([len(self.episodes[i]) for i in ids])
        prios = np.concatenate([self.priorities[i] for i in ids]) ** self.alpha
        probs = prios / prios.sum()
        flat = self.rng.choice(prios.shape[0], size=batch_size, p=probs)
        weights = (prios.shape[0] * probs[flat]) ** (-self.beta)
        weights /= weights.max()
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        which = np.searchsorted(starts, flat, side="right") - 1
        k = self.unroll_steps
        first = self.episodes[int(ids[0])]
        num_actions = first.policies.shape[1]
        out = {
            "obs": np.zeros((batch_size, first.obs.shape[1]), np.float32),
            "actions": np.zeros((batch_size, k), np.int64),
            "target_value": np.zeros((batch_size, k + 1), np.float32),
            "target_reward": np.zeros((batch_size, k + 1), np.float32),
            "target_policy": np.zeros((batch_size, k + 1, num_actions), np.float32),
            "policy_mask": np.zeros((batch_size, k + 1), np.float32),
            "weights": weights.astype(np.float32),
            "episode_ids": ids[which],
            "positions": flat - starts[which],
        }
        for row, (eid, t) in enumerate(zip(out["episode_ids"], out["positions"])):
            ep, z = self.episodes[int(eid)], self.value_targets[int(eid)]
            t_len = len(ep)
            out["obs"][row] = ep.obs[t]
            idx = np.arange(t, t + k + 1)
            inside = idx < t_len
            n_in = int(inside.sum())
            out["target_value"][row, :n_in] = z[t : t + n_in]
            out["target_policy"][row, :n_in] = ep.policies[t : t + n_in]
            out["policy_mask"][row, :n_in] = 1.0
            # reward target k is the reward of action t+k-1 (k >= 1)
            rew_idx = idx[1:] - 1
            rin = rew_idx < t_len
            out["target_reward"][row, 1:][rin] = ep.rewards[rew_idx[rin]]
            acts = self.rng.integers(0, num_actions, k)  # past the end: random actions (muzero-general)
            ain = rew_idx < t_len
            acts[ain] = ep.actions[rew_idx[ain]]
            out["actions"][row] = acts
        return out

    def update_priorities(self, episode_ids: np.ndarray, positions: np.ndarray, priorities: np.ndarray) -> None:
        fallback = max((float(p.max()) for p in self.priorities.values()), default=1.0)
        pr = _validate_priorities(priorities, fallback)
        for eid, t, p in zip(episode_ids, positions, pr):
            arr = self.priorities.get(int(eid))
            if arr is not None and 0 <= t < arr.shape[0]:  # the episode may have been evicted meanwhile
                arr[int(t)] = p

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the buffer to ``path`` (.npz, written to a temp file then renamed: crash-safe)."""
        path = Path(path)
        ids = list(self.episodes.keys())
        arrays: dict[str, np.ndarray] = {
            "meta": np.array([self.next_id, self.total_added], np.int64),
            "ids": np.array(ids, np.int64),
            "lens": np.array([len(self.episodes[i]) for i in ids], np.int64),
        }
        if ids:
            for field in ("obs", "actions", "rewards", "root_values", "policies"):
                arrays[field] = np.concatenate([getattr(self.episodes[i], field) for i in ids])
            arrays["priorities"] = np.concatenate([self.priorities[i] for i in ids])
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    def load(self, path: str | Path) -> None:
        with np.load(Path(path), allow_pickle=False) as data:
            self.episodes.clear()
            self.value_targets.clear()
            self.priorities.clear()
            self.num_transitions = 0
            self.next_id, self.total_added = (int(x) for x in data["meta"])
            ids, lens = data["ids"], data["lens"]
            offs = np.concatenate([[0], np.cumsum(lens)])
            for j, eid in enumerate(ids):
                s = slice(offs[j], offs[j + 1])
                ep = Episode(data["obs"][s], data["actions"][s], data["rewards"][s], data["root_values"][s],
                             data["policies"][s])
                self.episodes[int(eid)] = ep
                self.value_targets[int(eid)] = self._value_targets(ep)
                self.priorities[int(eid)] = _validate_priorities(data["priorities"][s], 1.0)
                self.num_transitions += len(ep)
