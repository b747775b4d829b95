"""Progress for long work (training, benchmarks, sweeps) that reads well on a terminal and in a log file.

On a terminal it is a compact rich bar laid out for 80 columns: what, bar, done/total, rate, elapsed,
ETA, then the stats (which rich truncates first when the line is too narrow). When the stream is not a
terminal (output sent to a file, CI, ``nohup``), a bar is useless, so it writes one plain line every
``interval_s`` seconds from a heartbeat thread, also while a long training iteration blocks the caller::

    [ppo/sb3 MemoryMapping-v0] 12,288/50,000 steps (24.6%) | 412 steps/s | elapsed 0:00:30 | ETA 0:01:31 | return 0.70

plus a first line at the start and a last one at the end. ``SCHEDGYM_PROGRESS=plain|rich|off`` overrides
the choice (plain in a terminal is handy with ``tee``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["Progress", "format_duration", "progress_mode"]

#: Seconds between plain progress lines when the output is not a terminal.
DEFAULT_PLAIN_INTERVAL_S = 5.0
_MODES = ("rich", "plain", "off")


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``-:--:--`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_mode(enabled: bool = True, stream: TextIO | None = None) -> str:
    """``"off"``, ``"rich"`` (a terminal) or ``"plain"`` (anything else); ``$SCHEDGYM_PROGRESS`` overrides."""
    if not enabled:
        return "off"
    forced = os.environ.get("SCHEDGYM_PROGRESS", "").strip().lower()
    if forced:
        if forced not in _MODES:
            raise ValueError(f"SCHEDGYM_PROGRESS must be one of {', '.join(_MODES)}, got {forced!r}")
        return forced
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "rich" if callable(isatty) and isatty() else "plain"


class Progress:
    """``with Progress(total, "what") as p: p.update(done, stats="return 0.7")``.

    Args:
        total: units of work in all (env steps, episodes); ``None`` when unknown (no ETA).
        description: what is running, shown first (keep it short: the family, not the whole env id).
        start: units already done before this run (a resumed training run); the rate counts only new ones.
        unit: the unit's name in plain lines ("steps", "episodes").
        enabled: ``False`` prints nothing (``--no-progress``).
        stream: where to write (default ``sys.stderr``); its ``isatty()`` picks rich or plain.
        interval_s: seconds between plain lines.
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        *,
        start: int = 0,
        unit: str = "steps",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval_s: float = DEFAULT_PLAIN_INTERVAL_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.total = None if total is None else int(total)
        self.description = description
        self.start = int(start)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = float(interval_s)
        self.mode = progress_mode(enabled, self.stream)
        self.done = self.start
        self.stats = ""
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rich: Any = None
        self._task: Any = None

    # ------------------------------------------------------------------ context
    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            from rich.table import Column

            def fixed(**kw: Any) -> Column:
                return Column(no_wrap=True, **kw)

            # The stats get what the fixed columns leave of the console's width, cut with an ellipsis,
            # so at 80 columns the count, rate and times stay whole (rich would otherwise squeeze them all).
            console = Console(file=self.stream)
            count_width = 2 * len(str(self.total if self.total is not None else 10**7)) + 1
            fixed_width = 20 + 10 + count_width + 8 + 7 + 3 + 7 + 7  # columns + one space between each
            stats_width = max(console.width - fixed_width - 1, 0)
            self._rich = RichProgress(
                TextColumn("[bold]{task.description}", table_column=fixed(max_width=20, overflow="ellipsis")),
                BarColumn(bar_width=10, table_column=fixed()),
                MofNCompleteColumn(table_column=fixed()),
                TextColumn("{task.fields[rate]}", table_column=fixed(width=8)),
                TimeElapsedColumn(table_column=fixed()),
                TextColumn("ETA", table_column=fixed()),
                TimeRemainingColumn(table_column=fixed()),
                TextColumn("{task.fields[stats]}", table_column=fixed(max_width=stats_width, overflow="ellipsis")),
                console=console,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.description, total=self.total, completed=self.start, rate="", stats="")
        elif self.mode == "plain":
            self._write_line()
            self._thread = threading.Thread(target=self._heartbeat, name="schedgym-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2)
            self._thread = None
            self._write_line(final=True)

    # ------------------------------------------------------------------ updates
    def update(self, done: int | None = None, *, advance: int = 0, stats: str | None = None,
               description: str | None = None) -> None:
        """Set (``done``) or advance the count of finished units; replace the stats text or description."""
        with self._lock:
            if done is not None:
                self.done = int(done)
            self.done += int(advance)
            if stats is not None:
                self.stats = stats
            if description is not None:
                self.description = description
        if self._rich is not None:
            completed = self.done if self.total is None else min(self.done, self.total)
            self._rich.update(self._task, completed=completed, rate=self._compact_rate_text(), stats=self.stats,
                              description=self.description)

    def rate(self) -> float:
        """Units per second since this run started (units done before ``start`` excluded)."""
        elapsed = time.monotonic() - self._t0
        return (self.done - self.start) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float:
        rate = self.rate()
        if self.total is None or rate <= 0:
            return math.nan
        return max(self.total - self.done, 0) / rate

    def line(self) -> str:
        """The plain progress line for the current state."""
        with self._lock:
            done, stats, description = self.done, self.stats, self.description
        if self.total is not None and self.total > 0:
            count = f"{done:,}/{self.total:,} {self.unit} ({100.0 * done / self.total:.1f}%)"
        else:
            count = f"{done:,} {self.unit}"
        parts = [f"[{description}] {count}", self._rate_text(),
                 f"elapsed {format_duration(time.monotonic() - self._t0)}", f"ETA {format_duration(self.eta_s())}"]
        if stats:
            parts.append(stats)
        return " | ".join(parts)

    # ------------------------------------------------------------------ internals
    def _rate_text(self) -> str:
        rate = self.rate()
        return f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2f} {self.unit}/s"

    def _compact_rate_text(self) -> str:
        rate = self.rate()
        for scale, suffix in ((1e6, "M"), (1e3, "k")):
            if rate >= scale:
                return f"{rate / scale:.1f}{suffix}/s"
        return f"{rate:.1f}/s"

    def _write_line(self, final: bool = False) -> None:
        text = self.line() + (" | done" if final else "")
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # the stream was closed under us (interpreter shutdown)
            pass

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write_line()
