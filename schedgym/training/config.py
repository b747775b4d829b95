"""Hyperparameters of ``schedgym train``: YAML files in the package keyed by env id (rl-zoo style).

``schedgym/training/configs/<algo>[_<backend>].yaml`` holds a ``default`` section and one section per
env id that overrides it::

    default:
      learning_rate: 3.0e-4
    schedgym/MemoryMapping-v0:
      learning_rate: 1.0e-3   # why: how it was chosen

The resolved config of a run is ``default`` <- ``<env id>`` <- ``--config FILE.yaml`` (same layout, or a
flat mapping) <- ``--set key=value``. Unknown keys are errors that list the valid ones, so a typo never
silently trains with a default.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["config_file_name", "load_packaged_config", "resolve_config", "parse_set_overrides"]

DEFAULT_SECTION = "default"


def config_file_name(algo: str, backend: str | None) -> str:
    """``ppo_rllib.yaml``, ``ppo_sb3.yaml``, ``muzero.yaml``."""
    return f"{algo}_{backend}.yaml" if backend else f"{algo}.yaml"


def _read_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{where}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None


def _sections(data: Any, where: str) -> dict[str, dict[str, Any]]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of sections ('default', env ids), got {type(data).__name__}")
    for key, value in data.items():
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{where}: section {key!r} must be a mapping of hyperparameters, got {value!r}")
    return {str(k): dict(v or {}) for k, v in data.items()}


def _plain_id(env_id: str) -> str:
    return env_id.split(":", 1)[1] if ":" in env_id else env_id


def load_packaged_config(algo: str, backend: str | None, env_id: str) -> dict[str, Any]:
    """``default`` merged with the section of ``env_id`` from the packaged YAML file ({} if none)."""
    name = config_file_name(algo, backend)
    ref = resources.files("schedgym.training").joinpath("configs", name)
    if not ref.is_file():
        return {}
    sections = _sections(_read_yaml(ref.read_text(), f"schedgym/training/configs/{name}"), name)
    return {**sections.get(DEFAULT_SECTION, {}), **sections.get(_plain_id(env_id), {})}


def _user_file_config(path: Path, env_id: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such file {str(path)!r}")
    data = _read_yaml(path.read_text(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    keyed = DEFAULT_SECTION in data or any(isinstance(k, str) and "/" in k for k in data)
    if not keyed:  # a flat mapping of hyperparameters
        return dict(data)
    sections = _sections(data, str(path))
    return {**sections.get(DEFAULT_SECTION, {}), **sections.get(_plain_id(env_id), {})}


_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _coerce_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``1e-3`` as a string; hyperparameters mean the float."""
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def parse_set_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-3", "net_arch=[128, 128]"]`` -> ``{"lr": 0.001, "net_arch": [128, 128]}`` (values are YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = _coerce_number(_read_yaml(value, f"--set {key.strip()}")) if value.strip() else None
    return out


def resolve_config(
    algo: str,
    backend: str | None,
    env_id: str,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    valid_keys: set[str] | None = None,
) -> dict[str, Any]:
    """The run's hyperparameters; with ``valid_keys``, unknown keys raise a ValueError listing them."""
    config = load_packaged_config(algo, backend, env_id)
    if config_file is not None:
        config.update(_user_file_config(Path(config_file), env_id))
    config.update(overrides or {})
    config = {key: _coerce_number(value) for key, value in config.items()}
    if valid_keys is not None:
        unknown = sorted(set(config) - valid_keys)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} for {algo}"
                + (f"/{backend}" if backend else "")
                + f"; valid: {sorted(valid_keys)}"
            )
    return config
