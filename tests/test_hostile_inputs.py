"""Issue 15: a table of malformed and hostile inputs, each handled as an expected error.

Every case feeds one bad input (env kwargs, a MemoryMapping CSV, a request trace, a results row or
file, a checkpoint, a state snapshot, an action, a Ray address) to the public entry point a user would
use (mostly the ``schedgym`` CLI's ``main``), and asserts:

- the outcome is the expected one: exit status 2 with one line naming the parameter or ``file:line``
  (``validate``: a ``FAIL file:line`` row and exit 1), or a ``ValueError`` naming it, or (actions) the
  default action with ``info["invalid_action"] = True``;
- no traceback is printed and no exception escapes;
- no file content is echoed: every hostile file holds the marker ``SECRET_MARKER``, which must never
  appear in the output;
- memory stays bounded: the table runs in one child process (so the measurement is not the pytest
  process's) that records tracemalloc's peak per case and its own peak RSS, both under 1 GB.

Run it with ``pytest tests/test_hostile_inputs.py`` (about a minute); the child is
``python tests/test_hostile_inputs.py OUT.json``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SECRET_MARKER = "SECRET_c0ffee_7f3a"
GB = 1024**3
MM = "schedgym/MemoryMapping-v0"
AGENTS = REPO / "leaderboard" / "agents"
RESULTS = REPO / "leaderboard" / "results"


# ---------------------------------------------------------------------------------------- helpers
def cli(*argv: str) -> dict[str, Any]:
    """Run ``schedgym ARGV`` in this process; capture its output and exit status."""
    from schedgym.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc: Any = main(list(argv))
        except SystemExit as exc:  # argparse errors
            rc = exc.code
    return {"rc": rc, "out": out.getvalue() + err.getvalue()}


def value_error(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        fn()
    except ValueError as exc:
        return {"rc": "ValueError", "out": str(exc)}
    return {"rc": "no error", "out": ""}


def run_kwargs(env_id: str, kwargs: Any, policy: str = "first_fit") -> dict[str, Any]:
    return cli("run", "--env", env_id, "--kwargs", kwargs if isinstance(kwargs, str) else json.dumps(kwargs),
               "--policy", policy, "--json")


def write(tmp: Path, name: str, data: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def csv_case(body: str | bytes, name: str = "inst.csv", **kwargs: Any) -> Callable[[Path], dict[str, Any]]:
    def run(tmp: Path) -> dict[str, Any]:
        path = write(tmp, name, body)
        out = run_kwargs(MM, {"instance": f"csv:{path}", **({"capacity": 1 << 20} if name == "inst.csv" else {}), **kwargs})
        out["path"] = str(path)
        return out

    return run


TRACE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _family_id(family: str) -> str:
    """The registered id of a family, whatever its version (envs are re-versioned as dynamics change)."""
    from schedgym.envs import ENV_ENTRIES

    return next(e.id for e in ENV_ENTRIES if e.family == family)


def trace_case(body: str | bytes, name: str = "trace.csv", unit: str = "s", via_cli: bool = False) -> Callable[[Path], dict[str, Any]]:
    """A trace file given to the loader every trace-driven env shares (``workload="trace:<path>"``);
    ``via_cli``: as the workload of ``schedgym run`` on AgentScheduling."""

    def run(tmp: Path) -> dict[str, Any]:
        from schedgym.envs.core.traces import load_workload_trace

        path = write(tmp, name, body)
        if via_cli:
            out = run_kwargs(_family_id("AgentScheduling"),
                             {"workload": f"trace:{path}", "trace_time_unit": unit, "n_agents": 4}, policy="fifo")
        else:
            out = value_error(lambda: load_workload_trace(f"trace:{path}", None, unit))
        out["path"] = str(path)
        return out

    return run


def _results_row(**changes: Any) -> list[str]:
    import csv

    with (RESULTS / "memory-minimalloc" / "first_fit.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, row = rows[0], list(rows[1])
    for key, value in changes.items():
        row[header.index(key)] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return [header, row]


def results_case(*rows_or_text: Any, raw: bytes | None = None, expect_exit: int = 1) -> Callable[[Path], dict[str, Any]]:
    def run(tmp: Path) -> dict[str, Any]:
        import csv

        if raw is not None:
            path = write(tmp, "results.csv", raw)
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            header_done = False
            for rows in rows_or_text:
                for r in rows[0 if not header_done else 1 :]:
                    w.writerow(r)
                header_done = True
            path = write(tmp, "results.csv", buf.getvalue())
        out = cli("validate", str(path))
        out["path"] = str(path)
        return out

    return run


def copy_agent(tmp: Path, name: str) -> Path:
    dst = tmp / name
    dst.mkdir()
    for f in ("schedgym_agent.json", "policy.pt"):
        shutil.copyfile(AGENTS / name / f, dst / f)
    return dst


def agent_case(name: str, mutate: Callable[[Path], None]) -> Callable[[Path], dict[str, Any]]:
    def run(tmp: Path) -> dict[str, Any]:
        d = copy_agent(tmp, name)
        mutate(d)
        out = run_kwargs(MM, {"instance": "minimalloc:A"}, policy=str(d))
        out["path"] = str(d)
        return out

    return run


def edit_meta(**changes: Any) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        meta = json.loads((d / "schedgym_agent.json").read_text())
        for dotted, value in changes.items():
            node = meta
            keys = dotted.split("__")
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = value
        (d / "schedgym_agent.json").write_text(json.dumps(meta))

    return mutate


def rewrite_weights(data: Callable[[bytes], bytes], fix_sha: bool) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        import hashlib

        new = data((d / "policy.pt").read_bytes())
        (d / "policy.pt").write_bytes(new)
        if fix_sha:
            meta = json.loads((d / "schedgym_agent.json").read_text())
            meta["policy_sha256"] = hashlib.sha256(new).hexdigest()
            (d / "schedgym_agent.json").write_text(json.dumps(meta))

    return mutate


def _flip_bit(b: bytes) -> bytes:
    i = len(b) // 2
    return b[:i] + bytes([b[i] ^ 0x10]) + b[i + 1 :]


def _pickle_with_code(_: bytes) -> bytes:
    import pickle

    class Evil:
        def __reduce__(self):  # noqa: D401  (runs os.system when unpickled without weights_only)
            return (os.system, (f"echo {SECRET_MARKER} > /tmp/hostile_pwned",))

    buf = io.BytesIO()
    import torch

    torch.save({"0.weight": Evil()}, buf)
    return buf.getvalue()


def _mm_env(instance: str = "minimalloc:A", **kw: Any) -> Any:
    from schedgym.evaluation import make_env

    env = make_env(MM, {"instance": instance, **kw}).unwrapped
    env.reset(seed=0)
    return env


def state_case(mutate: Callable[[dict[str, Any]], Any], target: Callable[[], Any] | None = None) -> Callable[[Path], dict[str, Any]]:
    def run(tmp: Path) -> dict[str, Any]:
        src = _mm_env()
        snap = mutate(src.get_state())
        env = target() if target is not None else src
        return value_error(lambda: env.set_state(snap))

    return run


def action_case(action: Any) -> Callable[[Path], dict[str, Any]]:
    def run(tmp: Path) -> dict[str, Any]:
        env = _mm_env(invalid_action_penalty=1.0)
        *_, info = env.step(action() if callable(action) else action)
        return {"rc": "invalid_action" if info["invalid_action"] else "valid", "out": f"executed {info['action']}"}

    return run


def _zip_bomb_actions() -> str:
    import numpy as np

    pairs = np.tile(np.array([[0, 2**31 - 1]], dtype="<i4"), (4096, 1))
    return "rle1:" + base64.urlsafe_b64encode(zlib.compress(pairs.tobytes(), 9)).decode()


def _other_state(s: dict[str, Any]) -> dict[str, Any]:
    return s


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def f(s: dict[str, Any]) -> dict[str, Any]:
        s[key] = value
        return s

    return f


def _sim_attr(attr: str, fn: Callable[[Any], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def f(s: dict[str, Any]) -> dict[str, Any]:
        setattr(s["sim"], attr, fn(getattr(s["sim"], attr)))
        return s

    return f


def _secret_csv() -> str:
    return f"user,password\nroot,{SECRET_MARKER}\n"


# ---------------------------------------------------------------------------------------- the table
# (id, run(tmp) -> {"rc", "out", ["path"]}, expected rc, regex the output must match: it names the
#  parameter or the file:line; "{path}" is replaced by the case's file or directory)
EXIT2, FAIL, VERR, INVALID = 2, 1, "ValueError", "invalid_action"
LINE = r"{path}:\d+"


def _cases() -> list[tuple[str, Callable[[Path], dict[str, Any]], Any, str]]:
    big = "9" * 401
    c: list[tuple[str, Callable[[Path], dict[str, Any]], Any, str]] = [
        # --- env kwargs (schedgym run --kwargs)
        ("kw-n_buffers-1e7-float", lambda t: run_kwargs(MM, '{"instance": "random", "n_buffers": 1e7}'), EXIT2, "n_buffers"),
        ("kw-n_buffers-10M", lambda t: run_kwargs(MM, {"instance": "random", "n_buffers": 10_000_000}), EXIT2, "n_buffers"),
        ("kw-n_buffers-planted-20k", lambda t: run_kwargs(MM, {"instance": "random", "n_buffers": 20_000, "planted": True}), EXIT2, "n_buffers"),
        ("kw-n_buffers-bool", lambda t: run_kwargs(MM, {"instance": "random", "n_buffers": True}), EXIT2, "n_buffers"),
        ("kw-capacity-26-digits", lambda t: run_kwargs(MM, '{"instance": "minimalloc:A", "capacity": 99999999999999999999999999}'), EXIT2, "capacity"),
        ("kw-capacity-negative", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "capacity": -5}), EXIT2, "capacity"),
        ("kw-capacity-string", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "capacity": "big"}), EXIT2, "capacity"),
        ("kw-capacity-1e300", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "capacity": 1e300}), EXIT2, "capacity"),
        ("kw-K-zero", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "K": 0}), EXIT2, r"\bK\b"),
        ("kw-K-1e9", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "K": 10**9}), EXIT2, r"\bK\b"),
        ("kw-instance-int", lambda t: run_kwargs(MM, {"instance": 5}), EXIT2, "instance"),
        ("kw-penalty-negative", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "invalid_action_penalty": -1}), EXIT2, "invalid_action_penalty"),
        ("kw-penalty-nan", lambda t: run_kwargs(MM, '{"instance": "minimalloc:A", "invalid_action_penalty": NaN}'), EXIT2, "invalid_action_penalty"),
        ("kw-unknown", lambda t: run_kwargs(MM, {"instance": "minimalloc:A", "bogus_kwarg": 1}), EXIT2, "bogus_kwarg"),
        ("kw-max_lifetime-0", lambda t: run_kwargs(MM, {"instance": "random", "max_lifetime": 0}), EXIT2, "max_lifetime"),
        ("kw-not-json", lambda t: run_kwargs(MM, "{instance: A"), EXIT2, "--kwargs"),
        ("kw-json-list", lambda t: run_kwargs(MM, "[1, 2]"), EXIT2, "--kwargs"),
        ("kw-evil-env-id", lambda t: run_kwargs("evil-schedgym/MemoryMapping-v0", {}), EXIT2, "env id"),
        ("kw-csv-missing-file", lambda t: run_kwargs(MM, {"instance": f"csv:{t}/nope.csv"}), EXIT2, "not found"),
        ("kw-trace_time_unit", lambda t: run_kwargs(_family_id("AgentScheduling"), {"workload": "trace:/nonexistent/t.csv", "trace_time_unit": "hours", "n_agents": 4}, "fifo"), EXIT2, "trace_time_unit"),
        ("kw-rate_scale-1e9", lambda t: run_kwargs(_family_id("AgentScheduling"), {"workload": "azure-code", "rate_scale": 1e9, "n_agents": 4}, "fifo"), EXIT2, "rate_scale"),
        ("kw-episodes-0", lambda t: cli("run", "--env", MM, "--kwargs", '{"instance": "minimalloc:A"}', "--policy", "first_fit", "--episodes", "0"), EXIT2, "--episodes"),
        # --- MemoryMapping CSV instances
        ("csv-upper-9.2e18", csv_case("id,lower,upper,size\n0,0,9200000000000000000,1\n"), EXIT2, LINE + ".*upper"),
        ("csv-size-23-digits", csv_case("id,lower,upper,size\n0,0,10,12345678901234567890123\n"), EXIT2, LINE + ".*size"),
        ("csv-capacity-23-digits-in-name", csv_case("id,lower,upper,size\n0,0,10,5\n", name="x.12345678901234567890123.csv"), EXIT2, "{path}: the capacity"),
        ("csv-arabic-indic-digits", csv_case("id,lower,upper,size\n0,0,10,\u0663\u0664\n"), EXIT2, LINE + ".*size"),
        ("csv-fullwidth-digits", csv_case("id,lower,upper,size\n0,0,\uff11\uff10,5\n"), EXIT2, LINE + ".*upper"),
        ("csv-underscore-digits", csv_case("id,lower,upper,size\n0,0,10,1_000\n"), EXIT2, LINE + ".*size"),
        ("csv-hex", csv_case("id,lower,upper,size\n0,0,10,0x10\n"), EXIT2, LINE + ".*size"),
        ("csv-invalid-utf8", csv_case(b"id,lower,upper,size\n0,0,10,5\n1,0,\xff\xfe,5\n"), EXIT2, r"{path}:3\b.*UTF-8"),
        ("csv-empty", csv_case(""), EXIT2, r"{path}:1\b"),
        ("csv-header-only", csv_case("id,lower,upper,size\n"), EXIT2, r"{path}:1\b"),
        ("csv-secret-not-a-csv", csv_case(_secret_csv()), EXIT2, r"{path}:1\b.*header"),
        ("csv-size-zero", csv_case("id,lower,upper,size\n0,0,10,0\n"), EXIT2, LINE + ".*size"),
        ("csv-lower-negative", csv_case("id,lower,upper,size\n0,-1,10,5\n"), EXIT2, LINE + ".*lower"),
        ("csv-upper-before-lower", csv_case("id,lower,upper,size\n0,10,5,5\n"), EXIT2, LINE + ".*upper"),
        ("csv-duplicate-id", csv_case("id,lower,upper,size\n0,0,10,5\n0,1,4,3\n"), EXIT2, r"{path}:3\b.*duplicate"),
        ("csv-field-count", csv_case("id,lower,upper,size\n0,0,10\n"), EXIT2, LINE + ".*fields"),
        ("csv-benefit-nan", csv_case("id,lower,upper,size,benefit\n0,0,10,5,nan\n"), EXIT2, LINE + ".*benefit"),
        ("csv-benefit-1e400", csv_case("id,lower,upper,size,benefit\n0,0,10,5,1e400\n"), EXIT2, LINE + ".*benefit"),
        ("csv-alignment-0", csv_case("id,lower,upper,size,alignment\n0,0,10,5,0\n"), EXIT2, LINE + ".*alignment"),
        ("csv-area-overflow", csv_case("id,lower,upper,size\n0,0,1000000000000000,1000000000000000\n"), EXIT2, LINE + ".*size x lifetime"),
        ("csv-bom-and-secret-row", csv_case(f"\ufeffid,lower,upper,size\n0,0,10,{SECRET_MARKER}\n"), EXIT2, LINE + ".*size"),
        ("csv-directory", lambda t: (lambda d: {**run_kwargs(MM, {"instance": f"csv:{d}"}), "path": str(d)})(
            (t / "dir.csv").mkdir() or t / "dir.csv"), EXIT2, "{path} is a directory"),
        # --- request traces
        ("trace-year-9999", trace_case(TRACE_HEADER + "2023-11-16 18:15:46.68,374,44\n9999-11-16 18:15:46.68,374,44\n", unit="datetime"), VERR, r"{path}:3\b.*spans"),
        ("trace-year-9999-cli", trace_case(TRACE_HEADER + "2023-11-16 18:15:46.68,374,44\n9999-11-16 18:15:46.68,374,44\n", unit="datetime", via_cli=True), EXIT2, r"{path}:3\b.*spans"),
        ("trace-secret-header-cli", trace_case(_secret_csv(), via_cli=True), EXIT2, r"{path}:1\b.*lacks column"),
        ("trace-year-9999-gpu-cli", lambda t: (lambda p: {**run_kwargs(_family_id("GPUAutoscaling"), {"workload": f"trace:{p}"}, "hpa"), "path": str(p)})(
            write(t, "g.csv", TRACE_HEADER + "2023-11-16 18:15:46.68,374,44\n9999-11-16 18:15:46.68,374,44\n")), EXIT2, r"{path}:3\b.*spans"),
        ("kw-gpu-rate_scale-1e9", lambda t: run_kwargs(_family_id("GPUAutoscaling"), {"workload": "azure-code", "rate_scale": 1e9}, "hpa"), EXIT2, "rate_scale"),
        ("trace-time-1e15-s", trace_case(TRACE_HEADER + "0,3,4\n1e15,3,4\n"), VERR, r"{path}:3\b"),
        ("trace-time-1e300", trace_case(TRACE_HEADER + "1e300,3,4\n"), VERR, LINE + ".*time"),
        ("trace-time-minus-1e300", trace_case(TRACE_HEADER + "0,3,4\n-1e300,3,4\n"), VERR, r"{path}:3\b.*time"),
        ("trace-time-inf", trace_case(TRACE_HEADER + "inf,3,4\n"), VERR, LINE + ".*time"),
        ("trace-time-nan", trace_case(TRACE_HEADER + "nan,3,4\n"), VERR, LINE + ".*time"),
        ("trace-tokens-1e30", trace_case(TRACE_HEADER + "0,1e30,4\n"), VERR, LINE + ".*ContextTokens"),
        ("trace-tokens-401-digit-json", trace_case('{"TIMESTAMP": 0, "ContextTokens": %s, "GeneratedTokens": 1}\n' % big, name="t.jsonl"), VERR, LINE + ".*ContextTokens"),
        ("trace-tokens-negative", trace_case(TRACE_HEADER + "0,-3,4\n"), VERR, LINE + ".*ContextTokens"),
        ("trace-tokens-fraction", trace_case(TRACE_HEADER + "0,3.5,4\n"), VERR, LINE + ".*ContextTokens"),
        ("trace-tokens-arabic-digits", trace_case(TRACE_HEADER + "0,\u0663,4\n"), VERR, LINE + ".*ContextTokens"),
        ("trace-tokens-json-bool", trace_case('{"TIMESTAMP": 0, "ContextTokens": true, "GeneratedTokens": 1}\n', name="t.jsonl"), VERR, LINE + ".*ContextTokens"),
        ("trace-json-list-line", trace_case("[1, 2, 3]\n", name="t.jsonl"), VERR, LINE + ".*JSON object"),
        ("trace-invalid-json", trace_case('{"TIMESTAMP": 0,\n', name="t.jsonl"), VERR, LINE + ".*JSON"),
        ("trace-json-nested-deep", trace_case("[" * 100_000 + "]" * 100_000 + "\n", name="t.jsonl"), VERR, LINE),
        ("trace-invalid-utf8", trace_case(TRACE_HEADER.encode() + b"0,3,4\n1,\xff,4\n"), VERR, r"{path}:3\b.*UTF-8"),
        ("trace-secret-header", trace_case(_secret_csv()), VERR, r"{path}:1\b.*lacks column"),
        ("trace-empty", trace_case(TRACE_HEADER), VERR, r"{path}:1\b.*no requests"),
        ("trace-directory", lambda t: (lambda d: {**run_kwargs(_family_id("AgentScheduling"), {"workload": f"trace:{d}", "n_agents": 4}, "fifo"), "path": str(d)})(
            (t / "dir.csv").mkdir() or t / "dir.csv"), EXIT2, "{path} is a directory"),
        ("trace-datetime-arabic", trace_case(TRACE_HEADER + "\u0662023-11-16 18:15:46,3,4\n", unit="datetime"), VERR, LINE + ".*time"),
        ("trace-bom-secret-token", trace_case("\ufeff" + TRACE_HEADER + f"0,{SECRET_MARKER},4\n"), VERR, LINE + ".*ContextTokens"),
        # --- results rows and files (schedgym validate)
        ("results-relabelled-task", results_case(_results_row(task="memory-torch", instance="torch:transformer")), FAIL, r"FAIL {path}:2: .*env_kwargs\['instance'\]"),
        ("results-relabelled-instance", results_case(_results_row(instance="minimalloc:B")), FAIL, r"FAIL {path}:2: .*env_kwargs\['instance'\]"),
        ("results-csv-path-kwarg", lambda t: results_case(_results_row(env_kwargs={"instance": f"csv:{write(t, 'secret.csv', _secret_csv())}"}))(t), FAIL, r"FAIL {path}:2: .*env_kwargs"),
        ("results-n_buffers-1e7", results_case(_results_row(env_kwargs={"instance": "random", "n_buffers": 1e7})), FAIL, r"FAIL {path}:2: .*env_kwargs"),
        ("results-extra-kwarg", results_case(_results_row(env_kwargs={"instance": "minimalloc:A", "action_mode": "place", "capacity": 1})), FAIL, r"FAIL {path}:2: .*capacity"),
        ("results-duplicate-rows", results_case(_results_row(), _results_row()), FAIL, r"FAIL {path}:3: .*duplicate"),
        ("results-empty-file", results_case(raw=b""), FAIL, r"FAIL {path}:1: .*no result rows"),
        ("results-header-only", results_case(raw=",".join(_results_row()[0]).encode() + b"\n"), FAIL, r"FAIL {path}:1: .*no result rows"),
        ("results-evil-env-id", results_case(_results_row(env_id="evil-schedgym/MemoryMapping-v0")), FAIL, r"FAIL {path}:2: .*env_id"),
        ("results-seed-not-in-task", results_case(_results_row(seed="7")), FAIL, r"FAIL {path}:2: .*seed"),
        ("results-task-version", results_case(_results_row(task_version="99")), FAIL, r"FAIL {path}:2: .*version"),
        ("results-unknown-task", results_case(_results_row(task="no-such-task")), FAIL, r"FAIL {path}:2: .*task"),
        ("results-actions-zip-bomb", results_case(_results_row(actions=_zip_bomb_actions())), FAIL, r"FAIL {path}:2: .*actions"),
        ("results-seed-arabic-digit", results_case(_results_row(seed="\u0660")), FAIL, r"FAIL {path}:2: .*seed"),
        ("results-kwargs-nested-deep", results_case(_results_row(env_kwargs="[" * 50_000 + "]" * 50_000)), FAIL, r"FAIL {path}:2: .*env_kwargs"),
        ("results-kwargs-list", results_case(_results_row(env_kwargs="[1]")), FAIL, r"FAIL {path}:2: .*env_kwargs"),
        ("results-metric-underscore", results_case(_results_row(metric="1_0")), FAIL, r"FAIL {path}:2: .*metric"),
        ("results-policy-kwargs", results_case(_results_row(policy="cpsat_oracle", policy_kwargs={"time_limit_s": 1e9})), FAIL, r"FAIL {path}:2: .*policy_kwargs"),
        ("results-invalid-utf8", results_case(raw=",".join(_results_row()[0]).encode() + b"\n\xff\xfe\n"), EXIT2, r"{path}:2\b.*UTF-8"),
        ("results-bad-header", results_case(raw=f"task,{SECRET_MARKER}\n".encode()), EXIT2, r"{path}:1\b.*header"),
        ("results-directory", lambda t: (lambda d: {**cli("validate", str(d)), "path": str(d / "x.csv")})(
            ((t / "r" / "x.csv").mkdir(parents=True) or t / "r")), EXIT2, "{path} is a directory"),
        # --- checkpoints (schedgym run --policy DIR)
        ("ckpt-hidden-sizes-1e7", agent_case("memory_mapping-ppo_sb3", edit_meta(policy_arch__hidden_sizes=[1e7, 1e7])), EXIT2, r"schedgym_agent.json.*hidden_sizes"),
        ("ckpt-bit-flip", agent_case("memory_mapping-ppo_sb3", rewrite_weights(_flip_bit, fix_sha=False)), EXIT2, r"{path}/policy.pt.*sha256"),
        ("ckpt-truncated", agent_case("memory_mapping-ppo_sb3", rewrite_weights(lambda b: b[: len(b) // 2], fix_sha=True)), EXIT2, r"{path}/policy.pt"),
        ("ckpt-zero-bytes", agent_case("memory_mapping-ppo_sb3", rewrite_weights(lambda b: b"", fix_sha=True)), EXIT2, r"{path}/policy.pt"),
        ("ckpt-truncated-no-sha-fix", agent_case("memory_mapping-ppo_sb3", rewrite_weights(lambda b: b[:100], fix_sha=False)), EXIT2, r"{path}/policy.pt.*sha256"),
        ("ckpt-meta-json-list", agent_case("memory_mapping-ppo_sb3", lambda d: (d / "schedgym_agent.json").write_text("[1, 2]")), EXIT2, r"{path}/schedgym_agent.json.*JSON object"),
        ("ckpt-meta-invalid-json", agent_case("memory_mapping-ppo_sb3", lambda d: (d / "schedgym_agent.json").write_text(f'{{"algo": {SECRET_MARKER}')), EXIT2, r"{path}/schedgym_agent.json: invalid JSON .*line 1 column \d+"),
        ("ckpt-evil-env-id", agent_case("memory_mapping-ppo_sb3", edit_meta(env_id="evil-schedgym/MemoryMapping-v0")), EXIT2, r"{path} was trained on"),
        ("ckpt-no-sha256", agent_case("memory_mapping-ppo_sb3", lambda d: edit_meta(policy_sha256=None)(d)), EXIT2, r"{path}/schedgym_agent.json.*policy_sha256"),
        ("ckpt-pickle-with-code", agent_case("memory_mapping-ppo_sb3", rewrite_weights(_pickle_with_code, fix_sha=True)), EXIT2, r"{path}/policy.pt"),
        ("ckpt-obs-dim-mismatch", agent_case("memory_mapping-ppo_sb3", edit_meta(policy_arch__obs_dim=5)), EXIT2, r"schedgym_agent.json.*obs_dim"),
        ("ckpt-weights-directory", agent_case("memory_mapping-ppo_sb3", lambda d: ((d / "policy.pt").unlink(), (d / "policy.pt").mkdir())), EXIT2, r"{path}.*policy.pt"),
        ("ckpt-muzero-layers-1e7", agent_case("memory_mapping-muzero", edit_meta(network__layers=[10_000_000, 10_000_000])), EXIT2, r"network.layers"),
        ("ckpt-muzero-eval-sims", agent_case("memory_mapping-muzero", edit_meta(config__eval_simulations=10**12)), EXIT2, r"{path}/schedgym_agent.json.*eval_simulations"),
        ("ckpt-algo-bogus", agent_case("memory_mapping-ppo_sb3", edit_meta(algo="evil")), EXIT2, r"{path}/schedgym_agent.json.*algo"),
        # --- state snapshots (set_state)
        ("state-other-instance", state_case(lambda s: s, target=lambda: _mm_env("random", n_buffers=40)), VERR, "another instance"),
        ("state-other-env", state_case(lambda s: s, target=lambda: (lambda e: (e.reset(seed=0), e)[1])(
            __import__("schedgym.evaluation", fromlist=["make_env"]).make_env(_family_id("AgentScheduling"), {"n_agents": 4}).unwrapped)), VERR, "env class"),
        ("state-truncated-array", state_case(_sim_attr("offset", lambda a: a[:3])), VERR, "'offset' has shape"),
        ("state-dtype-changed", state_case(_sim_attr("placed", lambda a: a.astype("int64"))), VERR, "'placed'"),
        ("state-not-a-dict", state_case(lambda s: [s]), VERR, "get_state"),
        ("state-missing-keys", state_case(lambda s: {"sim": s["sim"]}), VERR, "get_state"),
        ("state-rng-garbage", state_case(_set("rng", {"bit_generator": "PCG64", "state": "x"})), VERR, "rng"),
        ("state-fingerprint-forged", state_case(_set("fingerprint", "0" * 32)), VERR, "other kwargs"),
        # --- actions (never raise: default action + penalty + invalid_action)
        ("action-1.7", action_case(1.7), INVALID, "executed"),
        ("action-str-0", action_case("0"), INVALID, "executed"),
        ("action-True", action_case(True), INVALID, "executed"),
        ("action-None", action_case(None), INVALID, "executed"),
        ("action-list", action_case([1]), INVALID, "executed"),
        ("action-float64-integral", action_case(lambda: __import__("numpy").float64(1.0)), INVALID, "executed"),
        ("action-2**70", action_case(2**70), INVALID, "executed"),
        ("action-negative", action_case(-1), INVALID, "executed"),
        ("action-object", action_case(object), INVALID, "executed"),
        # --- Ray addresses
        ("ray-address-unreachable", lambda t: cli("bench", "--task", "memory-minimalloc-quick", "--policy", "first_fit", "--out", str(t / "o"),
                                                  "--address", "127.0.0.1:1", "--no-progress"), EXIT2, r"127\.0\.0\.1:1"),
        ("ray-address-garbage", lambda t: cli("bench", "--task", "memory-minimalloc-quick", "--policy", "first_fit", "--out", str(t / "o"),
                                              "--address", "not an address", "--no-progress"), EXIT2, "--address"),
    ]
    return c


def _run_all(out_file: str) -> None:
    """Child process: run every case, record outcome, output, tracemalloc peak and seconds."""
    import resource
    import tempfile
    import tracemalloc

    os.environ.setdefault("SCHEDGYM_RAY_CONNECT_TIMEOUT_S", "5")
    import importlib

    import schedgym  # noqa: F401

    # Import the heavy modules first, so that a case's seconds measure the case, not torch's import.
    for module in ("torch", "schedgym.agents.ppo", "schedgym.agents.muzero", "schedgym.baselines"):
        importlib.import_module(module)
    # ... and compile the numba kernels of the envs the cases build (minutes on a loaded 2-core machine).
    env = _mm_env()
    env.step(int(env.action_masks().argmax()))
    from schedgym.evaluation import make_env

    make_env(_family_id("AgentScheduling"), {"n_agents": 4}).reset(seed=0)

    results = {}
    for case_id, fn, _, _ in _cases():
        tmp = Path(tempfile.mkdtemp(prefix=f"hostile-{case_id}-"))
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            out = fn(tmp)
            out["traceback"] = False
        except BaseException as exc:  # noqa: BLE001  (an escaping exception is the failure to report)
            out = {"rc": f"escaped {type(exc).__name__}", "out": "".join(traceback.format_exception(exc))[-3000:], "traceback": True}
        out["seconds"] = time.perf_counter() - t0
        out["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.setdefault("path", str(tmp))
        results[case_id] = out
        shutil.rmtree(tmp, ignore_errors=True)
    results["__maxrss_bytes__"] = _peak_rss_bytes()
    Path(out_file).write_text(json.dumps(results, default=str))


def _peak_rss_bytes() -> int:
    """This process's own peak resident set. Linux's ``ru_maxrss`` also keeps the peak of the address space
    replaced at ``exec`` -- here the pytest process that started the table, which grows past 1 GB over the
    suite -- so read the current address space's high-water mark (``VmHWM``) where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("hostile") / "outcomes.json"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, __file__, str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_table_has_at_least_60_inputs() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id, expected, pattern", [(c[0], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(outcomes: dict[str, Any], case_id: str, expected: Any, pattern: str) -> None:
    got = outcomes[case_id]
    text = got["out"]
    assert not got["traceback"] and "Traceback" not in text, text
    assert got["rc"] == expected, f"{got['rc']!r} != {expected!r}: {text}"
    regex = pattern.replace("{path}", re.escape(got["path"]))
    assert re.search(regex, text), f"{regex!r} not in {text!r}"
    assert SECRET_MARKER not in text, f"file contents echoed: {text!r}"
    if expected == EXIT2:
        lines = [ln for ln in text.splitlines() if "error:" in ln]
        assert len(lines) == 1, text  # one line, not a stack
    assert got["peak_bytes"] < GB, f"tracemalloc peak {got['peak_bytes'] / GB:.2f} GB"
    # Bounded time (kernels are compiled before the cases run; the limit leaves room for a loaded machine).
    assert got["seconds"] < 120, f"{case_id} took {got['seconds']:.0f} s"
    assert not Path("/tmp/hostile_pwned").exists(), "a checkpoint executed code"


def test_whole_table_stays_under_1_gb(outcomes: dict[str, Any]) -> None:
    assert outcomes["__maxrss_bytes__"] < GB, f"peak RSS {outcomes['__maxrss_bytes__'] / GB:.2f} GB"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # test this checkout's schedgym, whatever is installed
    _run_all(sys.argv[1])
