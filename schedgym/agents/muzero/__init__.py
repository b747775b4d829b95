"""Gumbel MuZero agent: batched array tree search, learned and simulator models, Ray actors.

- :mod:`.search` — batched Gumbel MuZero search (numba kernels over ``[B, nodes, A]`` arrays)
- :mod:`.networks` — representation/dynamics/prediction MLPs, categorical value support
- :mod:`.models` — ``learned`` (MuZero) and ``simulator`` (env get_state/set_state) search models
- :mod:`.replay` — bounded prioritised replay, NaN-proof priorities
- :mod:`.actors` — self-play, learner, replay and storage actors; :mod:`.driver` — the training driver
- :mod:`.policy` — acting with a trained agent (``load_policy``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_policy", "train"]


def train(spec: Any) -> Path:
    """``schedgym train --algo muzero`` (see :mod:`schedgym.agents.muzero.driver`)."""
    from schedgym.agents.muzero.driver import train as _train

    return _train(spec)


def load_policy(path: str | Path, meta: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A Policy searching with the agent saved in ``path``; ``num_simulations=N`` sets the search size."""
    from schedgym.agents.muzero.policy import load_policy as _load

    return _load(path, meta=meta, **kwargs)
