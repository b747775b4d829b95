"""Live training feedback: progress (bar or plain lines) with the env's main metric (one table for all families)."""

from __future__ import annotations

from typing import Any, TextIO

from schedgym.progress import DEFAULT_PLAIN_INTERVAL_S, Progress

__all__ = ["MAIN_METRICS", "main_metric_name", "TrainProgress", "short_description"]

#: The one metric of ``info["metrics"]`` shown while training, per env family (the headline metric of
#: each family's spec). Families not listed fall back to the first metric key the env reports.
MAIN_METRICS: dict[str, str] = {
    "MemoryMapping": "benefit_placed_frac",
    "GPUAutoscaling": "sla_attainment",
    "PowerCapping": "seconds_over_budget",
    "AgentScheduling": "turnaround_mean",
}


def main_metric_name(env_id: str, metrics: dict[str, Any] | None = None) -> str | None:
    """The headline metric of ``env_id``: from :data:`MAIN_METRICS`, else the first numeric key of ``metrics``."""
    plain = env_id.split(":", 1)[1] if ":" in env_id else env_id
    family = plain.split("/", 1)[-1].rsplit("-v", 1)[0]
    name = MAIN_METRICS.get(family)
    if name is not None and (metrics is None or name in metrics):
        return name
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return key
    return name


class TrainProgress:
    """``with TrainProgress(total, start) as p: p.update(steps, mean_return, metric_name, metric_value)``.

    Steps are env steps. A :class:`schedgym.progress.Progress` underneath: a bar on a terminal, a plain
    line every few seconds otherwise (with step, rate, ETA, mean return and the env's main metric).
    With ``enabled=False`` (``--no-progress``) it prints nothing.
    """

    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True, description: str = "train",
                 stream: TextIO | None = None, interval_s: float = DEFAULT_PLAIN_INTERVAL_S) -> None:
        self.total_steps = int(total_steps)
        self.start_step = int(start_step)
        self.enabled = enabled
        self.description = short_description(description)
        self._progress = Progress(self.total_steps, self.description, start=self.start_step, unit="steps",
                                  enabled=enabled, stream=stream, interval_s=interval_s)

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def update(
        self, steps: int, mean_return: float | None, metric_name: str | None = None, metric_value: float | None = None,
        extra: str | None = None,
    ) -> None:
        """``steps`` env steps so far; mean return and main metric of recent episodes; ``extra`` appended."""
        stats = "return " + ("-" if mean_return is None else f"{mean_return:.4g}")
        if metric_name is not None:
            stats += f" | {metric_name} " + ("-" if metric_value is None else f"{metric_value:.4g}")
        if extra:
            stats += f" | {extra}"
        self._progress.update(steps, stats=stats)

    def __exit__(self, *exc: Any) -> None:
        self._progress.close()


def short_description(description: str) -> str:
    """``"ppo/sb3 schedgym/MemoryMapping-v0"`` -> ``"ppo/sb3 MemoryMapping-v0"`` (the namespace adds nothing)."""
    return " ".join(word.rsplit("/", 1)[-1] if word.startswith("schedgym") else word for word in description.split())
