"""Baselines of MemoryMapping-v0: XLA-style best fit in three orders, first fit, Bayesian order search,
a CP-SAT exact oracle and random.

Policies that need a particular presentation order or action mode declare it in ``env_overrides``;
``schedgym run`` and the benchmark runner build the env with those kwargs (they change how the game is
presented, never the instance, the capacity or the objective).

The module also holds standalone reference implementations (``best_fit_reference``,
``first_fit_reference``) that do not use the env: the env driven by action 0 must produce exactly the
placements of ``best_fit_reference`` (tests/test_memory_mapping.py checks it).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedgym.baselines import register_policy
from schedgym.envs.memory_mapping.geometry import priority_order
from schedgym.envs.memory_mapping.types import Instance

__all__ = [
    "best_fit_reference",
    "first_fit_reference",
    "evaluate_offsets",
    "ActionZeroBestFit",
    "FirstFit",
    "BayesianOrderSearch",
    "CpSatOracle",
    "CpSatResult",
    "solve_cpsat",
]

FAMILY = "MemoryMapping"


# ---------------------------------------------------------------------------------------------------
# Standalone references (plain Python over the placed buffers; deliberately independent of geometry.py)
# ---------------------------------------------------------------------------------------------------
def _free_gaps(occupied: list[tuple[int, int]], capacity: int) -> list[tuple[int, int]]:
    gaps, cur = [], 0
    for lo, hi in sorted(occupied):
        if lo > cur:
            gaps.append((cur, lo))
        cur = max(cur, hi)
    if cur < capacity:
        gaps.append((cur, capacity))
    return gaps


def _fit(inst: Instance, order: np.ndarray, choose: str) -> np.ndarray:
    offsets = np.full(inst.n, -1, dtype=np.int64)
    placed: list[int] = []
    cap = int(inst.capacity)
    for b in map(int, order):
        s, a = int(inst.size[b]), int(inst.alignment[b])
        occupied = [
            (int(offsets[j]), int(offsets[j] + inst.size[j]))
            for j in placed
            if inst.start[j] < inst.end[b] and inst.end[j] > inst.start[b]
        ]
        best = None
        for lo, hi in _free_gaps(occupied, cap):
            x = -(-lo // a) * a
            if x + s > hi:
                continue
            key = (hi - lo, x) if choose == "best" else (x,)
            if best is None or key < best[0]:
                best = (key, x)
        if best is not None:
            offsets[b] = best[1]
            placed.append(b)
    return offsets


def best_fit_reference(inst: Instance, order: str = "xla") -> np.ndarray:
    """XLA-style best fit: each buffer in ``order`` goes to the smallest free gap that holds it (lowest
    offset on ties) or to slow memory (-1). Returns the byte offset of every buffer."""
    return _fit(inst, priority_order(inst, order), "best")


def first_fit_reference(inst: Instance, order: str = "xla") -> np.ndarray:
    """Each buffer in ``order`` at its lowest feasible offset, or slow memory (-1)."""
    return _fit(inst, priority_order(inst, order), "first")


def evaluate_offsets(inst: Instance, offsets: np.ndarray) -> float:
    """Fraction of benefit placed by a mapping; raises ``ValueError`` if it overlaps or overflows."""
    placed = np.flatnonzero(offsets >= 0)
    x, s = offsets[placed], inst.size[placed]
    if np.any(x + s > inst.capacity) or np.any(x % inst.alignment[placed]):
        raise ValueError("mapping exceeds the capacity or breaks an alignment")
    for k, i in enumerate(placed):
        j = placed[k + 1 :]
        clash = (inst.start[j] < inst.end[i]) & (inst.end[j] > inst.start[i]) & (x[k + 1 :] < x[k] + s[k]) & (x[k + 1 :] + s[k + 1 :] > x[k])
        if clash.any():
            raise ValueError(f"buffers {inst.ids[i]} and {inst.ids[j[clash][0]]} overlap")
    total = float(inst.benefit.sum())
    return float(inst.benefit[placed].sum()) / total if total > 0 else 0.0


# ---------------------------------------------------------------------------------------------------
# Heuristic policies
# ---------------------------------------------------------------------------------------------------
class ActionZeroBestFit:
    """Best fit in a presentation order: always action 0 of ``place`` mode (XLA's heap simulator)."""

    def __init__(self, name: str, order: str) -> None:
        self.name = name
        self.env_overrides = {"action_mode": "place", "order": order}

    def reset(self, env: Any) -> None:
        _require(env, self.name, **self.env_overrides)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return 0


@register_policy(FAMILY, "xla_best_fit", "heuristic", "XLA best fit: order -benefit/sqrt(size), smallest gap first")
def xla_best_fit() -> ActionZeroBestFit:
    return ActionZeroBestFit("xla_best_fit", "xla")


@register_policy(FAMILY, "spatial_best_fit", "heuristic", "best fit in XLA's spatial order (-size, -lifetime, id)")
def spatial_best_fit() -> ActionZeroBestFit:
    return ActionZeroBestFit("spatial_best_fit", "size")


@register_policy(FAMILY, "temporal_best_fit", "heuristic", "best fit in XLA's temporal order (-lifetime, -size, id)")
def temporal_best_fit() -> ActionZeroBestFit:
    return ActionZeroBestFit("temporal_best_fit", "lifetime")


@register_policy(FAMILY, "first_fit", "heuristic", "lowest feasible offset, XLA order")
class FirstFit:
    """Each buffer at its lowest feasible offset (the env always shows that candidate in ``place`` mode)."""

    name = "first_fit"
    env_overrides = {"action_mode": "place"}

    def reset(self, env: Any) -> None:
        _require(env, self.name, action_mode="place")
        self._env = env

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        st = self._env.state
        if st.n_candidates == 0:
            return self._env.K
        return int(np.argmin(st.cand_offset[: st.n_candidates]))


def _require(env: Any, policy: str, **kwargs: Any) -> None:
    for key, want in kwargs.items():
        have = getattr(env, key)
        if have != want:
            raise ValueError(f"policy {policy!r} needs the env built with {key}={want!r}, got {key}={have!r}")


# ---------------------------------------------------------------------------------------------------
# Bayesian optimisation over an ordering score
# ---------------------------------------------------------------------------------------------------
def _order_features(inst: Instance) -> np.ndarray:
    """Per-buffer features of the ordering score, standardised: (n, 4)."""
    life = (inst.end - inst.start).astype(np.float64)
    t = (inst.start - inst.start.min()) / max(float(inst.horizon - inst.start.min()), 1.0)
    f = np.stack(
        [np.log(inst.benefit / inst.size + 1e-300), np.log(inst.size.astype(np.float64)), np.log(life), -t], axis=1
    )
    f = f - f.mean(axis=0)
    sd = f.std(axis=0)
    return f / np.where(sd > 0, sd, 1.0)


@register_policy(
    FAMILY,
    "bayesian_order_search",
    "bayesian",
    "Bayesian optimisation (TPE) of an ordering score; order mode, lowest viable offset",
)
class BayesianOrderSearch:
    """Budgeted Bayesian optimisation over the weights of a buffer-ordering score.

    The score of buffer ``i`` is ``w . f_i`` with standardised features ``f_i = (log benefit density,
    log size, log lifetime, -start)``. In ``order`` mode the policy places, among the visible candidates,
    the one with the highest score; every weight vector is evaluated exactly by playing a whole episode
    in a copy of the env from the reset state (the env is deterministic). Optuna's TPE sampler (seeded)
    proposes ``budget`` weight vectors in ``[-2, 2]^4``; the first trial is ``w = 0`` (ties resolve to
    candidate 0, i.e. the greedy canonical heuristic), so the search never ends below it. The best
    vector is then played for real.
    """

    name = "bayesian_order_search"
    env_overrides = {"action_mode": "order"}

    def __init__(self, budget: int = 30, seed: int = 0) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1 evaluation, got {budget}")
        self.budget, self.seed = int(budget), int(seed)
        self.best_value: float | None = None
        self.history: list[float] = []

    def _score_of(self, env: Any, weights: np.ndarray) -> np.ndarray:
        return _order_features(env.state.prep.inst) @ weights

    @staticmethod
    def _choose(env: Any, score: np.ndarray) -> int:
        st = env.state
        if st.n_candidates == 0:
            return env.K
        return int(np.argmax(score[st.cand_buffer[: st.n_candidates]]))

    def _rollout(self, env: Any, weights: np.ndarray) -> float:
        sim = copy.deepcopy(env)
        score = self._score_of(sim, weights)
        done = False
        while not done:
            _, done, _, _ = sim._apply(self._choose(sim, score))
        return float(sim.metrics()["benefit_placed_frac"])

    def reset(self, env: Any) -> None:
        import optuna

        _require(env, self.name, action_mode="order")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        study.enqueue_trial({f"w{k}": 0.0 for k in range(4)})

        def objective(trial: Any) -> float:
            w = np.array([trial.suggest_float(f"w{k}", -2.0, 2.0) for k in range(4)])
            return self._rollout(env, w)

        study.optimize(objective, n_trials=self.budget)
        self.history = [t.value for t in study.trials]
        self.best_value = study.best_value
        self._weights = np.array([study.best_params[f"w{k}"] for k in range(4)])
        self._env = env
        self._score = self._score_of(env, self._weights)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return self._choose(self._env, self._score)


# ---------------------------------------------------------------------------------------------------
# CP-SAT exact oracle
# ---------------------------------------------------------------------------------------------------
@dataclass
class CpSatResult:
    status: str  # "OPTIMAL", "FEASIBLE" or "UNKNOWN"
    offsets: np.ndarray  # (n,) byte offset per buffer, -1 = slow memory
    objective_frac: float  # benefit placed by the returned mapping, exact (not the scaled objective)
    bound_frac: float  # upper bound on the benefit fraction proven by the solver
    wall_s: float

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"


def solve_cpsat(
    inst: Instance, time_limit_s: float = 10.0, workers: int = 2, seed: int = 0, hint: bool = True
) -> CpSatResult:
    """Maximise the benefit placed with OR-Tools CP-SAT.

    Model: per buffer a presence literal ``y_i`` and an offset ``x_i`` (a multiple of its alignment in
    ``[0, C - s_i]``); optional fixed-size intervals in time and address joined by ``AddNoOverlap2D``;
    the cumulative cut ``sum_{i live at t} s_i y_i <= C`` (``AddCumulative``), which tightens the LP
    bound; objective ``max sum w_i y_i`` with benefits scaled to integers. The best mapping of the shipped
    heuristics (best fit in the three orders, first fit) is given as a hint and kept if the solver returns
    nothing better, so the oracle never reports less than any of them.
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    n, cap = inst.n, int(inst.capacity)
    total = float(inst.benefit.sum())
    scale = 10_000_000 / total if total > 0 else 0.0
    w = np.round(inst.benefit * scale).astype(np.int64)
    m = cp_model.CpModel()
    y, x, t_iv, a_iv = [], [], [], []
    for i in range(n):
        s, a = int(inst.size[i]), int(inst.alignment[i])
        fits = s <= cap
        yi = m.new_bool_var(f"y{i}")
        if not fits:
            m.add(yi == 0)
        hi = max((cap - s) // a, 0)
        k = m.new_int_var(0, hi, f"k{i}")
        xi = k if a == 1 else m.new_int_var(0, hi * a, f"x{i}")
        if a != 1:
            m.add(xi == a * k)
        y.append(yi)
        x.append(xi)
        a_iv.append(m.new_optional_fixed_size_interval_var(xi, s, yi, f"addr{i}"))
        t_iv.append(
            m.new_optional_fixed_size_interval_var(int(inst.start[i]), int(inst.end[i] - inst.start[i]), yi, f"time{i}")
        )
    m.add_no_overlap_2d(t_iv, a_iv)
    m.add_cumulative(t_iv, [int(s) for s in inst.size], cap)
    m.maximize(sum(int(w[i]) * y[i] for i in range(n)))
    # The best of the shipped heuristics is the hint and the fallback, so the oracle never reports less.
    heuristics = [best_fit_reference(inst, o) for o in ("xla", "size", "lifetime")] + [first_fit_reference(inst)]
    heuristic = max(heuristics, key=lambda off: evaluate_offsets(inst, off))
    if hint:
        for i in range(n):
            m.add_hint(y[i], bool(heuristic[i] >= 0))
            m.add_hint(x[i], int(max(heuristic[i], 0)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    status = solver.solve(m)
    name = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE"}.get(status, "UNKNOWN")
    heuristic_frac = evaluate_offsets(inst, heuristic)
    if name == "UNKNOWN":
        offsets, frac = heuristic, heuristic_frac
        bound = 1.0
    else:
        offsets = np.array([solver.value(x[i]) if solver.value(y[i]) else -1 for i in range(n)], dtype=np.int64)
        frac = evaluate_offsets(inst, offsets)
        bound = min(1.0, solver.best_objective_bound / (scale * total)) if total > 0 else 0.0
        # The scaled objective rounds benefits; the true-benefit bound can exceed it by at most n/2 units.
        bound = min(1.0, bound + 0.5 * n / 10_000_000)
        if frac < heuristic_frac:
            offsets, frac = heuristic, heuristic_frac
        if name == "OPTIMAL":
            bound = max(frac, min(bound, 1.0))
    return CpSatResult(name, offsets, frac, max(bound, frac), time.perf_counter() - t0)


@register_policy(FAMILY, "cpsat_oracle", "oracle", "OR-Tools CP-SAT optimum or best bound (a bound, not a heuristic)")
class CpSatOracle:
    """Solves the instance with CP-SAT at reset, then plays the solution.

    ``result`` holds the solver's mapping, whether it is proven optimal, and its bound. In ``order`` mode
    (the default override) the solution is replayed canonically: candidate 0 goes to slow memory when the
    solution leaves it there, otherwise the visible candidate with the lowest solution offset is placed
    (at its lowest viable offset, which is at or below the solution's). With ``K`` at least the number of
    buffers this reproduces the solution's benefit exactly; with a smaller window it may place less than
    ``result.objective_frac``, which stays the oracle's reported bound.
    """

    name = "cpsat_oracle"
    env_overrides = {"action_mode": "order"}

    def __init__(self, time_limit_s: float = 10.0, workers: int = 2, seed: int = 0) -> None:
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
        self.time_limit_s, self.workers, self.seed = float(time_limit_s), int(workers), int(seed)
        self.result: CpSatResult | None = None

    def reset(self, env: Any) -> None:
        self._env = env
        self.result = solve_cpsat(env.instance, self.time_limit_s, self.workers, self.seed)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env, st, plan = self._env, self._env.state, self.result.offsets
        if st.n_candidates == 0:
            return env.K
        if env.action_mode == "place":
            b = env.current_buffer()
            if plan[b] < 0:
                return env.K
            hits = np.flatnonzero(st.cand_offset[: st.n_candidates] == plan[b])
            return int(hits[0]) if hits.size else 0
        cands = st.cand_buffer[: st.n_candidates]
        if plan[cands[0]] < 0:
            return env.K
        planned = np.where(plan[cands] >= 0, plan[cands], np.iinfo(np.int64).max)
        return int(np.argmin(planned))
