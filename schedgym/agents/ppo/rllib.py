"""PPO with Ray RLlib on the new API stack (RLModule / Learner / EnvRunner) and our masking RLModule.

Ids with a native vector env (``native_vector_env: true``, the default) give each runner one vector env
through the creator :func:`~schedgym.agents.ppo.rllib_vector.make_rllib_env` (RLlib's
``gym_env_vectorize_mode="vector_entry_point"``), which does the training wrappers' jobs on the whole vector.
Otherwise the env is referred to as ``"schedgym:<id>"``: gymnasium imports ``schedgym`` (which registers
the ids) inside every env runner process, so remote runners need nothing from the driver but the config.
The ``ActionMaskObservation`` wrapper is applied there too, through ``gym.make_vec(..., wrappers=[...])``
(RLlib passes ``env_config`` to ``gym.make_vec`` as keyword arguments).

Ray starts embedded by default, bound to 127.0.0.1 with no dashboard (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
makes Ray use the loopback address, as it does on laptops); ``address`` / ``RAY_ADDRESS`` joins a cluster.

Checkpoints are loaded without executing code: RLlib's own ``Algorithm.save_to_path`` checkpoint is
not written, because ``restore_from_path`` unpickles parts of it. A checkpoint instead holds

* ``rllib_state.pt``: the learner's RLModule weights (actor and critic) and optimizer state, as
  tensors and plain containers (read with ``torch.load(weights_only=True)``);
* ``trainer_state.json``: counters (env steps, training iterations) and the resolved config;
* ``policy.pt``: the actor alone, tensors only (what ``schedgym run --policy`` loads).

``--resume`` builds a fresh Algorithm from the saved config, loads the learner state into it, syncs the
weights to the env runners and restores the counters. Not restored (RLlib keeps them in pickled
objects): the running metric windows (episode return means restart empty) and the env runners'
in-flight episodes and RNG, so a resumed run is not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from schedgym.agents.ppo.policy import check_ppo_config, policy_arch
from schedgym.training.common import TrainSpec
from schedgym.training.progress import TrainProgress, main_metric_name
from schedgym.training.rundir import POLICY_WEIGHTS_FILE, RunDir

__all__ = ["train_rllib", "init_ray", "RLLIB_DEFAULTS", "rllib_env_name", "build_algo_config"]

#: Fallbacks for keys the YAML leaves out (RLlib's PPO defaults unless noted); also the valid keys.
RLLIB_DEFAULTS: dict[str, Any] = {
    "timesteps": 100_000,  # default --timesteps
    "num_env_runners": 0,  # remote EnvRunner actors; 0 samples in the driver process
    "num_envs_per_env_runner": 4,  # vectorised copies of the env per runner
    # true: ids with a native vector env step all of a runner's envs in one kernel call
    # (rllib_vector.RLlibVectorEnv: same episodes as RLlib's SyncVectorEnv of wrapped envs, tested)
    "native_vector_env": True,
    "train_batch_size": 2048,  # env steps per training iteration (per learner)
    "minibatch_size": 128,
    "num_epochs": 10,
    "lr": 3.0e-4,  # SB3's PPO default (RLlib's is 5e-5)
    "gamma": 0.99,
    "lambda_": 0.95,  # GAE lambda (SB3's default; RLlib's is 1.0)
    "clip_param": 0.2,
    "vf_clip_param": 10.0,
    "vf_loss_coeff": 0.5,  # SB3's default (RLlib's is 1.0)
    "entropy_coeff": 0.0,
    "use_kl_loss": False,  # clipping only, as in SB3 (RLlib's default adds a KL penalty)
    "reward_scale": 1.0,  # rewards are multiplied by this while training (see wrappers.RewardScale)
    "grad_clip": 0.5,  # SB3's max_grad_norm
    "hidden_sizes": [64, 64],
    "activation": "tanh",
    "checkpoint_every_steps": 10_000,
    "keep_checkpoints": 3,
    "num_cpus": None,  # CPUs of the embedded Ray (None: all)
    "torch_threads": 1,  # intra-op threads of the driver's learner while training (restored afterwards)
}

_COUNTERS_FILE = "trainer_state.json"
_LEARNER_STATE_FILE = "rllib_state.pt"
_METRICS_KEY = "schedgym_metrics"
#: Every finished episode's return (env units) since the last iteration: a series RLlib does not reduce.
_RETURNS_KEY = "schedgym_episode_returns"


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    if "native_vector_env" in config and not isinstance(config["native_vector_env"], bool):
        raise ValueError(f"native_vector_env must be true or false, got {config['native_vector_env']!r}")
    return check_ppo_config(
        config,
        RLLIB_DEFAULTS,
        "ppo/rllib",
        positive_ints=("num_envs_per_env_runner", "train_batch_size", "minibatch_size", "num_epochs",
                       "checkpoint_every_steps", "torch_threads"),
        non_negative_ints=("num_env_runners",),
    )


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start embedded Ray on 127.0.0.1 (or join ``address`` / ``$RAY_ADDRESS``); True if this call started it."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # Read by Ray when it is imported: with 0, the node (GCS, raylet, workers) binds the loopback address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "1":
            raise RuntimeError(
                "ray was imported before schedgym could set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so an embedded Ray "
                "would listen on all interfaces; set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in the environment, "
                "or pass --address to join a cluster"
            )
        # address="local": always a new embedded instance; with None, ray.init joins whatever local
        # instance /tmp/ray/ray_current_cluster names (another user's run on a shared machine).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        from schedgym.raynet import connect_ray

        connect_ray(address, log_to_driver=False)
    return True


def rllib_env_name(env_id: str) -> str:
    """``"schedgym/X-v0"`` -> ``"schedgym:schedgym/X-v0"``: the module gymnasium imports in each runner.

    Ids that already name a module are kept; an id outside the ``schedgym/`` namespace (an entry added
    to the registry by a user) is prefixed with the module of its entry point.
    """
    if ":" in env_id:
        return env_id
    if env_id.startswith("schedgym/"):
        return f"schedgym:{env_id}"
    from schedgym.envs import env_entry

    return f"{env_entry(env_id).entry_point.split(':', 1)[0]}:{env_id}"


def _metrics_callback_class() -> type:
    from ray.rllib.callbacks.callbacks import RLlibCallback

    class SchedgymMetricsCallback(RLlibCallback):
        """Logs the numeric ``info["metrics"]`` of every finished episode (mean over the last 100) and its
        return in the env's own units (the series behind ``episode/return``)."""

        def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
            if metrics_logger is None:
                return
            info = episode.get_infos(-1)
            metrics = info.get("metrics") if isinstance(info, dict) else None
            ret = info.get("episode_return") if isinstance(info, dict) else None  # EpisodeReturnInfo: env units
            if ret is not None:
                metrics_logger.log_value(_RETURNS_KEY, {"return": float(ret), "metrics": dict(metrics or {})},
                                         reduce="item_series")
            for key, value in (metrics or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    metrics_logger.log_value((_METRICS_KEY, key), float(value), reduce="mean", window=100)

    return SchedgymMetricsCallback


def build_algo_config(env_id: str, env_kwargs: dict[str, Any], cfg: dict[str, Any], seed: int,
                      train_seeds: str | None = None) -> Any:
    """The ``PPOConfig`` of a run (new API stack, masking RLModule, env by module-qualified id)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from schedgym.agents.ppo.rl_module import MaskedMLPTorchRLModule
    from schedgym.envs.core import ActionMaskObservation

    from schedgym.agents.ppo.native_vec import has_native_vector_env
    from schedgym.agents.ppo.rllib_vector import make_rllib_env
    from schedgym.agents.ppo.wrappers import EpisodeReturnInfo, RewardScale

    n_envs = cfg["num_envs_per_env_runner"] * max(1, cfg["num_env_runners"])
    native = bool(cfg.get("native_vector_env", True)) and has_native_vector_env(env_id)
    if native:  # one native vector env per runner, the wrappers' jobs done on the whole vector
        from ray.tune.registry import register_env

        env: Any = f"schedgym-native-vector/{env_id}"
        register_env(env, make_rllib_env)  # Ray's registry reaches the remote runners too
        env_config: dict[str, Any] = {"env_id": env_id, "env_kwargs": dict(env_kwargs),
                                      "reward_scale": float(cfg["reward_scale"]),
                                      "train_seeds": None if train_seeds is None else str(train_seeds),
                                      # remote runners hold num_cpus_per_env_runner CPUs each: one thread
                                      "parallel": cfg["num_env_runners"] == 0}
        vectorize_mode = gym.VectorizeMode.VECTOR_ENTRY_POINT
    else:  # RLlib's SyncVectorEnv of single envs, each wrapped
        wrappers: list[Any] = [ActionMaskObservation, EpisodeReturnInfo]
        if train_seeds is not None:  # every reset draws its seed from the train split's seeds
            from schedgym.training.seeds import ResetSeeds

            wrappers.insert(0, functools.partial(ResetSeeds, train_seeds=str(train_seeds)))
        if float(cfg["reward_scale"]) != 1.0:
            scale = float(cfg["reward_scale"])
            wrappers.append(functools.partial(RewardScale, scale=scale))
        env, env_config = rllib_env_name(env_id), {**env_kwargs, "wrappers": wrappers}
        vectorize_mode = gym.VectorizeMode.SYNC
    config = (
        PPOConfig()
        .environment(env=env, env_config=env_config)
        .framework("torch")
        .env_runners(
            num_env_runners=cfg["num_env_runners"],
            num_envs_per_env_runner=cfg["num_envs_per_env_runner"],
            rollout_fragment_length=max(1, cfg["train_batch_size"] // n_envs),
            gym_env_vectorize_mode=vectorize_mode,
        )
        .learners(num_learners=0)
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=MaskedMLPTorchRLModule,
                model_config={"hidden_sizes": list(cfg["hidden_sizes"]), "activation": cfg["activation"]},
            )
        )
        .training(
            train_batch_size_per_learner=cfg["train_batch_size"],
            minibatch_size=cfg["minibatch_size"],
            num_epochs=cfg["num_epochs"],
            lr=cfg["lr"],
            gamma=cfg["gamma"],
            lambda_=cfg["lambda_"],
            clip_param=cfg["clip_param"],
            vf_clip_param=cfg["vf_clip_param"],
            vf_loss_coeff=cfg["vf_loss_coeff"],
            entropy_coeff=cfg["entropy_coeff"],
            use_kl_loss=cfg["use_kl_loss"],
            grad_clip=cfg["grad_clip"],
        )
        .callbacks(_metrics_callback_class())
        .debugging(seed=seed)
    )
    return config


def _export_actor(algo: Any) -> dict[str, torch.Tensor]:
    """The learner's ``pi`` network as a :func:`build_mlp` state dict (tensors only)."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID

    path = f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}/{DEFAULT_MODULE_ID}"
    state = algo.learner_group.get_state(components=path)
    module_state = state[COMPONENT_LEARNER][COMPONENT_RL_MODULE][DEFAULT_MODULE_ID]
    return {
        key[len("pi."):]: torch.as_tensor(np.asarray(value)).clone()
        for key, value in module_state.items()
        if key.startswith("pi.")
    }


def _plain_tensors(value: Any, where: str = "state") -> Any:
    """``value`` with numpy arrays as torch tensors and numpy scalars as Python numbers.

    RLlib's ``get_state`` returns numpy arrays (``convert_to_numpy``), which ``torch.load(weights_only=True)``
    refuses; anything that is not a tensor, number, string, None or a dict/list/tuple of them raises
    here, at save time, rather than making the checkpoint unloadable.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where}: object array cannot be saved weights-only")
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {k: _plain_tensors(v, f"{where}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_tensors(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where}: {type(value).__name__} cannot be saved weights-only")


def _learner_state(algo: Any) -> dict[str, Any]:
    """RLModule weights + optimizer state of the (local) learner, tensors and plain containers only."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_OPTIMIZER, COMPONENT_RL_MODULE

    components = [f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", f"{COMPONENT_LEARNER}/{COMPONENT_OPTIMIZER}"]
    learner = algo.learner_group.get_state(components=components)[COMPONENT_LEARNER]
    # "should_module_be_updated" is config (policies_to_train: may be a callable); it comes from the
    # rebuilt config on resume, so only the tensors and the weights' sequence number are kept.
    keep = {key: learner[key] for key in (COMPONENT_RL_MODULE, COMPONENT_OPTIMIZER, "weights_seq_no") if key in learner}
    return _plain_tensors(keep)


def _save_checkpoint(run: RunDir, algo: Any, step: int, cfg: dict[str, Any], meta: dict[str, Any]) -> Path:
    tmp = run.begin_checkpoint(step)
    torch.save(_learner_state(algo), tmp / _LEARNER_STATE_FILE)
    counters = {"env_steps": step, "training_iteration": int(algo.training_iteration), "config": cfg}
    (tmp / _COUNTERS_FILE).write_text(json.dumps(counters, indent=2))
    torch.save(_export_actor(algo), tmp / POLICY_WEIGHTS_FILE)
    return run.commit_checkpoint(tmp, step, meta, keep=cfg["keep_checkpoints"])


def _restore_checkpoint(algo: Any, checkpoint: Path) -> int:
    """Load ``checkpoint``'s learner state and counters into a freshly built ``algo``; return its env step."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger
    from ray.tune.result import TRAINING_ITERATION

    if not (checkpoint / _LEARNER_STATE_FILE).is_file():
        raise FileNotFoundError(
            f"--resume: {checkpoint} has no {_LEARNER_STATE_FILE} (written by an older schedgym that saved "
            "RLlib's pickled checkpoint, which is no longer loaded); train again into a new --out"
        )
    learner = torch.load(checkpoint / _LEARNER_STATE_FILE, map_location="cpu", weights_only=True)
    counters = json.loads((checkpoint / _COUNTERS_FILE).read_text())
    step = int(counters["env_steps"])
    # Algorithm.set_state loads the learner group (module + optimizer), then syncs the inference-only
    # weights to every env runner, and sets the iteration counter.
    algo.set_state(
        {
            COMPONENT_LEARNER_GROUP: {COMPONENT_LEARNER: learner},
            TRAINING_ITERATION: int(counters.get("training_iteration", 0)),
        }
    )
    # RLlib's lifetime env-step counter (what learning-rate / entropy schedules are keyed on) continues
    # too. The algorithm's root MetricsLogger refuses a direct log_value into a key that env runner
    # results are later aggregated into, so the count arrives the way env runners report it: as the
    # reduced metrics of a (non-root) logger, aggregated under ENV_RUNNER_RESULTS.
    seed_metrics = MetricsLogger(stats_cls_lookup=algo.config.stats_cls_lookup, root=False)
    seed_metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, step, reduce="lifetime_sum", with_throughput=True)
    algo.metrics.aggregate([seed_metrics.reduce()], key=ENV_RUNNER_RESULTS)
    algo.env_runner_group.sync_env_runner_states(config=algo.config, env_steps_sampled=step)
    return step


def _result_value(result: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def train_rllib(spec: TrainSpec) -> Path:
    """Train RLlib PPO as ``spec`` says; checkpoints, TensorBoard and metadata go to ``spec.out_dir``."""
    from schedgym.evaluation import make_env

    run = RunDir(spec.out_dir)
    cfg = _check_config(spec.config)
    meta = run.prepare(spec)
    latest = run.latest_checkpoint() if spec.resume else None
    if spec.resume:  # continue the stored experiment, whatever the command line said
        cfg = _check_config(meta["config"])
        if latest is not None:  # the config the checkpoint's weights were trained with
            cfg = _check_config(json.loads((latest / _COUNTERS_FILE).read_text()).get("config", cfg))
    env_id, env_kwargs, seed = meta["env_id"], meta["env_kwargs"], int(meta["seed"])
    probe = make_env(env_id, env_kwargs)  # fail here, with the kwarg error, not inside an env runner
    from schedgym.agents.ppo.policy import flat_obs_dim

    meta["policy_arch"] = policy_arch(
        flat_obs_dim(probe.observation_space), int(probe.action_space.n), cfg["hidden_sizes"], cfg["activation"]
    )
    probe.close()

    started_ray = init_ray(spec.address, cfg["num_cpus"])
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg["torch_threads"]))
    from torch.utils.tensorboard import SummaryWriter

    algo = None
    from schedgym.training.curves import EPISODE_DIR, log_episode

    writer = SummaryWriter(str(run.tensorboard_dir / "rllib"))
    episodes = SummaryWriter(str(run.tensorboard_dir / EPISODE_DIR))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            algo = build_algo_config(env_id, env_kwargs, cfg, seed, meta.get("train_seeds")).build_algo()
        step = 0
        if latest is not None:
            step = _restore_checkpoint(algo, latest)
            run.log("resume", step=step, checkpoint=latest.name)
        else:
            run.log("start", step=0)
        every = int(cfg["checkpoint_every_steps"])
        next_checkpoint = (step // every + 1) * every
        metric_name = main_metric_name(env_id)
        last_saved = step if latest is not None else None
        with TrainProgress(spec.timesteps, step, enabled=spec.progress, description=f"ppo/rllib {env_id}") as bar:
            while step < spec.timesteps:
                result = algo.train()
                sampled = _result_value(result, "env_runners", "num_env_steps_sampled")
                if not sampled:
                    raise RuntimeError(f"RLlib iteration reported no sampled env steps: {sorted(result)}")
                step += int(sampled)
                mean_return = _result_value(result, "env_runners", "episode_return_mean")
                metrics = _result_value(result, "env_runners", _METRICS_KEY) or {}
                metric_name = main_metric_name(env_id, metrics) if metrics else metric_name
                metric_value = metrics.get(metric_name) if metric_name else None
                _log_tensorboard(writer, result, step, metrics)
                # Every episode that finished in this iteration, at the iteration's env step count.
                for ep in _finished_episodes(result):
                    log_episode(episodes, step, ep["return"], ep["metrics"])
                bar.update(step, _finite(mean_return), metric_name, _finite(metric_value))
                if step >= next_checkpoint:
                    _save_checkpoint(run, algo, step, cfg, meta)
                    last_saved = step
                    next_checkpoint = (step // every + 1) * every
        if last_saved != step or run.latest_checkpoint() is None:
            _save_checkpoint(run, algo, step, cfg, meta)
        run.log("done", step=step)
    finally:
        torch.set_num_threads(threads)
        writer.close()
        episodes.close()
        if algo is not None:
            algo.stop()
        if started_ray:
            import ray

            ray.shutdown()
    return run.path


def _finished_episodes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The episodes of the iteration logged by the callback (RLlib returns a lone item unwrapped)."""
    series = _result_value(result, "env_runners", _RETURNS_KEY)
    if isinstance(series, dict):
        series = [series]
    return [ep for ep in series or () if isinstance(ep, dict) and "return" in ep]


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _log_tensorboard(writer: Any, result: dict[str, Any], step: int, metrics: dict[str, Any]) -> None:
    scalars = {
        "rollout/ep_rew_mean": _result_value(result, "env_runners", "episode_return_mean"),
        "rollout/ep_len_mean": _result_value(result, "env_runners", "episode_len_mean"),
    }
    learner = _result_value(result, "learners", "default_policy") or {}
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_explained_var"):
        scalars[f"train/{key}"] = learner.get(key)
    for key, value in metrics.items():
        scalars[f"metrics/{key}"] = value
    for tag, value in scalars.items():
        value = _finite(value)
        if value is not None:
            writer.add_scalar(tag, value, step)
