"""Run directories of ``schedgym train``: metadata, resolved config, checkpoints and a training log.

Layout of ``DIR`` (``--out``)::

    schedgym_agent.json      algo, backend, env id + kwargs, seed, resolved config, package versions,
                             the policy architecture (what ``schedgym run --policy DIR`` loads),
                             ``train_instances`` (what the env was made with: instance specs of
                             schedgym.benchmark.splits, which ``schedgym validate`` checks against a
                             task's test split; with --train-seeds/--task only those reset
                             seeds, e.g. poisson#seeds>=1000, and ``train_seeds`` says which)
                             and ``machine_cpus`` (the training budget's cores)
    config.yaml              the resolved config again, for people
    policy.pt                greedy-policy weights of the latest checkpoint (tensors only)
    checkpoints/step_<N>/    one directory per checkpoint: the backend's training state
                             (for --resume) plus its own schedgym_agent.json + policy.pt
    train_log.jsonl          one JSON line per event (start, checkpoint, resume, done); appended only
    tb/                      TensorBoard logs (``episode/return`` per finished episode: training/curves.py)

A checkpoint is written into a temporary directory and renamed into place, so a run killed while
saving never leaves a half-written ``step_<N>`` behind for ``--resume`` to pick up.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from schedgym.agents import AGENT_META_FILE
from schedgym.training.common import TrainSpec

__all__ = ["RunDir", "package_versions", "POLICY_WEIGHTS_FILE"]

POLICY_WEIGHTS_FILE = "policy.pt"
_CHECKPOINT_PREFIX = "step_"
_VERSIONED_PACKAGES = (
    "schedgym",
    "numpy",
    "torch",
    "gymnasium",
    "ray",
    "stable_baselines3",
    "sb3_contrib",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages a run depends on (``"missing"`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _train_instances(spec: TrainSpec) -> tuple[list[str] | None, str]:
    """What the run trains on, for the leaderboard's train/test check, and a note saying how it was read.

    Every seed of the env's source: the trainers reset envs from their own RNG streams. An env outside
    the benchmark's families records ``None`` (unknown), which the leaderboard refuses to rank.
    """
    from schedgym.benchmark.splits import instance_source, train_instances_for

    try:
        if spec.train_seeds is not None:
            from schedgym.training.seeds import TrainSeeds

            seeds = TrainSeeds.parse(spec.train_seeds)
            return [seeds.instance_spec(instance_source(spec.env_id, spec.env_kwargs))], (
                f"the env's instance/workload kwarg at the reset seeds {seeds} only (--train-seeds/--task: every "
                "training env is reset with a seed drawn from them)"
            )
        return train_instances_for(spec.env_id, spec.env_kwargs), (
            "the env's instance/workload kwarg at every seed (episodes are reset from the trainer's RNG streams)"
        )
    except ValueError as exc:
        return None, f"unknown: {exc}"


class RunDir:
    """The directory of one training run; see the module docstring for the layout."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    @property
    def meta_file(self) -> Path:
        return self.path / AGENT_META_FILE

    # ------------------------------------------------------------------ start / resume
    def prepare(self, spec: TrainSpec, extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create (or, with ``spec.resume``, reopen) the run directory; return its metadata.

        A fresh run refuses a directory that already holds checkpoints (pass ``--resume`` or another
        ``--out``). A resumed run keeps the stored env, seed and config and checks they match the spec's
        algo/backend/env, so it cannot silently continue a different experiment.
        """
        if spec.resume:
            if not self.meta_file.is_file():
                raise FileNotFoundError(f"--resume: {self.path} has no {AGENT_META_FILE}; nothing to resume")
            from schedgym.agents import read_agent_meta

            meta = read_agent_meta(self.path)
            for key, want in (("algo", spec.algo), ("backend", spec.backend), ("env_id", spec.env_id)):
                if meta.get(key) != want:
                    raise ValueError(f"--resume: {self.path} was trained with {key}={meta.get(key)!r}, not {want!r}")
            meta["timesteps"] = spec.timesteps  # the new total target
            return meta
        if self.latest_checkpoint() is not None:
            raise ValueError(
                f"--out {self.path} already holds checkpoints; pass --resume to continue it or choose another --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        train_instances, train_note = _train_instances(spec)
        meta = {
            "algo": spec.algo,
            "backend": spec.backend,
            "env_id": spec.env_id,
            "env_kwargs": spec.env_kwargs,
            "seed": spec.seed,
            "timesteps": spec.timesteps,
            "config": spec.config,
            "versions": package_versions(),
            "created_unix_s": time.time(),
            "machine_cpus": os.cpu_count(),
            "train_instances": train_instances,
            "train_instances_note": train_note,
            "train_seeds": spec.train_seeds,
            **(extra_meta or {}),
        }
        self.write_meta(meta)
        (self.path / "config.yaml").write_text(
            yaml.safe_dump({"env_id": spec.env_id, "env_kwargs": spec.env_kwargs, "seed": spec.seed, **spec.config},
                           sort_keys=False)
        )
        return meta

    def write_meta(self, meta: dict[str, Any], directory: Path | None = None) -> None:
        target = (directory or self.path) / AGENT_META_FILE
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, target)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_paths(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.iterdir() if p.is_dir() and p.name.startswith(_CHECKPOINT_PREFIX)]
        return sorted(found, key=lambda p: int(p.name[len(_CHECKPOINT_PREFIX):]))

    def latest_checkpoint(self) -> Path | None:
        paths = self.checkpoint_paths()
        return paths[-1] if paths else None

    @staticmethod
    def checkpoint_step(path: Path) -> int:
        return int(path.name[len(_CHECKPOINT_PREFIX):])

    def begin_checkpoint(self, step: int) -> Path:
        """A fresh temporary directory to write the checkpoint of ``step`` into."""
        tmp = self.checkpoints_dir / f".tmp_{_CHECKPOINT_PREFIX}{step:010d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_checkpoint(self, tmp: Path, step: int, meta: dict[str, Any], keep: int | None = None,
                          **log_fields: Any) -> Path:
        """Move ``tmp`` into place as ``step_<step>`` (env steps), refresh the top-level policy, prune old ones.

        ``log_fields`` go into the checkpoint's ``train_log.jsonl`` event (e.g. MuZero's ``learner_updates``).
        """
        if (tmp / POLICY_WEIGHTS_FILE).is_file():
            # Loading checks policy.pt against this digest (a corrupt or swapped file is refused).
            from schedgym.agents import file_sha256

            meta = {**meta, "policy_sha256": file_sha256(tmp / POLICY_WEIGHTS_FILE)}
        self.write_meta({**meta, "checkpoint_step": step}, tmp)
        final = self.checkpoints_dir / f"{_CHECKPOINT_PREFIX}{step:010d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        policy = final / POLICY_WEIGHTS_FILE
        if policy.is_file():
            tmp_policy = self.path / (POLICY_WEIGHTS_FILE + ".tmp")
            shutil.copyfile(policy, tmp_policy)
            os.replace(tmp_policy, self.path / POLICY_WEIGHTS_FILE)
        self.write_meta({**meta, "checkpoint_step": step})
        if keep is not None and keep > 0:
            for old in self.checkpoint_paths()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.log("checkpoint", step=step, **log_fields)
        return final

    # ------------------------------------------------------------------ log
    def log(self, event: str, **fields: Any) -> None:
        """Append one event to ``train_log.jsonl`` (never rewritten)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "train_log.jsonl", "a") as fh:
            fh.write(json.dumps({"event": event, "time_unix_s": time.time(), **fields}, default=str) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        path = self.path / "train_log.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
