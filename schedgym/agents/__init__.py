"""Trained agents (PPO with RLlib or SB3, MuZero) and loading them as policies.

A checkpoint directory written by ``schedgym train`` holds ``schedgym_agent.json`` with at least
``{"algo": "ppo"|"muzero", "backend": ..., "env_id": ..., "policy_sha256": ...}``;
:func:`load_agent_policy` reads it and hands the directory to ``schedgym.agents.<algo>.load_policy``.

Checkpoints are untrusted input. Loading never executes code from the checkpoint (no pickle:
``torch.load(weights_only=True)`` and JSON only); ``policy.pt`` must match the sha256 recorded in the
metadata (a bit flip or a swapped file is refused); the env id must match exactly; network sizes come
from the stored weight shapes (metadata that disagrees with them is refused before anything is built);
and every failure is a one-line ``ValueError`` naming the file.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

__all__ = [
    "AGENT_META_FILE",
    "MAX_POLICY_BYTES",
    "file_sha256",
    "load_agent_policy",
    "load_policy_weights",
    "read_agent_meta",
    "same_env_id",
]

AGENT_META_FILE = "schedgym_agent.json"
WEIGHTS_FILE = "policy.pt"
_ALGOS = ("ppo", "muzero")
#: Largest ``policy.pt`` and ``schedgym_agent.json`` read (the shipped policies are < 1 MB).
MAX_POLICY_BYTES = 256 * 1024 * 1024
MAX_META_BYTES = 4 * 1024 * 1024


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_env_id(recorded: Any, wanted: str) -> bool:
    """Exact comparison, allowing only the ``"schedgym:"`` module prefix form on either side."""
    def plain(x: str) -> str:
        return x[len("schedgym:") :] if x.startswith("schedgym:") else x

    return isinstance(recorded, str) and plain(recorded) == plain(wanted)


def read_agent_meta(path: str | Path) -> dict[str, Any]:
    """``DIR/schedgym_agent.json`` as a dict; ``ValueError`` naming the file for anything else."""
    path = Path(path)
    meta_file = path / AGENT_META_FILE
    if not path.is_dir():
        raise ValueError(f"{path} is not a schedgym checkpoint directory")
    if not meta_file.is_file():
        raise ValueError(f"{path} is not a schedgym checkpoint directory: {AGENT_META_FILE} is missing")
    if meta_file.stat().st_size > MAX_META_BYTES:
        raise ValueError(f"{meta_file}: larger than {MAX_META_BYTES} bytes")
    from schedgym.envs.core.validation import json_object

    try:
        text = meta_file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{meta_file}: not valid UTF-8 (byte {exc.start})") from None
    return json_object(text, str(meta_file))


def load_policy_weights(path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The tensors of ``DIR/policy.pt`` after checking its size and the sha256 the metadata records.

    ``torch.load(weights_only=True)``: tensors and plain containers only, never code.
    """
    import torch

    path = Path(path)
    weights = path / WEIGHTS_FILE
    meta_file = path / AGENT_META_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS_FILE} (no checkpoint has been written yet)")
    size = weights.stat().st_size
    if size > MAX_POLICY_BYTES:
        raise ValueError(f"{weights}: {size} bytes, more than the limit of {MAX_POLICY_BYTES}")
    want = meta.get("policy_sha256")
    if not isinstance(want, str) or len(want) != 64:
        raise ValueError(
            f"{meta_file}: no 'policy_sha256' of {WEIGHTS_FILE} recorded, so it cannot be checked "
            f"(add \"policy_sha256\": \"<sha256sum {WEIGHTS_FILE}>\" if you trust the file)"
        )
    got = file_sha256(weights)
    if got != want.lower():
        raise ValueError(
            f"{weights}: sha256 {got} differs from the {want} recorded in {AGENT_META_FILE} "
            "(the file is corrupt or was replaced)"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated, empty or non-tensor files: all one message)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{weights}: not a readable tensors-only checkpoint ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{weights}: expected a state_dict (names -> tensors)")
    return state


def load_agent_policy(path: str | Path, env_id: str | None = None, **kwargs: Any) -> Any:
    """A :class:`~schedgym.baselines.Policy` that acts greedily with the agent saved in ``path``."""
    path = Path(path)
    meta_file = path / AGENT_META_FILE
    meta = read_agent_meta(path)
    algo = meta.get("algo")
    if algo not in _ALGOS:
        raise ValueError(f"{meta_file}: 'algo' must be one of {list(_ALGOS)}, got {str(algo)[:40]!r}")
    if env_id is not None and not same_env_id(meta.get("env_id"), env_id):
        raise ValueError(f"{path} was trained on {str(meta.get('env_id'))[:80]!r}, not {env_id!r}")
    module = importlib.import_module(f"schedgym.agents.{algo}")
    policy = module.load_policy(path, meta=meta, **kwargs)
    policy.env_overrides = presentation_overrides(meta)
    return policy


def presentation_overrides(meta: dict[str, Any]) -> dict[str, Any]:
    """The presentation kwargs (``PRESENTATION_KWARGS``, e.g. MemoryMapping's ``action_mode``) an agent was
    trained with: it acts with them wherever it is evaluated, as a baseline does with ``env_overrides``
    (the same observation shape can mean another game: ``order`` vs ``place`` mode)."""
    from schedgym.baselines import PRESENTATION_KWARGS
    from schedgym.envs import env_family

    trained = meta.get("env_kwargs") or {}
    try:
        family = env_family(str(meta.get("env_id")))
    except ValueError:
        return {}
    return {k: trained[k] for k in PRESENTATION_KWARGS.get(family, ()) if isinstance(trained, dict) and k in trained}
