"""Train/test splits of the benchmark tasks (as CompilerGym splits its datasets).

A task is scored on its *test* split: exactly the instances and seeds its rows run (the task's
``instances`` x ``seeds``). Its *train* split names the data an agent may learn from: other instance
files, other programs, other traces, or generator seeds the test split does not use. Heuristics and
bounds are scored on the test split too; they train on nothing.

An :class:`InstanceSpec` names a *data source* — the env kwarg that picks the data (MemoryMapping's
``instance``, the other families' ``workload``) — and, for generated sources only, which seeds. The
capacity, window length or server count a task overlays does not make new data: an agent trained on
``minimalloc:A`` has seen the buffers of ``minimalloc:A@0.9``, so overlap is decided by source.

Seeds: for a generated source (``random``, ``synthetic``, ``poisson``, ``tenants``) the seed picks the
instance, so ``poisson#seeds=0,1,2`` and ``poisson#seeds>=1000`` are disjoint. A recorded trace or file
is the same data under every seed (the seed only thins or jitters it), so a spec of it carries no seeds
and overlaps every spec of the same source. A spec without seeds of a generated source means *any* seed.

String form (what the JSON export, ``schedgym list tasks`` and agent records hold)::

    minimalloc:A          a fixed source
    random                every instance the generator can draw
    poisson#seeds=0,1,2   those seeds only
    poisson#seeds>=1000   seed 1000 and up
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENERATED_SOURCES",
    "SOURCE_KWARGS",
    "InstanceSpec",
    "Split",
    "instance_source",
    "overlapping",
    "parse_specs",
    "test_specs",
    "train_instances_for",
]

#: Per env family: the env kwarg that picks the data and its default (checked against the env
#: constructors in tests/test_splits.py, so a changed default cannot silently mislabel a record).
SOURCE_KWARGS: dict[str, tuple[str, str]] = {
    "MemoryMapping": ("instance", "random"),
    "GPUAutoscaling": ("workload", "synthetic"),
    "PowerCapping": ("workload", "azure-conv"),
    "AgentScheduling": ("workload", "poisson"),
}

#: Per env family: the sources whose data the seed draws (everything else is a fixed file or trace).
GENERATED_SOURCES: dict[str, frozenset[str]] = {
    "MemoryMapping": frozenset({"random"}),
    "GPUAutoscaling": frozenset({"synthetic"}),
    "PowerCapping": frozenset({"synthetic"}),
    "AgentScheduling": frozenset({"poisson", "tenants"}),
}


def _family(env_id: str) -> str:
    plain = env_id.split(":", 1)[1] if ":" in env_id else env_id
    return plain.split("/", 1)[-1].rsplit("-v", 1)[0]


@dataclass(frozen=True)
class InstanceSpec:
    """One data source, with the seeds it covers when the seed draws the data.

    ``seeds`` (an explicit set) and ``seeds_from`` (that seed and up) are exclusive; neither means every
    seed (or, for a fixed source, that the seed does not matter).
    """

    source: str
    seeds: tuple[int, ...] | None = None
    seeds_from: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source or "#" in self.source:
            raise ValueError(f"instance spec source must be a non-empty string without '#', got {self.source!r}")
        if self.seeds is not None and self.seeds_from is not None:
            raise ValueError(f"instance spec {self.source!r}: give seeds or seeds_from, not both")
        if self.seeds is not None and not self.seeds:
            raise ValueError(f"instance spec {self.source!r}: an empty seed set covers nothing; omit the spec")

    def __str__(self) -> str:
        if self.seeds is not None:
            return f"{self.source}#seeds={','.join(str(s) for s in sorted(self.seeds))}"
        if self.seeds_from is not None:
            return f"{self.source}#seeds>={self.seeds_from}"
        return self.source

    @classmethod
    def parse(cls, text: str) -> InstanceSpec:
        """The inverse of ``str()``; ``ValueError`` naming the text when it is not a spec."""
        if not isinstance(text, str):
            raise ValueError(f"instance spec must be a string, got {type(text).__name__} {text!r:.80}")
        source, sep, seeds = text.partition("#")
        if not sep:
            return cls(source)
        try:
            if seeds.startswith("seeds>="):
                return cls(source, seeds_from=int(seeds[len("seeds>="):]))
            if seeds.startswith("seeds="):
                return cls(source, seeds=tuple(int(s) for s in seeds[len("seeds="):].split(",")))
        except ValueError:
            pass
        raise ValueError(f"instance spec {text!r:.80}: after '#' expected 'seeds=0,1,2' or 'seeds>=N'")

    def overlaps(self, other: InstanceSpec) -> bool:
        """Whether the two specs can name the same data (same source and a seed in common)."""
        if self.source != other.source:
            return False
        a, b = self, other
        if (a.seeds is None and a.seeds_from is None) or (b.seeds is None and b.seeds_from is None):
            return True
        if a.seeds is not None and b.seeds is not None:
            return bool(set(a.seeds) & set(b.seeds))
        if a.seeds_from is not None and b.seeds_from is not None:
            return True  # two unbounded ranges always meet
        explicit, lo = (a.seeds, b.seeds_from) if a.seeds is not None else (b.seeds, a.seeds_from)
        assert explicit is not None and lo is not None
        return any(s >= lo for s in explicit)


def overlapping(train: Iterable[InstanceSpec], test: Iterable[InstanceSpec]) -> list[tuple[InstanceSpec, InstanceSpec]]:
    """Every (train spec, test spec) pair that can name the same data."""
    test = list(test)
    return [(a, b) for a in train for b in test if a.overlaps(b)]


def parse_specs(items: Any, where: str) -> tuple[InstanceSpec, ...]:
    """A JSON list of spec strings (an agent record's ``train_instances``); ``ValueError`` naming ``where``."""
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: expected a non-empty list of instance specs such as ['random'], got {items!r:.120}")
    try:
        return tuple(InstanceSpec.parse(x) for x in items)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _compact(specs: Iterable[InstanceSpec]) -> str:
    """Specs joined by commas; three or more consecutive one-letter files (``minimalloc:A``..) as ``minimalloc:A..K (11)``."""
    out: list[str] = []
    run: list[InstanceSpec] = []

    def flush() -> None:
        names = [s.source.rsplit(":", 1)[1] for s in run]
        letters = all(len(n) == 1 for n in names) and [ord(n) for n in names] == list(
            range(ord(names[0]), ord(names[0]) + len(names))
        ) if names else False
        if len(run) >= 3 and letters:
            out.append(f"{run[0].source.rsplit(':', 1)[0]}:{names[0]}..{names[-1]} ({len(run)})")
        else:
            out.extend(str(s) for s in run)
        run.clear()

    for spec in specs:
        fixed = ":" in spec.source and spec.seeds is None and spec.seeds_from is None
        if fixed and run and spec.source.rsplit(":", 1)[0] == run[0].source.rsplit(":", 1)[0]:
            run.append(spec)
            continue
        flush()
        if fixed:
            run.append(spec)
        else:
            out.append(str(spec))
    flush()
    return ", ".join(out)


@dataclass(frozen=True)
class Split:
    """What an agent may train on (``train``) and what the task scores (``test``); they never overlap."""

    train: tuple[InstanceSpec, ...]
    test: tuple[InstanceSpec, ...]
    #: Why the train split is what it is (e.g. which source is held out and why), for people.
    note: str = ""

    def __post_init__(self) -> None:
        clash = overlapping(self.train, self.test)
        if clash:
            raise ValueError(f"split: train and test overlap: {[f'{a} ~ {b}' for a, b in clash]}")

    def describe(self) -> str:
        """One line: ``train: random, torch:resnet | test: minimalloc:A..K (11)``."""
        return f"train: {_compact(self.train)} | test: {_compact(self.test)}"

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": [str(s) for s in self.train], "test": [str(s) for s in self.test]}


def instance_source(env_id: str, env_kwargs: Mapping[str, Any]) -> str:
    """The data source an env made with ``env_kwargs`` draws from (its ``instance``/``workload``)."""
    family = _family(env_id)
    if family not in SOURCE_KWARGS:
        raise ValueError(f"no instance source is defined for env {env_id!r}; families: {sorted(SOURCE_KWARGS)}")
    key, default = SOURCE_KWARGS[family]
    value = env_kwargs.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"env {env_id}: {key}={value!r:.80} is not a string naming an instance or workload")
    return value


def is_generated(env_id: str, source: str) -> bool:
    return source in GENERATED_SOURCES.get(_family(env_id), frozenset())


def test_specs(
    env_id: str, instances: Iterable[tuple[str, Mapping[str, Any]]], seeds: Iterable[int]
) -> tuple[InstanceSpec, ...]:
    """The test split of a task that runs every ``(name, env kwargs)`` instance at every seed.

    Sources in first-seen order; generated ones carry the task's seeds, fixed ones none. An env outside
    the benchmark's families (a test's made-up task) has no known source kwarg: each instance name is
    its own fixed source.
    """
    seeds = tuple(sorted(set(int(s) for s in seeds)))
    known = _family(env_id) in SOURCE_KWARGS
    out: dict[str, InstanceSpec] = {}
    for name, kw in instances:
        src = instance_source(env_id, kw) if known else name
        if src not in out:
            out[src] = InstanceSpec(src, seeds=seeds) if is_generated(env_id, src) else InstanceSpec(src)
    return tuple(out.values())


def train_instances_for(env_id: str, env_kwargs: Mapping[str, Any]) -> list[str]:
    """What ``schedgym train`` records it trained on: the env's one source, every seed.

    Every seed, because the trainers reset their envs from their own RNG streams (MuZero draws a fresh
    seed per episode), so any instance of a generated source may have been seen.
    """
    return [str(InstanceSpec(instance_source(env_id, env_kwargs)))]
