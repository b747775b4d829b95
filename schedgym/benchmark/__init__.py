"""The schedgym benchmark: frozen tasks, a Ray-parallel runner, replayable results, validation, rendering.

- :mod:`schedgym.benchmark.tasks`: the versioned tasks of the ``quick`` and ``full`` tiers.
- :mod:`schedgym.benchmark.runner`: ``schedgym bench`` (episodes as Ray tasks, resumable).
- :mod:`schedgym.benchmark.results`: the results CSV format and the compact ``actions`` encoding.
- :mod:`schedgym.benchmark.validate`: ``schedgym validate`` (replay every row in a fresh env).
- :mod:`schedgym.benchmark.render`: ``schedgym leaderboard`` (README.md + self-contained index.html).
"""

from schedgym.benchmark.tasks import (
    TASKS,
    TIERS,
    Task,
    TaskInstance,
    get_task,
    tasks_for_tier,
)

__all__ = ["TASKS", "TIERS", "Task", "TaskInstance", "get_task", "tasks_for_tier"]
