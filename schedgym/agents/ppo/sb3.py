"""PPO with sb3-contrib's MaskablePPO: single process, masks from the env's ``action_masks()``.

Training state is saved as tensors only (``policy``/``optimizer`` state dicts in ``sb3_state.pt``, read
with ``torch.load(weights_only=True)``) plus counters in JSON, never with SB3's zip format whose
``load`` unpickles objects. ``--resume`` rebuilds the model from the stored config and loads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedgym.agents.ppo.policy import ACTIVATIONS, build_mlp, check_ppo_config, flat_obs_dim, policy_arch
from schedgym.agents.ppo.wrappers import RewardScale
from schedgym.training.common import TrainSpec
from schedgym.training.progress import TrainProgress, main_metric_name
from schedgym.training.rundir import POLICY_WEIGHTS_FILE, RunDir

__all__ = ["train_sb3", "SB3_DEFAULTS", "export_actor"]

#: Fallbacks for keys the YAML leaves out (SB3's PPO defaults, smaller net); also the valid keys.
SB3_DEFAULTS: dict[str, Any] = {
    "timesteps": 100_000,  # default --timesteps
    "n_envs": 4,  # DummyVecEnv copies of the env (or sub-envs of the native vector env)
    # true: the env id's native vector env where it registers one (one kernel call steps all n_envs;
    # native_vec.NativeVecEnv: same episodes as the DummyVecEnv, tested), so many sub-envs cost little
    # more than one; false (or an id without one): DummyVecEnv of gym.make envs
    "native_vector_env": True,
    "n_steps": 256,  # steps per env per rollout
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3.0e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": None,
    "normalize_advantage": True,
    "reward_scale": 1.0,  # rewards are multiplied by this while training (see wrappers.RewardScale)
    "hidden_sizes": [64, 64],  # actor and critic MLPs (separate networks)
    "activation": "tanh",
    "checkpoint_every_steps": 10_000,
    "keep_checkpoints": 3,  # older checkpoints are deleted
    "device": "cpu",  # small MLPs train faster on CPU than on a GPU
    "torch_threads": 1,  # intra-op threads while training (restored afterwards); see ppo_sb3.yaml
    # Behaviour cloning before PPO (pretrain.py): the actor first imitates this baseline's decisions on
    # `pretrain_episodes` episodes of the run's env kwargs and train seeds; null: start from scratch.
    "pretrain_policy": None,
    "pretrain_episodes": 20,
    "pretrain_epochs": 30,  # passes over the demonstrations
    "pretrain_lr": 1.0e-3,  # Adam
    "pretrain_batch_size": 512,
}

_STATE_FILE = "sb3_state.pt"
_COUNTERS_FILE = "trainer_state.json"


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    if "native_vector_env" in config and not isinstance(config["native_vector_env"], bool):
        raise ValueError(f"native_vector_env must be true or false, got {config['native_vector_env']!r}")
    pretrain = config.get("pretrain_policy")
    if pretrain is not None and (not isinstance(pretrain, str) or not pretrain):
        raise ValueError(f"pretrain_policy must be a baseline name or null, got {pretrain!r}")
    return check_ppo_config(
        config,
        SB3_DEFAULTS,
        "ppo/sb3",
        positive_ints=("n_envs", "n_steps", "batch_size", "n_epochs", "checkpoint_every_steps", "torch_threads",
                       "pretrain_episodes", "pretrain_epochs", "pretrain_batch_size"),
    )


def _make_vec_env(env_id: str, env_kwargs: dict[str, Any], n_envs: int, seed: int, reward_scale: float = 1.0,
                  train_seeds: str | None = None, native: bool = False) -> Any:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from schedgym.evaluation import make_env

    make_env(env_id, env_kwargs).close()  # fail here, with the kwarg error, not inside a worker
    from schedgym.agents.ppo.native_vec import NativeVecEnv, has_native_vector_env

    if native and has_native_vector_env(env_id):
        vec = NativeVecEnv(env_id, env_kwargs, n_envs, reward_scale, train_seeds)
        vec.seed(seed)
        return vec

    def factory() -> Any:
        # Monitor inside the scaling: episode returns are reported in the env's own units.
        env = make_env(env_id, env_kwargs)
        if train_seeds is not None:  # every reset draws its seed from the train split's seeds
            from schedgym.training.seeds import ResetSeeds

            env = ResetSeeds(env, train_seeds)
        env = Monitor(env, info_keywords=())
        return RewardScale(env, reward_scale) if reward_scale != 1.0 else env

    vec = DummyVecEnv([factory] * n_envs)
    vec.seed(seed)
    return vec


def export_actor(model: Any, cfg: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The actor of a MaskablePPO policy as a :func:`build_mlp` state dict (``policy_net`` + ``action_net``)."""
    policy = model.policy
    n_hidden = len(cfg["hidden_sizes"])
    state: dict[str, torch.Tensor] = {}
    for key, tensor in policy.mlp_extractor.policy_net.state_dict().items():
        state[key] = tensor.detach().cpu().clone()  # "0.weight", "2.weight", ...: the same indices
    for key, tensor in policy.action_net.state_dict().items():
        state[f"{2 * n_hidden}.{key}"] = tensor.detach().cpu().clone()
    arch = policy_arch(
        flat_obs_dim(model.observation_space), int(model.action_space.n), cfg["hidden_sizes"], cfg["activation"]
    )
    build_mlp(arch["obs_dim"], arch["hidden_sizes"], arch["n_actions"], arch["activation"]).load_state_dict(state)
    return state, arch


def _save_checkpoint(run: RunDir, model: Any, cfg: dict[str, Any], meta: dict[str, Any]) -> Path:
    step = int(model.num_timesteps)
    tmp = run.begin_checkpoint(step)
    torch.save(
        {"policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict()}, tmp / _STATE_FILE
    )
    (tmp / _COUNTERS_FILE).write_text(json.dumps({"num_timesteps": step, "n_updates": int(model._n_updates)}))
    actor_state, arch = export_actor(model, cfg)
    torch.save(actor_state, tmp / POLICY_WEIGHTS_FILE)
    meta["policy_arch"] = arch
    return run.commit_checkpoint(tmp, step, meta, keep=cfg["keep_checkpoints"])


def _restore_checkpoint(model: Any, checkpoint: Path) -> int:
    state = torch.load(checkpoint / _STATE_FILE, map_location=model.device, weights_only=True)
    model.policy.load_state_dict(state["policy"])
    model.policy.optimizer.load_state_dict(state["optimizer"])
    counters = json.loads((checkpoint / _COUNTERS_FILE).read_text())
    model.num_timesteps = int(counters["num_timesteps"])
    model._n_updates = int(counters["n_updates"])
    return model.num_timesteps


def _pretrain(model: Any, cfg: dict[str, Any], meta: dict[str, Any], run: RunDir, env_id: str,
              env_kwargs: dict[str, Any], seed: int) -> None:
    """Behaviour cloning of ``cfg["pretrain_policy"]`` into the actor (pretrain.py); recorded in the run."""
    import time

    from schedgym.agents.ppo.pretrain import clone_into_actor, collect_demonstrations

    t0 = time.perf_counter()
    demos = collect_demonstrations(env_id, env_kwargs, str(cfg["pretrain_policy"]), int(cfg["pretrain_episodes"]),
                                   seed, meta.get("train_seeds"))
    losses = clone_into_actor(model.policy, demos, int(cfg["pretrain_epochs"]), float(cfg["pretrain_lr"]),
                              int(cfg["pretrain_batch_size"]), seed)
    record = {"policy": str(cfg["pretrain_policy"]), "episodes": len(demos.seeds), "decisions": int(len(demos.actions)),
              "seeds": demos.seeds, "final_loss": losses[-1], "wall_s": round(time.perf_counter() - t0, 1)}
    meta["pretrain"] = record
    run.log("pretrain", step=0, **{k: v for k, v in record.items() if k != "seeds"})


def train_sb3(spec: TrainSpec) -> Path:
    """Train MaskablePPO as ``spec`` says; checkpoints, TensorBoard and metadata go to ``spec.out_dir``."""
    threads = torch.get_num_threads()
    try:
        return _train_sb3(spec)
    finally:
        torch.set_num_threads(threads)


def _train_sb3(spec: TrainSpec) -> Path:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    run = RunDir(spec.out_dir)
    cfg = _check_config(spec.config)
    meta = run.prepare(spec)
    if spec.resume:  # continue the stored experiment, whatever the command line said
        cfg = _check_config(meta["config"])
    env_id, env_kwargs, seed = meta["env_id"], meta["env_kwargs"], int(meta["seed"])
    torch.set_num_threads(int(cfg["torch_threads"]))
    vec = _make_vec_env(env_id, env_kwargs, cfg["n_envs"], seed, float(cfg["reward_scale"]), meta.get("train_seeds"),
                        native=bool(cfg["native_vector_env"]))
    model = MaskablePPO(
        "MlpPolicy",
        vec,
        learning_rate=cfg["learning_rate"],
        n_steps=cfg["n_steps"],
        batch_size=cfg["batch_size"],
        n_epochs=cfg["n_epochs"],
        gamma=cfg["gamma"],
        gae_lambda=cfg["gae_lambda"],
        clip_range=cfg["clip_range"],
        ent_coef=cfg["ent_coef"],
        vf_coef=cfg["vf_coef"],
        max_grad_norm=cfg["max_grad_norm"],
        target_kl=cfg["target_kl"],
        normalize_advantage=cfg["normalize_advantage"],
        policy_kwargs={
            "net_arch": {"pi": list(cfg["hidden_sizes"]), "vf": list(cfg["hidden_sizes"])},
            "activation_fn": ACTIVATIONS[cfg["activation"]],
        },
        tensorboard_log=str(run.tensorboard_dir),
        seed=seed,
        device=cfg["device"],
        verbose=0,
    )
    start_step = 0
    latest = run.latest_checkpoint() if spec.resume else None
    if latest is not None:
        start_step = _restore_checkpoint(model, latest)
        run.log("resume", step=start_step, checkpoint=latest.name)
    else:
        run.log("start", step=0)
        if cfg.get("pretrain_policy"):
            _pretrain(model, cfg, meta, run, env_id, env_kwargs, seed)
    every = int(cfg["checkpoint_every_steps"])

    from torch.utils.tensorboard import SummaryWriter

    from schedgym.training.curves import EPISODE_DIR, log_episode

    class _Callback(BaseCallback):
        """Progress bar, env metrics and every episode's return (``episode/return``) to TensorBoard, and
        checkpoints between rollouts."""

        def __init__(self, progress: TrainProgress, episodes: Any) -> None:
            super().__init__()
            self.progress = progress
            self.episodes = episodes
            self.next_checkpoint = (start_step // every + 1) * every
            self.metric_name: str | None = main_metric_name(env_id)
            self.metric_values: list[float] = []

        def _on_rollout_start(self) -> None:
            # Between rollouts the model has just been updated: a consistent point to checkpoint.
            if self.model.num_timesteps >= self.next_checkpoint:
                _save_checkpoint(run, self.model, cfg, meta)
                self.next_checkpoint = (self.model.num_timesteps // every + 1) * every

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done and "episode" in info:  # the Monitor's record: the return in the env's own units
                    log_episode(self.episodes, self.model.num_timesteps, info["episode"]["r"], info.get("metrics"))
                metrics = info.get("metrics") if done else None
                if not metrics:
                    continue
                self.metric_name = main_metric_name(env_id, metrics)
                for key, value in metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                        self.logger.record_mean(f"metrics/{key}", float(value))
                if self.metric_name in metrics:
                    self.metric_values = (self.metric_values + [float(metrics[self.metric_name])])[-100:]
            returns = [ep["r"] for ep in self.model.ep_info_buffer]
            self.progress.update(
                self.model.num_timesteps,
                float(np.mean(returns)) if returns else None,
                self.metric_name,
                float(np.mean(self.metric_values)) if self.metric_values else None,
            )
            return True

    with TrainProgress(spec.timesteps, start_step, enabled=spec.progress, description=f"ppo/sb3 {env_id}") as bar:
        remaining = max(spec.timesteps - start_step, 0)
        if remaining > 0:
            episodes = SummaryWriter(str(run.tensorboard_dir / EPISODE_DIR))
            try:
                model.learn(total_timesteps=remaining, callback=_Callback(bar, episodes), reset_num_timesteps=False,
                            tb_log_name="sb3")
            finally:
                episodes.close()
    final = run.latest_checkpoint()
    if final is None or RunDir.checkpoint_step(final) != model.num_timesteps:
        _save_checkpoint(run, model, cfg, meta)
    run.log("done", step=int(model.num_timesteps))
    vec.close()
    return run.path
