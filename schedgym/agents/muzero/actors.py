"""Self-play, replay, learner and shared storage: the plain logic, and the Ray actors around it.

The decomposition is muzero-general's (SharedStorage / ReplayBuffer / N x SelfPlay / Trainer), but
each self-play worker searches B environments as one batch (:mod:`.search`), the replay buffer is
bounded and NaN-proof (:mod:`.replay`), and the driver (:mod:`.driver`) supervises the workers: a
self-play actor that dies is replaced, while the buffer lives on in its own actor.

A train/act ratio keeps learning and acting in step: the learner waits while
``updates > train_act_ratio * env_steps``; once the learner has started, self-play waits while it is
more than a few batched moves ahead of ``updates / train_act_ratio`` (before that it fills the
buffer freely, so the learner can never wait on a throttled self-play).
"""

from __future__ import annotations

import copy
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from schedgym.agents.muzero.config import MuZeroConfig
from schedgym.agents.muzero.models import make_model
from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig
from schedgym.agents.muzero.replay import Episode, ReplayBuffer
from schedgym.agents.muzero.search import gumbel_muzero_search

__all__ = ["LearnerCore", "ReplayActor", "SelfPlayCore", "SharedStorage", "remote_classes", "state_dict_to_numpy"]


def state_dict_to_numpy(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def load_numpy_state(net: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})


# --------------------------------------------------------------------------- self-play
class SelfPlayCore:
    """B envs stepped together; each move is one batched Gumbel MuZero search over the B roots.

    With the learned model and an id that registers a native vector env (``cfg.native_vector_env``), the
    B envs are one ``gym.make_vec(..., "vector_entry_point")`` env: the same episodes as B single envs
    (each reset draws its seed from ``rng`` in the same order; finished rows are reset in the same step),
    stepped in one call. The simulator model keeps B single envs: its search snapshots each tree's env.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], cfg: MuZeroConfig, seed: int,
                 train_seeds: str | None = None) -> None:
        from schedgym.agents.ppo.native_vec import has_native_vector_env
        from schedgym.evaluation import make_env

        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        b = cfg.envs_per_worker
        self.train_seeds = None
        if train_seeds is not None:
            from schedgym.training.seeds import TrainSeeds

            self.train_seeds = TrainSeeds.parse(train_seeds) if isinstance(train_seeds, str) else train_seeds
        self.vec: Any = None
        self.envs: list[Any] = []
        if cfg.model == "learned" and cfg.native_vector_env and has_native_vector_env(env_id):
            make_env(env_id, env_kwargs).close()  # the kwargs' checks, with errors that name a bad kwarg
            # One thread: a self-play actor holds selfplay_num_cpus of Ray's CPUs (threads would double its
            # CPU time for no gain in moves per second, benchmarks/simulator_search.py).
            self.vec = gym.make_vec(env_id, num_envs=b, vectorization_mode="vector_entry_point", parallel=False,
                                    **env_kwargs)  # fmt: skip
            space, obs_space = self.vec.single_action_space, self.vec.single_observation_space
        else:
            self.envs = [make_env(env_id, env_kwargs) for _ in range(b)]
            space, obs_space = self.envs[0].action_space, self.envs[0].observation_space
        self.num_envs = b
        self.num_actions = int(space.n)
        self.obs_dim = int(np.prod(obs_space.shape))
        self.net = MuZeroNetwork(cfg.network(self.obs_dim, self.num_actions)).eval()
        self.search_cfg = cfg.search(acting=False)
        self.obs: list[np.ndarray] = [None] * b  # type: ignore[list-item]
        self.legal: list[np.ndarray] = [None] * b  # type: ignore[list-item]
        self.scratch: list[Any] = [None] * b
        self.traces: list[dict[str, list]] = [{} for _ in range(b)]
        self._reset(list(range(b)))

    def _reset_seed(self) -> int:
        """The next episode's seed: from the run's stream, mapped into the train split when there is one
        (as :class:`~schedgym.training.seeds.ResetSeeds` maps it)."""
        seed = int(self.rng.integers(2**31 - 1))
        if self.train_seeds is not None:
            return int(self.train_seeds.draw(np.random.default_rng(seed)))
        return seed

    def _reset(self, rows: list[int]) -> None:
        seeds = [self._reset_seed() for _ in rows]
        if self.vec is not None:
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[rows] = True
            all_seeds: list[int | None] = [None] * self.num_envs
            for b, sd in zip(rows, seeds):
                all_seeds[b] = sd
            obs, info = self.vec.reset(seed=all_seeds, options={"reset_mask": mask})
            results = [(obs[b], info["action_mask"][b]) for b in rows]
        else:
            results = []
            for b, sd in zip(rows, seeds):
                o, info = self.envs[b].reset(seed=sd)
                results.append((o, info["action_mask"]))
        for b, (o, mask_b) in zip(rows, results):
            self.obs[b] = np.asarray(o, np.float32).reshape(-1)
            self.legal[b] = np.asarray(mask_b, bool)
            if self.cfg.model == "simulator":
                # A scratch copy per episode: instance data generated at reset may live outside env.state.
                self.scratch[b] = copy.deepcopy(self.envs[b].unwrapped)
            self.traces[b] = {"obs": [], "actions": [], "rewards": [], "root_values": [], "policies": []}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        load_numpy_state(self.net, weights)

    def _step_envs(self, rows: list[int], actions: np.ndarray) -> list[tuple[np.ndarray, float, bool, dict]]:
        """Step the envs ``rows`` with ``actions`` (one per row): ``(obs, reward, done, metrics or None)``.
        A vector env steps every row: the others take their first legal action, and nothing of theirs is
        kept (they are idle only while self-play drains its last episodes)."""
        if self.vec is None:
            out = []
            for b, a in zip(rows, actions):
                o, r, term, trunc, info = self.envs[b].step(int(a))
                done = term or trunc
                metrics = (info.get("metrics") or self.envs[b].unwrapped.metrics()) if done else None
                out.append((o, float(r), done, metrics, np.asarray(info["action_mask"], bool)))
            return out
        full = np.asarray([np.flatnonzero(legal)[0] for legal in self.legal], dtype=np.int64)
        full[rows] = actions
        obs, rew, term, trunc, info = self.vec.step(full)
        done = term | trunc
        out = []
        for b in rows:
            metrics = None
            if done[b]:
                m = info["metrics"]
                metrics = {k: v[b] for k, v in m.items() if not k.startswith("_") and m[f"_{k}"][b]}
            out.append((obs[b], float(rew[b]), bool(done[b]), metrics, np.asarray(info["action_mask"][b], bool)))
        kept = set(rows)
        idle_done = [int(b) for b in np.flatnonzero(done) if b not in kept]
        if idle_done:  # restart idle rows on their own streams (no draw from rng: as single envs not stepped)
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[idle_done] = True
            obs2, info2 = self.vec.reset(options={"reset_mask": mask})
            for b in idle_done:
                self.obs[b] = np.asarray(obs2[b], np.float32).reshape(-1)
                self.legal[b] = np.asarray(info2["action_mask"][b], bool)
        return out

    def step(self, only: list[int] | None = None) -> tuple[list[Episode], list[dict[str, Any]]]:
        """One move in each of the B envs (or the envs ``only``); returns the finished episodes and stats."""
        rows = list(range(self.num_envs)) if only is None else list(only)
        obs = np.stack([self.obs[b] for b in rows])
        legal = np.stack([self.legal[b] for b in rows])
        states = [self.envs[b].unwrapped.get_state() for b in rows] if self.cfg.model == "simulator" else None
        scratch = [self.scratch[b] for b in rows]
        model = make_model(self.cfg.model, self.net, obs, legal, scratch, states, self.cfg.leaf_value)
        out = gumbel_muzero_search(model, self.search_cfg, self.rng)
        finished: list[Episode] = []
        stats: list[dict[str, Any]] = []
        ended: list[int] = []
        stepped = self._step_envs(rows, out.action[: len(rows)])
        for row, (b, (o, r, done, metrics, mask_b)) in enumerate(zip(rows, stepped)):
            tr = self.traces[b]
            tr["obs"].append(self.obs[b])
            tr["actions"].append(int(out.action[row]))
            tr["root_values"].append(float(out.root_value[row]))
            tr["policies"].append(out.policy_target[row])
            tr["rewards"].append(r)
            self.obs[b] = np.asarray(o, np.float32).reshape(-1)
            self.legal[b] = mask_b
            if done:
                finished.append(
                    Episode(
                        obs=np.stack(tr["obs"]).astype(np.float32),
                        actions=np.asarray(tr["actions"], np.int64),
                        rewards=np.asarray(tr["rewards"], np.float32),
                        root_values=np.asarray(tr["root_values"], np.float32),
                        policies=np.stack(tr["policies"]).astype(np.float32),
                    )
                )
                stats.append({"return": float(np.sum(tr["rewards"])), "length": len(tr["actions"]),
                              "metrics": {k: float(v) for k, v in metrics.items() if np.isscalar(v)}})
                ended.append(b)
        if ended:
            self._reset(ended)
        return finished, stats

    def in_progress(self) -> list[int]:
        """The envs whose current episode has started (at least one move played)."""
        return [b for b, tr in enumerate(self.traces) if tr["actions"]]


# --------------------------------------------------------------------------- learner
def _scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward, gradient x scale backward (MuZero Appendix G: halve dynamics gradients)."""
    return x * scale + x.detach() * (1.0 - scale)


class LearnerCore:
    """The MuZero loss (value, reward, policy over a K-step unroll) and an Adam step."""

    def __init__(self, cfg: MuZeroConfig, net_cfg: NetworkConfig, seed: int) -> None:
        torch.manual_seed(seed)
        self.cfg = cfg
        self.net = MuZeroNetwork(net_cfg)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.training_step = 0

    def update(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, float], np.ndarray]:
        net, cfg = self.net, self.cfg
        net.train()
        support = net.support
        k_steps = cfg.train_unroll_steps
        obs = torch.as_tensor(batch["obs"])
        actions = torch.as_tensor(batch["actions"][:, :k_steps])
        z = torch.as_tensor(batch["target_value"])
        u = torch.as_tensor(batch["target_reward"])
        pi = torch.as_tensor(batch["target_policy"])
        pmask = torch.as_tensor(batch["policy_mask"])
        weights = torch.as_tensor(batch["weights"])

        s = net.represent(obs)
        logits, vlog = net.predict(s)
        value0 = support.logits_to_scalar(vlog.detach())
        v_loss = -(support.scalar_to_probs(z[:, 0]) * F.log_softmax(vlog, -1)).sum(-1)
        p_loss = -(pi[:, 0] * F.log_softmax(logits, -1)).sum(-1) * pmask[:, 0]
        r_loss = torch.zeros_like(v_loss)
        for k in range(1, k_steps + 1):
            s, rlog = net.dynamics_step(s, actions[:, k - 1])
            s = _scale_grad(s, 0.5)
            logits, vlog = net.predict(s)
            # each unrolled step's loss is scaled by 1/K (MuZero Appendix G)
            v_loss = v_loss + (-(support.scalar_to_probs(z[:, k]) * F.log_softmax(vlog, -1)).sum(-1)) / k_steps
            p_loss = p_loss + (-(pi[:, k] * F.log_softmax(logits, -1)).sum(-1) * pmask[:, k]) / k_steps
            r_loss = r_loss + (-(support.scalar_to_probs(u[:, k]) * F.log_softmax(rlog, -1)).sum(-1)) / k_steps
        loss = ((cfg.value_loss_weight * v_loss + p_loss + r_loss) * weights).mean()
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip_norm)
        self.opt.step()
        self.training_step += 1
        net.eval()
        priorities = (value0 - z[:, 0]).abs().numpy()
        return (
            {"loss": loss.item(), "value_loss": v_loss.mean().item(), "policy_loss": p_loss.mean().item(),
             "reward_loss": r_loss.mean().item()},
            priorities,
        )


# --------------------------------------------------------------------------- plain actor classes
class SharedStorage:
    """Latest weights, counters and recent episode stats (one instance per run)."""

    def __init__(self, counters: dict[str, int] | None = None) -> None:
        self.weights: dict[str, np.ndarray] | None = None
        self.weights_version = 0
        self.counters = {"played_steps": 0, "episodes": 0, "training_step": 0, **(counters or {})}
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.new_stats: list[dict[str, Any]] = []
        self.stop = False
        self.node_ids: dict[int, str] = {}

    def set_weights(self, weights: dict[str, np.ndarray], training_step: int) -> None:
        self.weights = weights
        self.weights_version += 1
        self.counters["training_step"] = int(training_step)

    def get_weights(self, if_newer_than: int = -1) -> tuple[int, dict[str, np.ndarray] | None]:
        if self.weights_version <= if_newer_than:
            return self.weights_version, None
        return self.weights_version, self.weights

    def record_play(self, steps: int, stats: list[dict[str, Any]], worker_id: int, node_id: str) -> int:
        self.counters["played_steps"] += int(steps)
        self.counters["episodes"] += len(stats)
        self.recent.extend(stats)
        self.new_stats.extend(stats)
        self.node_ids[worker_id] = node_id
        return self.counters["played_steps"]

    def set_training_step(self, step: int) -> None:
        self.counters["training_step"] = int(step)

    def get_counters(self) -> dict[str, int]:
        return dict(self.counters)

    def pop_new_stats(self) -> list[dict[str, Any]]:
        out, self.new_stats = self.new_stats, []
        return out

    def recent_mean(self, key: str = "return", metric: str | None = None) -> float | None:
        vals = [s["metrics"].get(metric) if metric else s[key] for s in self.recent]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    def set_stop(self, stop: bool = True) -> None:
        self.stop = stop

    def set_selfplay_done(self, done: bool = True) -> None:
        """Every self-play actor has played its budget: the learner no longer waits for new data."""
        self.selfplay_done = done

    def get_selfplay_done(self) -> bool:
        return getattr(self, "selfplay_done", False)

    def get_stop(self) -> bool:
        return self.stop

    def get_node_ids(self) -> dict[int, str]:
        return dict(self.node_ids)


class ReplayActor:
    """The replay buffer as an actor: it outlives any self-play worker."""

    def __init__(self, cfg_dict: dict[str, Any], seed: int) -> None:
        cfg = MuZeroConfig.from_dict(cfg_dict)
        self.buffer = ReplayBuffer(cfg.replay_capacity, cfg.train_unroll_steps, cfg.td_steps, cfg.discount,
                                   cfg.priority_alpha, cfg.priority_beta, seed)

    def add(self, episodes: list[Episode]) -> int:
        for ep in episodes:
            self.buffer.add(ep)
        return len(self.buffer)

    def size(self) -> int:
        return len(self.buffer)

    def total_added(self) -> int:
        return self.buffer.total_added

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        return self.buffer.sample(batch_size)

    def update_priorities(self, episode_ids: np.ndarray, positions: np.ndarray, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(episode_ids, positions, priorities)

    def save(self, path: str) -> None:
        self.buffer.save(path)

    def load(self, path: str) -> int:
        self.buffer.load(path)
        return len(self.buffer)


class SelfPlayWorker:
    """Ray actor: runs :class:`SelfPlayCore` until the run's step budget is reached."""

    def __init__(self, worker_id: int, env_id: str, env_kwargs: dict[str, Any], cfg_dict: dict[str, Any],
                 seed: int, storage: Any, replay: Any, timesteps: int, train_seeds: str | None = None) -> None:
        self.cfg = MuZeroConfig.from_dict(cfg_dict)
        torch.set_num_threads(self.cfg.torch_threads)
        self.worker_id = worker_id
        self.core = SelfPlayCore(env_id, env_kwargs, self.cfg, seed, train_seeds)
        self.storage, self.replay, self.timesteps = storage, replay, int(timesteps)

    def ping(self) -> int:
        return os.getpid()

    def run(self) -> int:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        cfg = self.cfg
        version = -1
        moves = 0
        slack = 4 * cfg.envs_per_worker * cfg.num_selfplay_workers
        while True:
            if ray.get(self.storage.get_stop.remote()):
                return moves
            counters = ray.get(self.storage.get_counters.remote())
            if counters["played_steps"] >= self.timesteps:
                return moves + self._finish_episodes(node_id)
            learner_started = counters["training_step"] > 0  # before that, fill the buffer freely
            if learner_started and counters["played_steps"] > counters["training_step"] / cfg.train_act_ratio + slack:
                time.sleep(0.05)  # the learner is behind: wait (train/act ratio)
                continue
            if moves % cfg.weights_sync_steps == 0:
                version, weights = ray.get(self.storage.get_weights.remote(version))
                if weights is not None:
                    self.core.set_weights(weights)
            episodes, stats = self.core.step()
            moves += 1
            if episodes:
                self.replay.add.remote(episodes)
            self.storage.record_play.remote(cfg.envs_per_worker, stats, self.worker_id, node_id)

    def _finish_episodes(self, node_id: str) -> int:
        """Play the episodes in flight at the budget to their end, so that none of their steps is lost.

        Only whole episodes reach the replay buffer; without this, a budget shorter than one episode per
        env (e.g. 3,000 steps of 200-step episodes over 16 envs) would leave the learner nothing to learn
        from. Counted steps therefore exceed the budget by at most one episode per env (as SB3 and
        RLlib's complete-episode batches do).
        """
        import ray

        moves = 0
        draining = self.core.in_progress()
        while draining:
            if ray.get(self.storage.get_stop.remote()):
                break
            episodes, stats = self.core.step(only=draining)
            moves += 1
            if episodes:
                self.replay.add.remote(episodes)
            self.storage.record_play.remote(len(draining), stats, self.worker_id, node_id)
            # an env that finished has been reset: its new episode is not played
            draining = [b for b in draining if self.core.traces[b]["actions"]]
        return moves


class Learner:
    """Ray actor: samples the replay buffer, updates the network, publishes weights, checkpoints."""

    def __init__(self, cfg_dict: dict[str, Any], net_cfg: dict[str, Any], seed: int, storage: Any, replay: Any,
                 run_dir: str, meta: dict[str, Any], resume_from: str | None) -> None:
        self.cfg = MuZeroConfig.from_dict(cfg_dict)
        torch.set_num_threads(self.cfg.torch_threads)
        net_cfg = dict(net_cfg)
        net_cfg["layers"] = tuple(net_cfg["layers"])
        self.core = LearnerCore(self.cfg, NetworkConfig(**net_cfg), seed)
        self.storage, self.replay = storage, replay
        self.run_dir, self.meta = run_dir, meta
        self.writer: Any = None
        if resume_from is not None:
            self._restore(Path(resume_from))

    def _restore(self, ckpt: Path) -> None:
        self.core.net.load_state_dict(torch.load(ckpt / "policy.pt", weights_only=True))
        trainer = torch.load(ckpt / "trainer.pt", weights_only=True)
        self.core.opt.load_state_dict(trainer["optimizer"])
        self.core.training_step = int(trainer["counters"]["training_step"])

    def initial_weights(self) -> dict[str, np.ndarray]:
        return state_dict_to_numpy(self.core.net)

    def training_step(self) -> int:
        return self.core.training_step

    def checkpoint(self) -> str:
        import ray

        from schedgym.training.rundir import RunDir

        rd = RunDir(self.run_dir)
        updates = self.core.training_step
        counters = ray.get(self.storage.get_counters.remote())
        counters["training_step"] = updates
        # Checkpoints are named and logged by env steps, as PPO's are; learner updates are their own field.
        step = int(counters["played_steps"])
        tmp = rd.begin_checkpoint(step)
        ray.get(self.replay.save.remote(str(tmp / "replay.npz")))  # same moment as the weights
        torch.save(self.core.net.state_dict(), tmp / "policy.pt")
        torch.save({"optimizer": self.core.opt.state_dict(), "counters": counters}, tmp / "trainer.pt")
        final = rd.commit_checkpoint(tmp, step, self.meta, keep=self.cfg.keep_checkpoints, learner_updates=updates)
        return str(final)

    def run(self, timesteps: int) -> dict[str, Any]:
        import ray
        from torch.utils.tensorboard import SummaryWriter

        from schedgym.training.rundir import RunDir

        cfg, core = self.cfg, self.core
        self.writer = SummaryWriter(str(RunDir(self.run_dir).tensorboard_dir), filename_suffix=".learner")
        target_updates = max(1, int(np.ceil(cfg.train_act_ratio * timesteps)))
        last: dict[str, float] = {}
        while core.training_step < target_updates:
            if ray.get(self.storage.get_stop.remote()):
                break
            counters = ray.get(self.storage.get_counters.remote())
            size = ray.get(self.replay.size.remote())
            # Once every self-play actor has played its budget nothing more will come: train on what there is
            # (or stop when there is nothing). Asked only when about to wait, so no RPC on the update path.
            if size < min(cfg.min_replay_transitions, cfg.replay_capacity):
                if not ray.get(self.storage.get_selfplay_done.remote()):
                    time.sleep(0.02)  # wait for self-play to fill the buffer
                    continue
                if size == 0:
                    break  # self-play has ended without one whole episode: nothing to learn from
            elif core.training_step >= cfg.train_act_ratio * counters["played_steps"] and not ray.get(
                self.storage.get_selfplay_done.remote()
            ):
                time.sleep(0.02)  # wait for self-play (train/act ratio)
                continue
            batch = ray.get(self.replay.sample.remote(cfg.batch_size))
            last, priorities = core.update(batch)
            self.replay.update_priorities.remote(batch["episode_ids"], batch["positions"], priorities)
            step = core.training_step
            if step % cfg.publish_weights_every == 0:
                self.storage.set_weights.remote(state_dict_to_numpy(core.net), step)
            else:
                self.storage.set_training_step.remote(step)
            if step % 10 == 0:
                for k, v in last.items():
                    self.writer.add_scalar(f"learner/{k}", v, step)
            if step % cfg.checkpoint_every == 0:
                self.checkpoint()
        self.storage.set_weights.remote(state_dict_to_numpy(core.net), core.training_step)
        path = self.checkpoint()
        self.writer.close()
        return {"training_step": core.training_step, "checkpoint": path, **last}


def remote_classes() -> dict[str, Any]:
    """The Ray actor classes (built lazily so that importing this module does not import Ray)."""
    import ray

    return {
        "storage": ray.remote(SharedStorage),
        "replay": ray.remote(ReplayActor),
        "selfplay": ray.remote(SelfPlayWorker),
        "learner": ray.remote(Learner),
    }
