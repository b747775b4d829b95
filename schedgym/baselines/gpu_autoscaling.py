"""Baselines of GPUAutoscaling-v1: fixed fleet, Kubernetes HPA, KEDA-style queue scaling, predictive,
HARMONY-style Bayesian decision, and a perfect-foresight best-known plan (``oracle``).

Every runnable policy reads only the telemetry of *past* intervals from the env's public state (what an
operator's monitoring shows: the per-interval logs, the observation's arrival counters and the fleet), except
two hindsight policies, registered as oracles: ``static_peak`` (the fixed fleet an operator sizes from last
week's peak, but sized by replaying the scored episode itself, so it knows that episode's bursts) and
``oracle`` (perfect foresight; a best-known reference, not a bound: the proven bound is the env's
``cost_lower_bound_usd`` metric).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from scipy import stats

from schedgym.baselines import register_policy
from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv

__all__ = [
    "StaticPeakPolicy",
    "StaticMaxPolicy",
    "StaticHistoryPolicy",
    "HPAPolicy",
    "QueueKEDAPolicy",
    "PredictivePolicy",
    "BayesianPolicy",
    "OraclePolicy",
    "action_towards",
    "replay",
    "RUNNABLE",
]

FAMILY = "GPUAutoscaling"
#: The baselines a user could run (the oracle takes the cheapest SLA-meeting plan among them and its own).
RUNNABLE = ("static_peak", "hpa", "queue_keda", "predictive", "bayesian")


def action_towards(env: GPUAutoscalingEnv, target: int) -> int:
    """The legal action whose fleet size lands closest to ``target`` (ties: the smaller change)."""
    legal = np.flatnonzero(env.action_masks())
    after = env.fleet_size + env.deltas[legal]
    gap = np.abs(after - int(target)) * 1000 + np.abs(env.deltas[legal])
    return int(legal[int(np.argmin(gap))])


def _clip(env: GPUAutoscalingEnv, n: float) -> int:
    return int(np.clip(math.ceil(n - 1e-9), env.min_replicas, env.max_replicas))


def demand_replicas(env: GPUAutoscalingEnv, prompt_tokens: Any, output_tokens: Any) -> Any:
    """Replicas kept busy by one interval's arriving tokens (``env.demand_replicas``)."""
    return env.demand_replicas(prompt_tokens, output_tokens, env.interval_s)


def replay(env: GPUAutoscalingEnv, actions_or_policy: Any) -> tuple[dict[str, float], list[int]]:
    """Run the rest of ``env``'s episode on a deep copy, with a fixed action list or a ``(env) -> action``
    function; returns the final metrics and the actions taken."""
    sim = copy.deepcopy(env)
    taken: list[int] = []
    while True:
        if callable(actions_or_policy):
            a = int(actions_or_policy(sim))
        else:
            a = int(actions_or_policy[len(taken)])
        taken.append(a)
        _, _, term, trunc, info = sim.step(a)
        if term or trunc:
            return info["metrics"], taken


def _by_target(targets: np.ndarray):
    return lambda sim: action_towards(sim, int(targets[sim.state.step]))


# ---------------------------------------------------------------------------------------------- static
@register_policy(
    FAMILY, "static_peak", "oracle", "hindsight: the smallest fixed fleet that meets the SLA when the scored episode is replayed"
)
class StaticPeakPolicy:
    """A fixed fleet: the smallest constant size whose episode meets ``sla_target``, found by bisection on
    copies of the env (attainment grows with the fleet). Falls back to ``max_replicas``.

    Registered as an oracle, not a heuristic: the copies replay the scored episode, so the size is chosen
    knowing its bursts (an operator would size on last week's trace and meet this week's unseen). It stays
    gpu-azure's reference because a fixed peak-sized fleet is how services are provisioned today."""

    def __init__(self) -> None:
        self.name = "static_peak"
        self.size = 0

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        lo, hi = env.min_replicas, env.max_replicas
        if not replay(env, _by_target(np.full(env.n_steps, hi)))[0]["sla_met"]:
            self.size = hi
            return
        while lo < hi:  # invariant: hi meets the SLA
            mid = (lo + hi) // 2
            if replay(env, _by_target(np.full(env.n_steps, mid)))[0]["sla_met"]:
                hi = mid
            else:
                lo = mid + 1
        self.size = hi

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return action_towards(self.env, self.size)


@register_policy(FAMILY, "static_max", "heuristic", "a fixed fleet of max_replicas (provisioning for the worst case)")
class StaticMaxPolicy:
    """A fixed fleet of ``max_replicas``: what an operator who cannot size from history provisions so that
    no burst finds the fleet short. The causal counterpart of ``static_peak`` (which sizes its fixed fleet
    on the scored episode itself): it keeps the SLA wherever any fleet within the cap can, at the highest
    cost."""

    def __init__(self) -> None:
        self.name = "static_max"

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return action_towards(self.env, self.env.max_replicas)


#: Fixed-fleet sizes found by ``static_history``, per (history kwargs, seeds, scored env's SLA and bounds).
_HISTORY_SIZES: dict[tuple, int] = {}


@register_policy(
    FAMILY, "static_history", "heuristic",
    "a fixed fleet sized on past days: the smallest that meets the SLA on every train-split afternoon",
)  # fmt: skip
class StaticHistoryPolicy:
    """A fixed fleet sized from history, as an operator sizes one from last week's peak: the smallest
    constant size that meets the scored env's ``sla_target`` on every episode of ``history_kwargs`` x
    ``history_seeds`` (default: gpu-azure's train split, synthetic 6-hour afternoons of seeds 1-3), found by
    ``static_peak``'s bisection on those episodes, never on the scored one. The causal counterpart of
    ``static_peak``: it keeps the SLA on a scored episode only if that episode's bursts are no worse than
    the history's."""

    def __init__(self, history_kwargs: dict[str, Any] | None = None, history_seeds: tuple[int, ...] = (1, 2, 3)) -> None:
        self.name = "static_history"
        self.history_kwargs = dict(history_kwargs or {"workload": "synthetic", "episode_days": 0.25, "start_hour": 10.0})
        if not history_seeds or any(isinstance(x, bool) or int(x) < 0 for x in history_seeds):
            raise ValueError(f"history_seeds must be non-empty non-negative ints, got {history_seeds!r}")
        self.history_seeds = tuple(int(x) for x in history_seeds)
        self.size = 0

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        bounds = {"sla_target": env.sla_target, "min_replicas": env.min_replicas, "max_replicas": env.max_replicas}
        key = (tuple(sorted(self.history_kwargs.items())), self.history_seeds, tuple(sorted(bounds.items())))
        if key not in _HISTORY_SIZES:
            size = env.min_replicas
            for seed in self.history_seeds:
                past = GPUAutoscalingEnv(**{**self.history_kwargs, **bounds})
                past.reset(seed=seed)
                sizer = StaticPeakPolicy()
                sizer.reset(past)
                size = max(size, sizer.size)
            _HISTORY_SIZES[key] = size
        self.size = _HISTORY_SIZES[key]

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return action_towards(self.env, self.size)


# ---------------------------------------------------------------------------------------------- HPA
@register_policy(FAMILY, "hpa", "heuristic", "Kubernetes HPA on running-batch occupancy (tolerance, stabilisation, rate limits)")
class HPAPolicy:
    """The Kubernetes Horizontal Pod Autoscaler rule on the running batch.

    Metric: running sequences / (ready replicas x ``max_num_seqs``) at the end of the last interval (vLLM's
    ``num_requests_running``; the GKE guidance for LLM servers scales on batch size when latency matters,
    https://cloud.google.com/kubernetes-engine/docs/best-practices/machine-learning/inference/autoscaling).
    KV utilisation would be the other choice, but with the default TP4 replica it stays low until
    queues are long, so it reacts late. Default target 0.2 (about 13 of 64 sequences per replica).

    Algorithm (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/):
    ``desired = ceil(ready * metric / target)``, no change within the tolerance 0.1; scale-down to the
    highest recommendation of the last 300 s (stabilisation window); scale-up at most ``max(4, 100 %)``
    per 15 s period, compounded over one decision interval; provisioning replicas are kept.
    """

    def __init__(self, target: float = 0.2, tolerance: float = 0.1, downscale_window_s: float = 300.0,
                 period_s: float = 15.0) -> None:
        self.name = "hpa"
        self.target = float(target)
        self.tolerance = float(tolerance)
        self.window_s = float(downscale_window_s)
        self.period_s = float(period_s)

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        self.recommendations: list[tuple[float, int]] = []

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        s = env.state
        current = env.fleet_size
        if s.step == 0:
            return action_towards(env, current)
        t = s.step - 1
        ready = max(int(s.log_ready[t]), 1)
        metric = s.log_running[t] / (ready * env.serving.max_num_seqs)
        ratio = metric / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            desired = current
        else:
            desired = math.ceil(ready * ratio - 1e-9) + env.provisioning
        now = env.now_s
        self.recommendations.append((now, desired))
        self.recommendations = [(tt, r) for tt, r in self.recommendations if now - tt <= self.window_s]
        if desired < current:
            desired = min(current, max(r for _, r in self.recommendations))
        limit = current
        for _ in range(max(1, int(env.interval_s // self.period_s))):
            limit += max(4, limit)
        return action_towards(env, _clip(env, min(desired, limit)))


# ---------------------------------------------------------------------------------------------- KEDA
@register_policy(FAMILY, "queue_keda", "heuristic", "KEDA-style scaling on waiting + running requests per replica")
class QueueKEDAPolicy:
    """KEDA on vLLM's queue metrics: ``desired = ceil((num_requests_waiting + num_requests_running) /
    target_per_replica)`` (an ``AverageValue`` target), scale-up at once, scale-down through the HPA 300 s
    stabilisation window, and to ``min_replicas`` after ``cooldown_s`` without traffic (KEDA
    ``cooldownPeriod``, default 300 s; https://keda.sh/docs/latest/reference/scaledobject-spec/)."""

    def __init__(self, target_per_replica: float = 12.0, cooldown_s: float = 300.0) -> None:
        self.name = "queue_keda"
        self.target = float(target_per_replica)
        self.cooldown_s = float(cooldown_s)

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        self.recommendations: list[tuple[float, int]] = []
        self.last_active_s = 0.0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        s = env.state
        current = env.fleet_size
        if s.step == 0:
            return action_towards(env, current)
        t = s.step - 1
        metric = s.log_waiting[t] + s.log_running[t]
        now = env.now_s
        if metric > 0 or s.workload.interval_requests[t] > 0:
            self.last_active_s = now
        if now - self.last_active_s >= self.cooldown_s:
            return action_towards(env, env.min_replicas)
        desired = math.ceil(metric / self.target - 1e-9)
        self.recommendations.append((now, desired))
        self.recommendations = [(tt, r) for tt, r in self.recommendations if now - tt <= 300.0]
        if desired < current:
            desired = min(current, max(r for _, r in self.recommendations))
        return action_towards(env, _clip(env, desired))


# ---------------------------------------------------------------------------------------------- predictive
@register_policy(FAMILY, "predictive", "heuristic", "Holt/seasonal-naive forecast + headroom, launched a cold start ahead")
class PredictivePolicy:
    """Predictive scaling in the style of AWS EC2 predictive scaling.

    Demand ``d_t`` (replicas busy with the last interval's arriving tokens, :func:`demand_replicas`) is
    forecast ``h = ceil(cold_start_s / interval_s) + 1`` intervals ahead by Holt's linear smoothing
    (``l_t = a d_t + (1-a)(l_{t-1} + b_{t-1})``, ``b_t = g (l_t - l_{t-1}) + (1-g) b_{t-1}``), and once a day
    has been seen the larger of that and the seasonal-naive value. Capacity
    ``forecast (1 + headroom) / target_utilisation`` is a floor; the reactive part (last demand plus the
    waiting queue) decides scale-in, so the forecast alone never scales in (the AWS rule).
    """

    def __init__(self, headroom: float = 0.3, target_utilisation: float = 0.5, alpha: float = 0.5,
                 gamma: float = 0.2) -> None:
        self.name = "predictive"
        self.headroom, self.target = float(headroom), float(target_utilisation)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        self.level: float | None = None
        self.trend = 0.0
        self.season_steps = int(round(86400.0 / env.interval_s))
        self.demand: list[float] = []

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        s = env.state
        if s.step == 0:
            return action_towards(env, env.fleet_size)
        t = s.step - 1
        wl = s.workload
        d = demand_replicas(env, wl.interval_prompt[t], wl.interval_output[t])
        self.demand.append(d)
        if self.level is None:
            self.level = d
        else:
            prev = self.level
            self.level = self.alpha * d + (1 - self.alpha) * (self.level + self.trend)
            self.trend = self.gamma * (self.level - prev) + (1 - self.gamma) * self.trend
        h = math.ceil(env.cold_start_s / env.interval_s) + 1
        forecast = max(0.0, self.level + h * self.trend)
        past = t + h - self.season_steps
        if past >= 0:
            forecast = max(forecast, self.demand[past])
        predicted = forecast * (1.0 + self.headroom) / self.target
        queue = s.log_waiting[t] / max(env.serving.max_num_seqs, 1)
        reactive = (d + queue) / self.target
        return action_towards(env, _clip(env, max(predicted, reactive)))


# ---------------------------------------------------------------------------------------------- Bayesian
@register_policy(FAMILY, "bayesian", "bayesian", "HARMONY-style: Gamma-Poisson predictive of token demand, quantile = sla_target")
class BayesianPolicy:
    """HARMONY-style Bayesian decision: a predictive distribution of the next intervals' token demand and the
    fewest replicas whose probability of being overloaded is below ``1 - sla_target``.

    Model: the request count ``N_t`` of an interval is Poisson(lambda) with a Gamma(alpha, beta) belief on
    lambda, updated online with a discount (power prior) ``delta`` so the belief tracks a drifting rate::

        alpha <- delta alpha + N_t,    beta <- delta beta + 1

    The interval in which a replica launched now first serves is ``h = ceil(cold_start_s / interval_s) + 1``
    steps ahead; its belief discounts ``h`` more times (same mean, more variance), and the posterior
    predictive is negative binomial ``NegBin(r = delta^h alpha, p = delta^h beta / (delta^h beta + 1))``.
    Token demand is ``N`` times the running mean work per request ``w`` (replica-seconds, from the observed
    prompt and output tokens). Decision, with ``q = sla_target`` (the quantile comes from the SLA target, not
    from prices)::

        n* = min n : P(N w <= n interval_s u) >= q  =  ceil(Q_q(N) w / (interval_s u)) + queue term

    where ``u`` is the utilisation at which a replica still meets its TTFT SLOs (default 0.5), and the queue
    term drains the waiting requests within one interval.
    """

    def __init__(self, discount: float = 0.8, target_utilisation: float = 0.5) -> None:
        self.name = "bayesian"
        self.discount = float(discount)
        self.target = float(target_utilisation)

    def reset(self, env: GPUAutoscalingEnv) -> None:
        self.env = env
        self.q = float(np.clip(env.sla_target, 0.5, 0.9999))
        self.alpha, self.beta = 1.0, 1e-3
        self.work_per_request_s: float | None = None

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        s = env.state
        if s.step == 0:
            return action_towards(env, env.fleet_size)
        t = s.step - 1
        wl = s.workload
        n_t = float(wl.interval_requests[t])
        self.alpha = self.discount * self.alpha + n_t
        self.beta = self.discount * self.beta + 1.0
        if n_t > 0:
            w = demand_replicas(env, wl.interval_prompt[t], wl.interval_output[t]) * env.interval_s / n_t
            self.work_per_request_s = w if self.work_per_request_s is None else 0.8 * self.work_per_request_s + 0.2 * w
        if self.work_per_request_s is None:
            return action_towards(env, env.fleet_size)
        h = math.ceil(env.cold_start_s / env.interval_s) + 1
        shrink = self.discount**h
        alpha_h, beta_h = self.alpha * shrink, self.beta * shrink
        quantile = float(stats.nbinom.ppf(self.q, alpha_h, beta_h / (beta_h + 1.0)))
        queue = s.log_waiting[t] * self.work_per_request_s / env.interval_s
        n_star = quantile * self.work_per_request_s / (env.interval_s * self.target) + queue
        return action_towards(env, _clip(env, n_star))


# ---------------------------------------------------------------------------------------------- oracle
@register_policy(FAMILY, "oracle", "oracle", "perfect foresight: cheapest SLA-meeting plan found with the simulator (best-known, not a bound)")
class OraclePolicy:
    """Perfect foresight of the episode's arrivals *and* of its cold starts (it replays copies of the env),
    searching fleet plans with the real simulator. A best-known reference, not a bound.

    1. Burst-aware demand: for each interval, the largest token demand (:func:`demand_replicas`) over
       sub-windows of ``window_s`` seconds inside it (arrivals known in advance).
    2. Plans: ``need_t(a) = ceil(a x demand_t)``; the fleet asked for at step ``s`` is
       ``max(need_s .. need_{s+k})`` (``k`` cold-start intervals ahead, so replicas are ready when needed).
    3. For each window, bisection on the scale ``a`` (attainment grows with it) finds the cheapest plan
       that meets the SLA, each candidate replayed on a copy of the env.
    4. The result is the cheapest SLA-meeting action sequence among its own plans and those of every runnable
       baseline (``RUNNABLE``) replayed on the same copy, so no runnable baseline that meets the SLA is
       cheaper. If nothing meets it, the plan with the highest attainment is kept.
    """

    def __init__(self, windows_s: tuple[float, ...] = (10.0, 60.0), iterations: int = 7) -> None:
        self.name = "oracle"
        self.windows_s = tuple(windows_s)
        self.iterations = int(iterations)
        self.label = "best-known"

    def reset(self, env: GPUAutoscalingEnv) -> None:
        from schedgym.baselines import make_policy

        self.env = env
        self.source = ""
        best: tuple[tuple[float, float], list[int], str] | None = None

        def consider(metrics: dict[str, float], actions: list[int], source: str) -> None:
            nonlocal best
            key = (0.0, metrics["cost_usd"]) if metrics["sla_met"] else (1.0, -metrics["sla_attainment"])
            if best is None or key < best[0]:
                best = (key, actions, source)

        for window in self.windows_s:
            demand = env.burst_demand(env.state.workload, window)
            lo, hi = 0.0, None
            a = 2.0
            for _ in range(self.iterations):
                m, acts = replay(env, _by_target(self._plan(env, demand, a)))
                consider(m, acts, f"plan(window={window:g}s, scale={a:.3g})")
                if m["sla_met"]:
                    hi = a
                else:
                    lo = a
                a = a * 2.0 if hi is None else 0.5 * (lo + hi)
        for name in RUNNABLE:
            pol = make_policy(name, "schedgym/GPUAutoscaling-v1")
            sim = copy.deepcopy(env)
            pol.reset(sim)
            obs = None
            m, acts = replay(sim, lambda e, p=pol: p.act(obs, {"action_mask": e.action_masks().astype(np.int8)}))
            consider(m, acts, name)
        assert best is not None
        self.actions = best[1]
        self.source = best[2]
        self._start = env.state.step

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.actions[self.env.state.step - self._start])

    @staticmethod
    def _plan(env: GPUAutoscalingEnv, demand: np.ndarray, scale: float) -> np.ndarray:
        need = np.clip(np.ceil(scale * demand - 1e-9), env.min_replicas, env.max_replicas).astype(np.int64)
        k = math.ceil(env.cold_start_s * math.exp(2.0 * env.cold_start_sigma) / env.interval_s)
        T = env.n_steps
        return np.array([need[s : min(T, s + k + 1)].max() for s in range(T)], dtype=np.int64)
