"""Instances of the memory-mapping game: CSV loaders, shipped benchmarks and generators.

Sources (the env's ``instance=`` kwarg, resolved by :func:`resolve_instance`):

- ``"minimalloc:A"`` … ``"minimalloc:K"``: the MiniMalloc "challenging" suite (Apache-2.0; M. D. Moffitt,
  "MiniMalloc", ASPLOS 2023), capacity 1,048,576 bytes from the file names.
- ``"somas:resnet50"``: a MindSpore SOMAS buffer trace of ResNet-50 (MIT, via the idealloc repository);
  it has no capacity, so ``capacity`` must be a fraction of its peak live bytes.
- ``"csv:<path>"``: any file in the MiniMalloc format (header ``id,lower,upper,size``, ``[lower, upper)``
  half-open, optional ``benefit`` and ``alignment`` columns), or the legacy header ``id,start,end,size``
  whose ``end`` is inclusive. A capacity in the file name (``name.<bytes>.csv``) is used by default.
- ``"random"``: :func:`generate_random` (seeded by ``reset(seed)``), or :func:`generate_planted` with
  ``planted=True``, which cuts a ``C x T`` rectangle into buffers so that the optimum places 100 %.
- ``"torch:<model>"``: buffers of a real PyTorch program (see ``torch_programs.py``).

Without a ``benefit`` column a buffer's benefit is its area ``size x (end - start)``, so the score is the
fraction of the time x address area placed in fast memory.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from schedgym.envs.core.validation import shown_value
from schedgym.envs.memory_mapping.types import Instance

__all__ = [
    "InstanceFormatError",
    "MINIMALLOC_NAMES",
    "load_csv",
    "load_minimalloc",
    "load_somas",
    "generate_random",
    "generate_planted",
    "with_capacity",
    "resolve_instance",
]

MINIMALLOC_NAMES = tuple("ABCDEFGHIJK")
MINIMALLOC_CAPACITY = 1_048_576
_INT_FIELDS = ("id", "size")
#: Largest size, capacity, alignment, time step or id accepted from a file or kwarg (2^50: 1 PiB). The
#: dynamics compute in int64; this leaves headroom for offsets + sizes and times x 64 time bins.
MAX_INT_VALUE = 2**50
#: Largest total size x lifetime of an instance, so that every int64 sum of areas is exact.
MAX_TOTAL_AREA = 2**62
#: Most buffers in one instance file: the env's bound on random instances (an episode of 200k buffers
#: needs ~0.3 GB; 1M would need 1.5 GB).
MAX_CSV_BUFFERS = 200_000
_ASCII_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_ASCII_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)


class InstanceFormatError(ValueError):
    """A malformed instance file; the message names the file, line and reason."""


def _parse_int(text: str, column: str) -> int:
    """An ASCII decimal integer within ``[-MAX_INT_VALUE, MAX_INT_VALUE]`` (Unicode digits are refused)."""
    t = text.strip()
    if len(t) > 20 or not _ASCII_INT.fullmatch(t):
        if _ASCII_INT.fullmatch(t):
            raise ValueError(f"column {column!r}: a {len(t)}-digit number is out of range (|value| <= 2**50)")
        raise ValueError(f"column {column!r}: {shown_value(t)} is not an integer (ASCII decimal digits only)")
    value = int(t)
    if abs(value) > MAX_INT_VALUE:
        raise ValueError(f"column {column!r}: {t} is out of range (|value| <= 2**50)")
    return value


def _parse_float(text: str, column: str) -> float:
    t = text.strip()
    if len(t) > 40 or not _ASCII_FLOAT.fullmatch(t):
        raise ValueError(f"column {column!r}: {shown_value(t)} is not an ASCII decimal number")
    return float(t)


def load_csv(path: str | Path, capacity: int | None = None, name: str | None = None) -> Instance:
    """Read a MiniMalloc-format CSV. Raises :class:`InstanceFormatError` with ``file:line: reason``."""
    path = Path(path)
    if path.is_dir():
        raise InstanceFormatError(f"instance file {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"instance file not found: {path}")
    if capacity is None:
        m = re.search(r"\.([0-9]+)\.csv$", path.name, re.ASCII)
        if m and (len(m.group(1)) > 16 or not 0 < int(m.group(1)) <= MAX_INT_VALUE):
            raise InstanceFormatError(f"{path}: the capacity in the file name is out of range (1..2**50 bytes)")
        capacity = int(m.group(1)) if m else None
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # a UTF-8 BOM is tolerated
            return _read_rows(f, str(path), capacity, name or path.stem)
    except UnicodeDecodeError:
        from schedgym.envs.core.traces import utf8_error_line

        raise InstanceFormatError(f"{path}:{utf8_error_line(path)}: not valid UTF-8") from None


def _read_rows(f: Any, where: str, capacity: int | None, name: str) -> Instance:
    reader = csv.reader(f)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InstanceFormatError(f"{where}:1: empty file (expected header id,lower,upper,size)") from None
    except csv.Error as exc:
        raise InstanceFormatError(f"{where}:1: malformed CSV header ({exc})") from None
    if len(header) > 32 or sum(len(h) for h in header) > 1024:
        raise InstanceFormatError(f"{where}:1: header has {len(header)} columns; expected id,lower,upper,size[,benefit,alignment]")
    if {"lower", "upper"} <= set(header):
        lo_col, hi_col, inclusive = "lower", "upper", False
    elif {"start", "end"} <= set(header):
        lo_col, hi_col, inclusive = "start", "end", True
    else:
        raise InstanceFormatError(
            f"{where}:1: the header (of {len(header)} columns) must contain id,lower,upper,size (or legacy id,start,end,size)"
        )
    missing = [c for c in ("id", "size") if c not in header]
    if missing:
        raise InstanceFormatError(f"{where}:1: the header lacks column(s) {missing}")
    col = {h: k for k, h in enumerate(header)}
    has_benefit, has_align = "benefit" in col, "alignment" in col
    ids, lows, highs, sizes, benefits, aligns = [], [], [], [], [], []
    seen: dict[int, int] = {}
    total_area = 0
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InstanceFormatError(f"{where}:{reader.line_num}: malformed CSV ({exc})") from None
        line = reader.line_num
        if len(ids) >= MAX_CSV_BUFFERS:
            raise InstanceFormatError(f"{where}:{line}: more than {MAX_CSV_BUFFERS} buffers in one instance")
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InstanceFormatError(f"{where}:{line}: expected {len(header)} fields, got {len(row)}")
        try:
            bid = _parse_int(row[col["id"]], "id")
            lo = _parse_int(row[col[lo_col]], lo_col)
            hi = _parse_int(row[col[hi_col]], hi_col) + (1 if inclusive else 0)
            size = _parse_int(row[col["size"]], "size")
            benefit = _parse_float(row[col["benefit"]], "benefit") if has_benefit else None
            align = _parse_int(row[col["alignment"]], "alignment") if has_align else 1
        except ValueError as exc:
            raise InstanceFormatError(f"{where}:{line}: {exc}") from None
        if size <= 0:
            raise InstanceFormatError(f"{where}:{line}: size must be > 0, got {size}")
        if lo < 0:
            raise InstanceFormatError(f"{where}:{line}: {lo_col} must be >= 0, got {lo}")
        if hi <= lo:
            raise InstanceFormatError(
                f"{where}:{line}: {hi_col} must be {'>=' if inclusive else '>'} {lo_col} "
                f"(got {lo_col}={lo}, {hi_col}={row[col[hi_col]].strip()})"
            )
        if benefit is not None and not (np.isfinite(benefit) and benefit >= 0):
            raise InstanceFormatError(f"{where}:{line}: benefit must be a finite number >= 0, got {benefit}")
        if align < 1:
            raise InstanceFormatError(f"{where}:{line}: alignment must be >= 1, got {align}")
        if bid in seen:
            raise InstanceFormatError(f"{where}:{line}: duplicate id {bid} (first on line {seen[bid]})")
        total_area += size * (hi - lo)
        if total_area > MAX_TOTAL_AREA:
            raise InstanceFormatError(
                f"{where}:{line}: the total size x lifetime of the buffers so far exceeds 2**62 "
                "(int64 headroom of the dynamics); use coarser units"
            )
        seen[bid] = line
        ids.append(bid), lows.append(lo), highs.append(hi), sizes.append(size), aligns.append(align)
        benefits.append(benefit)
    if not ids:
        raise InstanceFormatError(f"{where}:1: no buffers after the header")
    start = np.asarray(lows, dtype=np.int64)
    end = np.asarray(highs, dtype=np.int64)
    size = np.asarray(sizes, dtype=np.int64)
    if has_benefit:
        benefit_arr, source = np.asarray(benefits, dtype=np.float64), "file"
    else:
        benefit_arr, source = (size * (end - start)).astype(np.float64), "area"
    inst = Instance(
        ids=np.asarray(ids, dtype=np.int64),
        start=start,
        end=end,
        size=size,
        benefit=benefit_arr,
        alignment=np.asarray(aligns, dtype=np.int64),
        capacity=None if capacity is None else int(capacity),
        name=name,
        benefit_source=source,
    )
    return inst


def _data_file(*parts: str) -> Any:
    return resources.files("schedgym.data").joinpath(*parts)


def load_minimalloc(letter: str) -> Instance:
    """One of the 11 MiniMalloc challenging instances ``A``..``K`` (capacity 1,048,576 bytes)."""
    if letter not in MINIMALLOC_NAMES:
        raise ValueError(f"unknown MiniMalloc instance {letter!r}; choose one of {list(MINIMALLOC_NAMES)}")
    ref = _data_file("minimalloc_challenging", f"{letter}.{MINIMALLOC_CAPACITY}.csv")
    with resources.as_file(ref) as p:
        return load_csv(p, capacity=MINIMALLOC_CAPACITY, name=f"minimalloc:{letter}")


def load_somas(model: str = "resnet50") -> Instance:
    """The MindSpore SOMAS trace (capacity unknown: resolve with a fraction of the peak)."""
    if model != "resnet50":
        raise ValueError(f"unknown SOMAS trace {model!r}; choose one of ['resnet50']")
    with resources.as_file(_data_file("mindspore_somas", "resnet50.csv")) as p:
        return load_csv(p, capacity=None, name="somas:resnet50")


def with_capacity(inst: Instance, capacity: int | float | None) -> Instance:
    """Apply the ``capacity`` kwarg: int = bytes, float in (0, 1] = fraction of peak live bytes."""
    if capacity is None:
        if inst.capacity is None:
            raise ValueError(
                f"instance {inst.name!r} has no capacity: pass capacity=<bytes> (int) or a fraction in (0, 1] "
                "of its peak live bytes (float), e.g. capacity=0.5"
            )
        return inst
    if isinstance(capacity, bool) or not isinstance(capacity, (int, float)):
        raise ValueError(f"capacity must be an int (bytes) or a float in (0, 1], got {capacity!r}")
    if isinstance(capacity, float):
        if not 0.0 < capacity <= 1.0:
            raise ValueError(f"capacity as a fraction must be in (0, 1], got {capacity!r} (pass an int for bytes)")
        cap = max(1, int(capacity * inst.peak_live_bytes()))
    else:
        if not 0 < capacity <= MAX_INT_VALUE:
            shown = capacity if capacity < 10**30 else f"a {len(str(capacity))}-digit number"
            raise ValueError(f"capacity must be > 0 and <= 2**50 bytes, got {shown}")
        cap = int(capacity)
    optimum = inst.optimum if cap == inst.capacity else None
    planted = inst.planted_offset if cap == inst.capacity else None
    return replace(inst, capacity=cap, optimum=optimum, planted_offset=planted)


def generate_random(
    rng: np.random.Generator,
    n_buffers: int = 200,
    size_distribution: str = "loguniform",
    min_size: int = 1024,
    max_size: int = 1 << 20,
    max_lifetime: int = 100,
    alignment: int = 1,
) -> Instance:
    """Random buffers: uniform starts over a horizon of ``n_buffers`` steps, log-uniform lifetimes in
    ``[1, max_lifetime]`` (so about ``max_lifetime / ln(max_lifetime)`` buffers are live at a time,
    whatever n is), sizes log-uniform or Pareto (heavy-tailed, shape 1.2) in ``[min_size, max_size]``
    rounded to 1 KiB multiples. The capacity is set by the caller (a fraction of the peak)."""
    n = n_buffers
    horizon = max(n, 2)
    life = np.exp(rng.uniform(0.0, np.log(min(max_lifetime, horizon)), n)).astype(np.int64).clip(1)
    start = rng.integers(0, horizon, n).astype(np.int64)
    start = np.minimum(start, horizon - life)
    if size_distribution == "loguniform":
        size = np.exp(rng.uniform(np.log(min_size), np.log(max_size), n))
    elif size_distribution == "pareto":
        size = min_size * (1.0 + rng.pareto(1.2, n))
    else:
        raise ValueError(f"size_distribution must be one of ['loguniform', 'pareto'], got {size_distribution!r}")
    size = np.clip(np.round(size / 1024) * 1024, 1024, max_size).astype(np.int64)
    end = start + life
    return Instance(
        ids=np.arange(n, dtype=np.int64),
        start=start,
        end=end,
        size=size,
        benefit=(size * life).astype(np.float64),
        alignment=np.full(n, alignment, dtype=np.int64),
        capacity=None,
        name=f"random(n={n})",
    )


def generate_planted(
    rng: np.random.Generator, n_buffers: int = 40, capacity_units: int = 1024, unit_bytes: int = 1024
) -> Instance:
    """A planted instance: guillotine cuts of a ``C x T`` rectangle into ``n_buffers`` rectangles.

    Every piece is a buffer (its height the size, its width the live range), so the packing that made
    them fills the memory exactly and places 100 % of the benefit: ``optimum = 1.0`` and
    ``planted_offset`` gives that packing. ``T = 4 n`` schedule steps; the piece cut next is drawn in
    proportion to its area, cut across its relatively longer side at a uniform position.
    """
    horizon = 4 * n_buffers
    if n_buffers > capacity_units * horizon:
        raise ValueError(f"n_buffers={n_buffers} is too large for a {capacity_units} x {horizon} rectangle")
    # pieces: [t0, t1, y0, y1] in (time steps, units)
    pieces = np.zeros((n_buffers, 4), dtype=np.int64)
    pieces[0] = (0, horizon, 0, capacity_units)
    count = 1
    while count < n_buffers:
        w = pieces[:count, 1] - pieces[:count, 0]
        h = pieces[:count, 3] - pieces[:count, 2]
        area = (w * h).astype(np.float64) * ((w > 1) | (h > 1))
        k = int(rng.choice(count, p=area / area.sum()))
        t0, t1, y0, y1 = pieces[k]
        cut_time = (t1 - t0) / horizon >= (y1 - y0) / capacity_units
        if (cut_time and t1 - t0 > 1) or y1 - y0 <= 1:
            c = int(rng.integers(t0 + 1, t1))
            pieces[k], pieces[count] = (t0, c, y0, y1), (c, t1, y0, y1)
        else:
            c = int(rng.integers(y0 + 1, y1))
            pieces[k], pieces[count] = (t0, t1, y0, c), (t0, t1, c, y1)
        count += 1
    perm = rng.permutation(n_buffers)
    pieces = pieces[perm]
    start, end = pieces[:, 0].copy(), pieces[:, 1].copy()
    size = (pieces[:, 3] - pieces[:, 2]) * unit_bytes
    return Instance(
        ids=np.arange(n_buffers, dtype=np.int64),
        start=start,
        end=end,
        size=size,
        benefit=(size * (end - start)).astype(np.float64),
        alignment=np.ones(n_buffers, dtype=np.int64),
        capacity=capacity_units * unit_bytes,
        name=f"planted(n={n_buffers})",
        optimum=1.0,
        planted_offset=pieces[:, 2] * unit_bytes,
    )


def resolve_instance(
    instance: str,
    capacity: int | float | None,
    rng: np.random.Generator | None = None,
    generator_kwargs: dict[str, Any] | None = None,
    planted: bool = False,
    torch_kwargs: dict[str, Any] | None = None,
) -> Instance:
    """Turn the env's ``instance`` kwarg into an :class:`Instance` with its capacity resolved."""
    if instance == "random":
        if rng is None:
            raise ValueError("a random instance needs an RNG (it is drawn at reset)")
        kw = dict(generator_kwargs or {})
        if planted:
            inst = generate_planted(rng, n_buffers=kw.pop("n_buffers", 40), **kw)
            return with_capacity(inst, capacity)
        inst = generate_random(rng, **kw)
        return with_capacity(inst, 0.5 if capacity is None else capacity)
    if instance.startswith("minimalloc:"):
        return with_capacity(load_minimalloc(instance.split(":", 1)[1]), capacity)
    if instance.startswith("somas:"):
        return with_capacity(load_somas(instance.split(":", 1)[1]), capacity)
    if instance.startswith("csv:"):
        return with_capacity(load_csv(instance[4:]), capacity)
    if instance.startswith("torch:"):
        from schedgym.envs.memory_mapping.models import load_torch_instance

        return load_torch_instance(instance.split(":", 1)[1], capacity=capacity, **(torch_kwargs or {}))
    raise ValueError(
        f"instance must be 'random', 'minimalloc:A'..'minimalloc:K', 'somas:resnet50', 'csv:<path>' or "
        f"'torch:<model>', got {instance!r}"
    )
