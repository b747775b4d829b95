"""Live training feedback: a rich progress bar and the env's main metric (one table for all families)."""

from __future__ import annotations

from typing import Any

__all__ = ["MAIN_METRICS", "main_metric_name", "TrainProgress"]

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

    With ``enabled=False`` (``--no-progress``) it prints nothing.
    """

    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True, description: str = "train") -> None:
        self.total_steps = int(total_steps)
        self.start_step = int(start_step)
        self.enabled = enabled
        self.description = description
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[stats]}"),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=self.total_steps, completed=self.start_step, stats=""
            )
        return self

    def update(
        self, steps: int, mean_return: float | None, metric_name: str | None = None, metric_value: float | None = None
    ) -> None:
        if self._progress is None:
            return
        stats = "return " + ("-" if mean_return is None else f"{mean_return:.4g}")
        if metric_name is not None:
            stats += f"  {metric_name} " + ("-" if metric_value is None else f"{metric_value:.4g}")
        self._progress.update(self._task, completed=min(steps, self.total_steps), stats=stats)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
