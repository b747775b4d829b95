"""``schedgym train --algo muzero``: start the actors, supervise them, log, checkpoint, resume.

Ray runs embedded on this machine (127.0.0.1, no dashboard) unless ``spec.address`` names a cluster.
The driver polls the actors: a self-play actor that dies (node lost, killed, OOM) is replaced by a
fresh one with a new seed, while the replay buffer and the learner keep running. A crash of the
driver or the learner leaves the last checkpoint (weights, optimizer, counters, replay buffer) in
``out_dir/checkpoints``; ``--resume`` continues from it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schedgym.agents.muzero.config import MuZeroConfig
from schedgym.training.common import TrainSpec

__all__ = ["RunHandles", "train"]


@dataclass
class RunHandles:
    """What the driver holds while training (handed to ``spec.extra["on_poll"]`` hooks, e.g. tests)."""

    storage: Any
    replay: Any
    learner: Any
    workers: dict[int, Any]
    restarts: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


def _init_ray(address: str | None) -> bool:
    """Connect to ``address`` or start an embedded Ray; True if this call started it."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        from schedgym.raynet import connect_ray

        connect_ray(address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    return True


def train(spec: TrainSpec) -> Path:
    """Train a Gumbel MuZero agent as described by ``spec``; returns the run directory."""
    import ray
    from torch.utils.tensorboard import SummaryWriter

    from schedgym.evaluation import make_env
    from schedgym.training.curves import log_episode
    from schedgym.training.progress import TrainProgress, main_metric_name
    from schedgym.training.rundir import RunDir

    if spec.algo != "muzero":
        raise ValueError(f"schedgym.agents.muzero.train got algo={spec.algo!r}")
    run_dir = RunDir(spec.out_dir)
    cfg = MuZeroConfig.from_dict(dict(spec.config))
    probe = make_env(spec.env_id, spec.env_kwargs)
    num_actions = int(probe.action_space.n)
    obs_dim = int(np.prod(probe.observation_space.shape))
    probe.close()
    net_cfg = cfg.network(obs_dim, num_actions)
    net_meta = {**net_cfg.__dict__, "layers": list(net_cfg.layers)}
    meta = run_dir.prepare(spec, extra_meta={"network": net_meta})
    if spec.resume:
        cfg = MuZeroConfig.from_dict(dict(meta["config"]))  # keep the stored experiment's config
    cfg_dict = cfg.to_dict()
    resume_from = run_dir.latest_checkpoint() if spec.resume else None
    counters: dict[str, int] = {}
    if resume_from is not None:
        import torch

        counters = {k: int(v) for k, v in torch.load(resume_from / "trainer.pt", weights_only=True)["counters"].items()}
    started_ray = _init_ray(spec.address)
    classes = remote_classes_cached()
    handles: RunHandles | None = None
    created: list[Any] = []  # every actor this run started, killed on the way out whatever happens
    writer = SummaryWriter(str(run_dir.tensorboard_dir), filename_suffix=".driver")
    metric_name = main_metric_name(spec.env_id)
    try:
        storage = classes["storage"].options(num_cpus=0).remote(counters)
        replay = classes["replay"].options(num_cpus=0).remote(cfg_dict, spec.seed)
        created += [storage, replay]
        restored = 0
        if resume_from is not None and (resume_from / "replay.npz").is_file():
            restored = ray.get(replay.load.remote(str(resume_from / "replay.npz")))
        run_dir.log("resume" if resume_from is not None else "start", checkpoint=str(resume_from),
                    counters=counters, timesteps=spec.timesteps, replay_restored=restored,
                    ray_address=spec.address)
        learner = classes["learner"].options(num_cpus=cfg.learner_num_cpus).remote(
            cfg_dict, net_meta, spec.seed, storage, replay, str(run_dir.path), meta,
            str(resume_from) if resume_from is not None else None,
        )
        created.append(learner)
        step0 = ray.get(learner.training_step.remote())
        ray.get(storage.set_weights.remote(ray.get(learner.initial_weights.remote()), step0))
        handles = RunHandles(storage, replay, learner, {})
        incarnation = {i: 0 for i in range(cfg.num_selfplay_workers)}

        def start_worker(i: int) -> Any:
            opts: dict[str, Any] = {"num_cpus": cfg.selfplay_num_cpus}
            if cfg.selfplay_spread:
                opts["scheduling_strategy"] = "SPREAD"
            # distinct seeds per worker, per incarnation and per resume
            seed = int(np.random.SeedSequence([spec.seed, i, incarnation[i], counters.get("played_steps", 0)])
                       .generate_state(1)[0])
            w = classes["selfplay"].options(**opts).remote(
                i, spec.env_id, spec.env_kwargs, cfg_dict, seed, storage, replay, spec.timesteps,
                meta.get("train_seeds"),
            )
            handles.workers[i] = w
            return w.run.remote()

        run_refs = {start_worker(i): i for i in range(cfg.num_selfplay_workers)}
        learner_ref = learner.run.remote(spec.timesteps)
        on_poll: Callable[[RunHandles], None] | None = spec.extra.get("on_poll")
        start_played = counters.get("played_steps", 0)
        target_updates = max(1, int(np.ceil(cfg.train_act_ratio * spec.timesteps)))  # as Learner.run
        t_start = time.perf_counter()
        counters_start = counters.get("training_step", 0)
        selfplay_done = False
        with TrainProgress(spec.timesteps, start_played, enabled=spec.progress,
                           description=f"muzero {spec.env_id}") as bar:
            while True:
                ready, _ = ray.wait([learner_ref, *run_refs], num_returns=1, timeout=0.5)
                for ref in ready:
                    if ref == learner_ref:
                        continue
                    i = run_refs.pop(ref)
                    try:
                        ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                        # A dead self-play actor is replaced; the replay buffer lives in its own actor.
                        incarnation[i] += 1
                        handles.restarts += 1
                        event = {"worker": i, "incarnation": incarnation[i], "error": type(exc).__name__}
                        handles.events.append(event)
                        run_dir.log("selfplay_restart", **event)
                        run_refs[start_worker(i)] = i
                if not run_refs and not selfplay_done:  # every self-play actor has played its budget
                    storage.set_selfplay_done.remote()
                    selfplay_done = True
                c = ray.get(storage.get_counters.remote())
                for s in ray.get(storage.pop_new_stats.remote()):
                    log_episode(writer, c["played_steps"], s["return"], s["metrics"])
                bar.update(c["played_steps"], ray.get(storage.recent_mean.remote()), metric_name,
                           ray.get(storage.recent_mean.remote(metric=metric_name)) if metric_name else None,
                           extra=f"learner updates {c['training_step']:,}/{target_updates:,}")
                if on_poll is not None:
                    on_poll(handles)
                if learner_ref in ready:
                    result = ray.get(learner_ref)  # re-raises a learner crash
                    break
        ray.get(storage.set_stop.remote())
        ray.wait(list(run_refs), num_returns=len(run_refs), timeout=30)
        counters = ray.get(storage.get_counters.remote())
        wall_s = time.perf_counter() - t_start
        played = counters.get("played_steps", 0) - start_played
        # A move is one batched search over a worker's B envs; throughput of this run (resumes excluded).
        rates = {"wall_s": round(wall_s, 2), "env_steps_per_s": round(played / wall_s, 2),
                 "moves_per_s": round(played / cfg.envs_per_worker / wall_s, 2),
                 "learner_updates_per_s": round((counters.get("training_step", 0) - counters_start) / wall_s, 2)}
        if spec.progress:
            print(f"muzero: {played:,} env steps ({rates['env_steps_per_s']:,.1f}/s, {rates['moves_per_s']:,.2f} "
                  f"batched moves/s), {counters.get('training_step', 0):,} learner updates in {wall_s:,.1f} s",
                  file=sys.stderr)
        run_dir.log("done", counters=counters, result=result, selfplay_restarts=handles.restarts, **rates,
                    replay_transitions=ray.get(replay.size.remote()),
                    replay_total_added=ray.get(replay.total_added.remote()),
                    recent_return=ray.get(storage.recent_mean.remote()),
                    node_ids=ray.get(storage.get_node_ids.remote()))
    finally:
        writer.close()
        for actor in [*(handles.workers.values() if handles else ()), *created]:
            with contextlib.suppress(Exception):  # already dead: nothing to release
                ray.kill(actor)
        if started_ray:
            ray.shutdown()
    return run_dir.path


_CLASSES: dict[str, Any] | None = None


def remote_classes_cached() -> dict[str, Any]:
    global _CLASSES
    if _CLASSES is None:
        from schedgym.agents.muzero.actors import remote_classes

        _CLASSES = remote_classes()
    return _CLASSES
