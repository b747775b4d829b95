"""Run records say what ran: config.yaml and schedgym_agent.json carry the effective settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from schedgym.cli import build_parser
from schedgym.commands.train import build_spec
from schedgym.training.rundir import RunDir


@pytest.mark.parametrize("algo,backend", [("ppo", "sb3"), ("ppo", "rllib"), ("muzero", None)])
def test_config_yaml_equals_the_effective_config(tmp_path: Path, algo: str, backend: str | None) -> None:
    argv = ["train", "--env", "schedgym/MemoryMapping-v0", "--algo", algo, "--timesteps", "1234",
            "--out", str(tmp_path / "run")]
    if backend:
        argv += ["--backend", backend]
    spec = build_spec(build_parser().parse_args(argv))
    assert spec.timesteps == 1234 and spec.config["timesteps"] == 1234  # not the packaged default
    RunDir(spec.out_dir).prepare(spec)
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    meta = json.loads((tmp_path / "run" / "schedgym_agent.json").read_text())
    assert written == {"env_id": spec.env_id, "env_kwargs": {}, "seed": 0, **spec.config}
    assert written["timesteps"] == meta["timesteps"] == meta["config"]["timesteps"] == 1234


def test_checkpoint_log_step_is_env_steps_with_learner_updates_separate(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    tmp = run.begin_checkpoint(640)
    run.commit_checkpoint(tmp, 640, {"algo": "muzero"}, learner_updates=80)
    assert run.read_log()[-1]["step"] == 640 and run.read_log()[-1]["learner_updates"] == 80
    assert RunDir.checkpoint_step(run.latest_checkpoint()) == 640
