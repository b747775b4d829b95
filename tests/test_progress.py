"""Progress that is readable without a terminal: plain periodic lines with step, rate, ETA and the metric."""

from __future__ import annotations

import io
import re
import time

import pytest

from schedgym.progress import Progress, format_duration, progress_mode
from schedgym.training.progress import TrainProgress, short_description


class _Pipe(io.StringIO):
    """A non-terminal stream (like stdout sent to a file)."""

    def isatty(self) -> bool:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDGYM_PROGRESS", raising=False)
    assert progress_mode(True, _Pipe()) == "plain"
    assert progress_mode(True, _Terminal()) == "rich"
    assert progress_mode(False, _Terminal()) == "off"
    monkeypatch.setenv("SCHEDGYM_PROGRESS", "plain")
    assert progress_mode(True, _Terminal()) == "plain"
    monkeypatch.setenv("SCHEDGYM_PROGRESS", "loud")
    with pytest.raises(ValueError, match="SCHEDGYM_PROGRESS"):
        progress_mode(True, _Pipe())


def test_plain_lines_keep_coming_while_the_caller_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat writes lines even when no update arrives (a long training iteration)."""
    monkeypatch.delenv("SCHEDGYM_PROGRESS", raising=False)
    out = _Pipe()
    with TrainProgress(1000, 0, description="ppo/sb3 schedgym/MemoryMapping-v0", stream=out, interval_s=0.1) as bar:
        bar.update(250, 0.7, "benefit_placed_frac", 0.93)
        time.sleep(0.55)  # the caller is busy; no update
    lines = out.getvalue().splitlines()
    assert len(lines) >= 5  # start + >= 4 heartbeats + final
    last = lines[-2]
    assert last.startswith("[ppo/sb3 MemoryMapping-v0] 250/1,000 steps (25.0%)")
    assert re.search(r"\| [\d.,]+ steps/s \|", last)
    assert "elapsed 0:00:0" in last and "ETA 0:00:0" in last
    assert "return 0.7 | benefit_placed_frac 0.93" in last
    assert lines[-1].endswith("| done")
    assert all(len(line) < 160 for line in lines)


def test_disabled_prints_nothing() -> None:
    out = _Pipe()
    with Progress(10, "x", enabled=False, stream=out, interval_s=0.05) as p:
        p.update(5)
        time.sleep(0.12)
    assert out.getvalue() == ""


def test_rich_bar_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns the count and the times survive; the stats are what gets cut."""
    monkeypatch.delenv("SCHEDGYM_PROGRESS", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    out = _Terminal()
    with Progress(50_000, short_description("ppo/rllib schedgym/MemoryMapping-v0"), stream=out) as p:
        p.update(12_345, stats="return 0.7024 | benefit_placed_frac 0.93")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "12345/50000" in text and "ETA" in text and "ppo/rllib MemoryMap" in text and "retur" in text


def test_resumed_rate_counts_only_new_steps() -> None:
    p = Progress(100, "x", start=50, enabled=False)
    p._t0 -= 10.0  # ten seconds into the run
    p.update(60)
    assert p.rate() == pytest.approx(1.0, rel=0.05)
    assert p.eta_s() == pytest.approx(40.0, rel=0.05)
    assert format_duration(p.eta_s()).startswith("0:00:")
    assert format_duration(float("nan")) == "-:--:--"
