"""Issue 15: one test per numbered finding (1-6, 9, 10; items 7 and 8 are in test_trust_env.py).

Each failed on the main of 2026-11-30 and passes now. The hostile-input table
(test_hostile_inputs.py) covers the same ground input by input; these tests show each finding end to end.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import shutil
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from schedgym.benchmark.results import COLUMNS, append_row, read_rows
from schedgym.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "leaderboard" / "results"
AGENTS = REPO / "leaderboard" / "agents"
SECRET = "SECRET_5ee_d4t4"


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(list(argv))
    return rc, out.getvalue() + err.getvalue()


def _committed_rows(task: str = "memory-minimalloc", policy: str = "first_fit") -> tuple[list[str], list[list[str]]]:
    with (RESULTS / task / f"{policy}.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])
    return path


def _edit(header: list[str], row: list[str], **changes: Any) -> list[str]:
    row = list(row)
    for k, v in changes.items():
        row[header.index(k)] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return row


# ------------------------------------------------------------------------------------ item 1
def test_item1_relabelled_row_is_rejected_and_not_ranked(tmp_path: Path) -> None:
    """A memory-torch row relabelled as memory-minimalloc / minimalloc:A no longer validates, and
    `schedgym leaderboard` renders only rows that validate."""
    header, rows = _committed_rows("memory-torch", "first_fit")
    torch_row = next(r for r in rows if r[header.index("instance")] == "torch:transformer")
    forged = _edit(header, torch_row, task="memory-minimalloc", instance="minimalloc:A")
    good = _committed_rows("memory-minimalloc", "first_fit")[1][0]
    results = tmp_path / "results"
    _write_rows(results / "memory-minimalloc" / "first_fit.csv", header, [good])
    _write_rows(results / "memory-minimalloc" / "forger.csv", header, [_edit(header, forged, policy="forger")])
    rc, out = _cli("validate", str(results))
    assert rc == 1
    assert "forger.csv:2: memory-minimalloc / forger / minimalloc:A / seed 0: env_kwargs['instance']: recorded 'torch:transformer', task memory-minimalloc sets 'minimalloc:A'" in out
    assert "1 row(s) replay, 1 row(s) fail" in out
    rc, out = _cli("leaderboard", "--results", str(results), "--out", str(tmp_path / "board"))
    assert rc == 0 and "excluded" in out and "forger" in out
    readme = (tmp_path / "board" / "README.md").read_text()
    assert "first_fit" in readme and "forger" not in readme


# ------------------------------------------------------------------------------------ item 2
def test_item2_untrusted_row_opens_no_path_echoes_nothing_and_is_rejected_fast(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(f"{SECRET},x\n1,2\n")
    header, rows = _committed_rows()
    bad = [
        _edit(header, rows[0], env_kwargs={"instance": f"csv:{secret}"}),
        _edit(header, rows[1], env_kwargs={"instance": "random", "n_buffers": 1e7}),
    ]
    path = _write_rows(tmp_path / "r.csv", header, bad)
    tracemalloc.start()
    t0 = time.perf_counter()
    rc, out = _cli("validate", str(path))
    seconds, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rc == 1 and out.count("FAIL") == 2
    assert SECRET not in out
    assert f"{path}:2:" in out and "env_kwargs['instance']" in out
    assert f"{path}:3:" in out
    assert seconds < 5 and peak < 100 * 2**20


# ------------------------------------------------------------------------------------ item 3
def test_item3_second_bench_on_same_out_fails_fast(tmp_path: Path) -> None:
    from schedgym.benchmark.runner import OutDirLock

    out = tmp_path / "out"
    with OutDirLock(out):
        t0 = time.perf_counter()
        rc, text = _cli("bench", "--task", "memory-minimalloc-quick", "--policy", "first_fit", "--out", str(out),
                        "--workers", "1", "--no-progress")
        assert time.perf_counter() - t0 < 10
    assert rc == 2 and "in use by another `schedgym bench`" in text and "Traceback" not in text
    assert not list(out.rglob("*.csv"))


def test_item3_duplicate_rows_and_empty_files_fail_validation(tmp_path: Path) -> None:
    header, rows = _committed_rows()
    dup = _write_rows(tmp_path / "a" / "dup.csv", header, [rows[0], rows[0]])
    rc, out = _cli("validate", str(dup))
    assert rc == 1 and f"FAIL {dup}:3:" in out and "duplicate" in out and f"first at {dup}:2" in out
    # Across files given together, too.
    other = _write_rows(tmp_path / "a" / "other.csv", header, [rows[0]])
    rc, out = _cli("validate", str(tmp_path / "a"))
    assert rc == 1 and f"FAIL {other}:2:" in out
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(COLUMNS) + "\n")
    for p in (empty, header_only):
        rc, out = _cli("validate", str(p))
        assert rc == 1 and f"FAIL {p}:1:" in out and "no result rows" in out


def _append_many(args: tuple[str, dict[str, Any], int]) -> None:
    path, row, n = args
    for i in range(n):
        append_row(path, {**row, "seed": i, "policy": f"p{row['policy']}"})


def test_item3_concurrent_appends_stay_whole_lines(tmp_path: Path) -> None:
    row = dict(read_rows(RESULTS / "memory-minimalloc" / "first_fit.csv").rows[0])
    row.pop("_line")
    row["actions"] = row["actions"] * 1  # a long field: several KB per line
    row["extra"] = {"pad": "x" * 20_000}
    path = tmp_path / "out.csv"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.map(_append_many, [(str(path), {**row, "policy": str(k)}, 25) for k in range(4)])
    parsed = read_rows(path)
    assert not parsed.bad_lines and len(parsed.rows) == 100
    assert path.read_text().count("\ntask,") == 0  # one header


# ------------------------------------------------------------------------------------ item 4
def _agent_copy(tmp: Path, name: str = "memory_mapping-ppo_sb3") -> Path:
    d = tmp / name
    d.mkdir(parents=True)
    for f in ("schedgym_agent.json", "policy.pt"):
        shutil.copyfile(AGENTS / name / f, d / f)
    return d


def _run_agent(d: Path) -> tuple[int, str]:
    return _cli("run", "--env", "schedgym/MemoryMapping-v0", "--kwargs", '{"instance": "minimalloc:A"}', "--policy", str(d))


def test_item4_checkpoint_is_checked_before_use(tmp_path: Path) -> None:
    d = _agent_copy(tmp_path)
    rc, out = _run_agent(d)
    assert rc == 0, out
    meta = json.loads((d / "schedgym_agent.json").read_text())
    assert meta["policy_sha256"] == hashlib.sha256((d / "policy.pt").read_bytes()).hexdigest()
    # Metadata sizes are not trusted: [1e7, 1e7] is refused before anything is allocated.
    meta["policy_arch"]["hidden_sizes"] = [1e7, 1e7]
    (d / "schedgym_agent.json").write_text(json.dumps(meta))
    tracemalloc.start()
    rc, out = _run_agent(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rc == 2 and "hidden_sizes" in out and "[64, 64]" in out and peak < 200 * 2**20
    # A bit flip is caught by the digest.
    d2 = _agent_copy(tmp_path / "b")
    data = bytearray((d2 / "policy.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (d2 / "policy.pt").write_bytes(bytes(data))
    rc, out = _run_agent(d2)
    assert rc == 2 and "sha256" in out and str(d2 / "policy.pt") in out
    # A JSON list as metadata, and an env id that merely ends with the right one.
    d3 = _agent_copy(tmp_path / "c")
    (d3 / "schedgym_agent.json").write_text("[]")
    rc, out = _run_agent(d3)
    assert rc == 2 and "JSON object" in out
    d4 = _agent_copy(tmp_path / "d")
    meta = json.loads((d4 / "schedgym_agent.json").read_text())
    meta["env_id"] = "evil-schedgym/MemoryMapping-v0"
    (d4 / "schedgym_agent.json").write_text(json.dumps(meta))
    rc, out = _run_agent(d4)
    assert rc == 2 and "was trained on 'evil-schedgym/MemoryMapping-v0'" in out
    for text in (out,):
        assert "Traceback" not in text


def test_item4_checkpoints_record_the_weights_digest(tmp_path: Path) -> None:
    import torch

    from schedgym.training.rundir import RunDir

    run = RunDir(tmp_path / "run")
    tmp = run.begin_checkpoint(10)
    torch.save({"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2)}, tmp / "policy.pt")
    final = run.commit_checkpoint(tmp, 10, {"algo": "ppo", "env_id": "schedgym/MemoryMapping-v0"})
    digest = hashlib.sha256((final / "policy.pt").read_bytes()).hexdigest()
    for meta_file in (final / "schedgym_agent.json", run.meta_file):
        assert json.loads(meta_file.read_text())["policy_sha256"] == digest
    assert hashlib.sha256((run.path / "policy.pt").read_bytes()).hexdigest() == digest


# ------------------------------------------------------------------------------------ item 5
@pytest.mark.parametrize(
    "body, unit, line, reason",
    [
        ("2023-11-16 18:15:46.68,374,44\n9999-11-16 18:15:46.68,374,44\n", "datetime", 3, "spans"),
        ("0,3,4\n1e15,3,4\n", "s", 3, "beyond"),
        ("0,1e30,4\n", "s", 2, "out of range"),
        ("1e300,3,4\n", "s", 2, "beyond"),
        ("0,3,4\n-1e300,3,4\n", "s", 3, "beyond"),
    ],
)
def test_item5_trace_bounds_are_checked_before_allocating(tmp_path: Path, body: str, unit: str, line: int, reason: str) -> None:
    from schedgym.envs.core.traces import TraceFormatError, load_trace_file

    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + body)
    tracemalloc.start()
    with pytest.raises(TraceFormatError, match=rf"{path}:{line}: .*{reason}"):
        load_trace_file(path, time_unit=unit)
    assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    tracemalloc.stop()


def test_item5_huge_json_integer_is_a_format_error(tmp_path: Path) -> None:
    from schedgym.envs.core.traces import TraceFormatError, load_trace_file

    path = tmp_path / "t.jsonl"
    path.write_text('{"TIMESTAMP": 0, "ContextTokens": %s, "GeneratedTokens": 1}\n' % ("9" * 401))
    with pytest.raises(TraceFormatError, match=rf"{path}:1: ContextTokens a 401-digit number is out of range"):
        load_trace_file(path, time_unit="s")


# ------------------------------------------------------------------------------------ item 6
def test_item6_memory_mapping_csv_is_bounded_and_ascii(tmp_path: Path) -> None:
    from schedgym.envs.memory_mapping.instances import InstanceFormatError, load_csv, with_capacity
    from schedgym.evaluation import make_env

    def csv_file(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(text.encode() if isinstance(text, str) else text)
        return p

    cases = {
        "upper.csv": ("id,lower,upper,size\n0,0,9200000000000000000,1\n", ":2: column 'upper'"),
        "size.csv": ("id,lower,upper,size\n0,0,10,12345678901234567890123\n", ":2: column 'size'"),
        "arabic.csv": ("id,lower,upper,size\n0,0,10,\u0663\n", ":2: column 'size': '\u0663' is not an integer"),
        "utf8.csv": (b"id,lower,upper,size\n0,0,10,5\n1,0,\xff,5\n", ":3:5: not valid UTF-8"),
    }
    for name, (text, reason) in cases.items():
        p = csv_file(name, text)
        with pytest.raises(InstanceFormatError) as exc:
            load_csv(p, capacity=1024)
        assert f"{p}{reason}" in str(exc.value)
    d = tmp_path / "d.csv"
    d.mkdir()
    with pytest.raises(InstanceFormatError, match="is a directory"):
        load_csv(d)
    bom = csv_file("bom.1024.csv", "\ufeffid,lower,upper,size\n0,0,10,100\n")
    assert load_csv(bom).capacity == 1024
    with pytest.raises(ValueError, match="capacity must be > 0 and <= 2\\*\\*50"):
        with_capacity(load_csv(bom), 99999999999999999999999999)
    with pytest.raises(ValueError, match="n_buffers"):
        make_env("schedgym/MemoryMapping-v0", {"instance": "random", "n_buffers": 10_000_000})
    # A buffer as long as int64 allows would have overflowed size x lifetime: now a file:line error.
    big = csv_file("area.csv", "id,lower,upper,size\n0,0,1000000000000000,1000000000000000\n")
    with pytest.raises(InstanceFormatError, match=rf"{big}:2: the total size x lifetime"):
        load_csv(big, capacity=2**50)


# ------------------------------------------------------------------------------------ item 9
def test_item9_unreachable_ray_address_fails_fast_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from schedgym.raynet import RayConnectError, connect_ray

    monkeypatch.setenv("SCHEDGYM_RAY_CONNECT_TIMEOUT_S", "3")
    t0 = time.perf_counter()
    with pytest.raises(RayConnectError, match="cannot reach a Ray cluster at 127.0.0.1:1"):
        connect_ray("127.0.0.1:1")
    assert time.perf_counter() - t0 < 10
    # The CLI path (`bench --address 127.0.0.1:1` -> exit 2, one line) is in test_hostile_inputs.py, which
    # runs in a process where Ray has not been started by another test.
    with pytest.raises(ValueError, match="--address"):
        connect_ray("no-port-here")


# ------------------------------------------------------------------------------------ item 10
def test_item10_expected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "r.csv"
    bad.write_bytes(",".join(COLUMNS).encode() + b"\n\xff\n")
    rc, out = _cli("validate", str(bad))
    assert rc == 2 and out.strip().count("\n") == 0 and f"{bad}:2" in out and "Traceback" not in out
    with pytest.raises(ValueError):
        _cli("--debug", "validate", str(bad))
    with pytest.raises(ValueError):
        _cli("validate", str(bad), "--debug")
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,x,1\n")
    from schedgym.envs import ENV_ENTRIES

    agents_id = next(e.id for e in ENV_ENTRIES if e.family == "AgentScheduling")
    rc, out = _cli("run", "--env", agents_id, "--kwargs",
                   json.dumps({"workload": f"trace:{trace}", "trace_time_unit": "s"}), "--policy", "fifo")
    assert rc == 2 and f"{trace}:2" in out and out.strip().count("\n") == 0
    rc, out = _cli("run", "--env", "schedgym/MemoryMapping-v0", "--policy", str(tmp_path))
    assert rc == 2 and "schedgym_agent.json is missing" in out
