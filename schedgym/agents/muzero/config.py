"""Hyperparameters of the MuZero agent (every field documented; YAML: schedgym/training/configs/muzero.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from schedgym.agents.muzero.networks import NetworkConfig
from schedgym.agents.muzero.search import SearchConfig

__all__ = ["MuZeroConfig"]


@dataclass
class MuZeroConfig:
    timesteps: int = 20_000  # env steps of `schedgym train` when --timesteps is not given
    # ---- model and search
    model: str = "simulator"  # "simulator" (env get_state/set_state as dynamics) or "learned" (MuZero)
    # Value of a new leaf in the simulator model: "network" (the value head, as AlphaZero) or "rollout" (the
    # return of the env's default action to the episode's end, env.rollout_return(): AlphaGo's rollouts,
    # exact in a deterministic game, so the search compares real completions of each move).
    leaf_value: str = "network"
    num_simulations: int = 16  # simulations per move while training (Gumbel MuZero works with 2-16)
    eval_simulations: int = 16  # simulations per move when acting with a trained agent
    max_considered_actions: int = 16  # m of Gumbel-top-m at the root (Danihelka et al. 2022)
    c_visit: float = 50.0  # sigma transform constants (Gumbel MuZero paper)
    c_scale: float = 0.1
    discount: float = 1.0  # gamma
    # ---- networks
    hidden_dim: int = 64  # latent state size
    layers: tuple[int, ...] = (128, 128)  # widths of the MLPs' hidden layers (each Linear-LayerNorm-ReLU)
    support_lo: float = -2.0  # categorical value/reward support in h(x)-space
    support_hi: float = 2.0
    support_bins: int = 41
    # ---- learning
    unroll_steps: int = 5  # K of the MuZero unroll (learned model; the simulator model trains at K = 0)
    td_steps: int = 50  # n of the n-step value target (bootstrap from the search value)
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-4
    value_loss_weight: float = 0.25  # MuZero Reanalyze's 0.25 (Schrittwieser et al. 2020, Appendix H)
    grad_clip_norm: float = 5.0
    train_act_ratio: float = 0.05  # learner updates per environment step (muzero-general's ratio)
    min_replay_transitions: int = 256  # learner waits until the buffer holds this many
    replay_capacity: int = 100_000  # transitions kept (bounded memory; oldest episodes evicted)
    priority_alpha: float = 1.0  # prioritised replay exponent (1 = muzero-general default)
    priority_beta: float = 1.0  # importance-sampling correction
    # ---- actors
    num_selfplay_workers: int = 1  # Ray self-play actors
    envs_per_worker: int = 16  # B: environments searched as one batch by each worker
    # Learned model: self-play steps its B envs as one native vector env (gym.make_vec, vector_entry_point)
    # where the id has one; the same episodes as B single envs. The simulator model keeps single envs (its
    # search snapshots each tree's env).
    native_vector_env: bool = True
    selfplay_num_cpus: float = 1.0  # Ray CPU request of each self-play actor
    learner_num_cpus: float = 1.0  # Ray CPU request of the learner
    selfplay_spread: bool = False  # spread self-play actors over nodes (Ray "SPREAD" strategy)
    weights_sync_steps: int = 4  # self-play pulls new weights every this many batched moves
    publish_weights_every: int = 10  # learner publishes weights every this many updates
    checkpoint_every: int = 200  # learner updates between checkpoints
    keep_checkpoints: int = 3  # checkpoints kept on disk
    torch_threads: int = 1  # torch intra-op threads per actor

    def __post_init__(self) -> None:
        if self.model not in ("simulator", "learned"):
            raise ValueError(f"model must be 'simulator' or 'learned', got {self.model!r}")
        if self.leaf_value not in ("network", "rollout"):
            raise ValueError(f"leaf_value must be 'network' or 'rollout', got {self.leaf_value!r}")
        if self.leaf_value == "rollout" and self.model != "simulator":
            raise ValueError("leaf_value 'rollout' needs model 'simulator' (a rollout steps the true env)")
        if not isinstance(self.native_vector_env, bool):
            raise ValueError(f"native_vector_env must be true or false, got {self.native_vector_env!r}")
        self.layers = tuple(int(x) for x in self.layers)
        for name in ("num_simulations", "eval_simulations", "batch_size", "num_selfplay_workers",
                     "envs_per_worker", "td_steps", "checkpoint_every", "weights_sync_steps",
                     "publish_weights_every", "replay_capacity", "hidden_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.unroll_steps < 0:
            raise ValueError(f"unroll_steps must be >= 0, got {self.unroll_steps}")
        if not self.train_act_ratio > 0:
            raise ValueError(f"train_act_ratio must be > 0, got {self.train_act_ratio}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @classmethod
    def valid_keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MuZeroConfig:
        unknown = sorted(set(d) - cls.valid_keys())
        if unknown:
            raise ValueError(f"unknown muzero hyperparameter(s) {unknown}; valid: {sorted(cls.valid_keys())}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    def network(self, obs_dim: int, num_actions: int) -> NetworkConfig:
        return NetworkConfig(obs_dim, num_actions, self.hidden_dim, self.layers, self.support_lo,
                             self.support_hi, self.support_bins)

    def search(self, acting: bool = False, num_simulations: int | None = None) -> SearchConfig:
        sims = num_simulations or (self.eval_simulations if acting else self.num_simulations)
        return SearchConfig(sims, self.max_considered_actions, self.c_visit, self.c_scale, self.discount,
                            gumbel_scale=0.0 if acting else 1.0)

    @property
    def train_unroll_steps(self) -> int:
        return self.unroll_steps if self.model == "learned" else 0
