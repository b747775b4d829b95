"""GPUAutoscaling-v1: choose how many GPU replicas serve an LLM inference workload, interval by interval.

Motivation: HARMONY (hierarchical multi-indicator forecasting + Bayesian scaling decisions, SJTU + Ant
Group, 2024) and the Kubernetes Horizontal Pod Autoscaler. Workloads: the Azure LLM Inference Trace 2023
(CC-BY 4.0; Patel et al., "Splitwise", ISCA'24), a calibrated synthetic generator, or any request trace.
The replicas are simulated by the shared LLM-serving core (``schedgym.sim.serving``); scaling, scoring and
the observation are the pure functions of ``dynamics.py``, which this Gymnasium wrapper and the native
vector env (``vector.py``) both call.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.horizon import HorizonSpec
from schedgym.envs.core.traces import (
    AZURE_TRACES,
    TraceWindow,
    check_workload,
    load_azure_trace,
    load_workload_trace,
)
from schedgym.envs.core.validation import check_choice, check_float, check_int
from schedgym.envs.gpu_autoscaling import dynamics as dyn
from schedgym.envs.gpu_autoscaling.dynamics import OBS_SQUASH, ScalingParams
from schedgym.envs.gpu_autoscaling.types import INDICATORS, AutoscalingState, ObsLayout, Workload
from schedgym.envs.gpu_autoscaling.workload import (
    AZURE_START,
    SyntheticParams,
    generate_synthetic,
    make_workload,
    scale_rate,
)
from schedgym.sim.serving import ServingFleet, ServingParams, build_profile, request_latencies
from schedgym.sim.serving.params import PREEMPTION, ROUTING
from schedgym.sim.serving.state import (
    EI_N_DONE,
    EI_PREEMPTIONS,
    R_PROVISIONING,
    R_READY,
)

__all__ = ["GPUAutoscalingEnv", "DEFAULT_DELTAS"]

DEFAULT_DELTAS: tuple[int, ...] = (-4, -2, -1, 0, 1, 2, 4)
#: Warm start: the initial fleet serves the busiest window of this length at this utilisation.
_WARM_WINDOW_S, _WARM_UTILISATION = 10.0, 0.5
_OBS_HIGH = OBS_SQUASH


class GPUAutoscalingEnv(HorizonSpec, SchedEnv):
    """Scale the GPU replicas of an LLM inference service: least cost at a met SLA.

    ## Description

    Every ``interval_s`` (60 s) the agent changes the number of replicas of an LLM service. A replica is
    one vLLM-style inference server on ``gpus_per_replica`` GPUs (tensor parallel), simulated by the
    serving core (``schedgym.sim.serving``): continuous batching (Orca, vLLM) of up to ``max_num_seqs``
    sequences, chunked prefill within ``max_num_batched_tokens`` per iteration (Sarathi-Serve), a paged KV
    cache sized from the model and GPUs (vLLM; preemption by recompute when it runs out), iteration times
    from the SplitwiseSim profile (llama2-70b on a100-80gb by default). Requests (Azure LLM trace 2023, a
    synthetic day, or any trace file) are routed on arrival to the ready replica with the fewest
    outstanding tokens. New replicas serve after a cold start drawn from a log-normal distribution
    (median ``cold_start_s``, shape ``cold_start_sigma``: weights from local disk in most launches, a long
    tail of slow pulls), billed from the launch. Removing replicas cancels provisioning ones first (newest
    first), then drains ready ones (fewest outstanding tokens first): a draining replica takes no new
    requests, finishes what it holds and is billed until then. Nothing is ever dropped.

    Default replica (``gpus_per_replica=4``): TP4 is the cheapest llama2-70b layout whose KV pool
    (~150 GB, ~458k tokens) does not bind at 64 running sequences of typical length, while TP2 leaves only
    ~18k tokens (batching collapses) and TP8 doubles the GPUs for ~30 % faster prefill. The token budget
    (1024) sits between Sarathi-Serve's strict (512) and relaxed (2048) settings: an iteration carrying a
    full prefill chunk lasts ~0.23 s plus attention to earlier chunks, so decodes keep a TPOT near the
    0.2 s SLO (about human reading speed, 5 tokens/s) while prefill keeps ~90 % of its 2048-token
    efficiency. ``max_replicas=48`` leaves room above the ~32 replicas a fixed fleet needs for azure-code's
    bursts (up to 67 requests in one second).

    Each request ``i`` has a TTFT SLO ``max(ttft_slo_floor_s, slo_scale x isolated TTFT_i)`` (its TTFT alone
    on an idle replica, DistServe's "SLO scale") and the TPOT SLO ``tpot_slo_s``. The service meets the SLA
    when at least ``sla_target`` of all requests finish within both.

    ## Action Space

    ``Discrete(len(deltas))``: action ``i`` changes the fleet (ready + provisioning replicas) by
    ``deltas[i]``; default ``deltas = (-4, -2, -1, 0, +1, +2, +4)``.

    ## Action Mask

    ``deltas[i]`` is legal iff the fleet stays inside ``[min_replicas, max_replicas]``. The "0" action is
    always legal and replaces an invalid one (with ``invalid_action_penalty``; never raises).

    ## Observation Space

    ``Box(float32, shape=(history * 10 + 6,), low=-1, high=10)``: the last ``history`` intervals (oldest
    first, zeros before the start) of 10 indicators a HARMONY-style forecaster sees, then 6 scalars. Each
    indicator is divided by a documented scale (``types.INDICATORS``) that puts the shipped workloads in
    ~[0, 5], then squashed as ``10 tanh(x / 10)`` (close to x up to 5, never above 10: bursts stay
    distinguishable instead of being clipped):

    | index | meaning (scale) |
    |---|---|
    | 10h+0 | arrivals per second / 2 (workload) |
    | 10h+1 | prompt tokens per second / 2000 (workload) |
    | 10h+2 | output tokens per second / 400 (workload) |
    | 10h+3 | KV blocks in use / KV blocks of serving replicas x 10 (resource) |
    | 10h+4 | waiting requests per ready replica / 2 (resource) |
    | 10h+5 | running sequences / (ready x max_num_seqs) x 10 (resource) |
    | 10h+6 | TTFT / TTFT SLO, median over the interval's completions, x 5 (performance) |
    | 10h+7 | same, 95th percentile, x 5 (performance) |
    | 10h+8 | TPOT / TPOT SLO, 95th percentile, x 5 (performance) |
    | 10h+9 | share of the interval's completions within their SLOs x 10 (performance) |
    | -6, -5, -4 | ready, provisioning, draining replicas / max_replicas x 10 |
    | -3, -2 | sin, cos of the time of day |
    | -1 | day of week / 6 (0 = Monday) |

    ## Rewards

    A Lagrangian of the task's rule (least cost subject to the SLA), in units of ``reward_scale_usd``:
    ``r_t = -(cost_t + lambda x (E_t - E_{t-1}))`` with ``cost_t`` the GPU cost billed in the interval
    (``gpu_hour_usd`` per GPU-hour) and ``E_t = max(0, V_t - A)`` the violations so far beyond the
    allowance ``A = floor((1 - sla_target) x N)`` (``N`` requests of the episode, ``V_t`` completions outside
    their SLOs plus rejected requests so far). The price ``lambda = C_max / max(A, 1)``, with ``C_max`` the
    cost of ``max_replicas`` for the whole episode. An episode that meets the SLA pays no violation price;
    one that misses it with attainment ``a`` pays ``C_max (sla_target - a) / (1 - sla_target)``, more than
    any fleet costs once ``a <= 2 sla_target - 1``; ``tests/test_gpu_autoscaling.py`` checks that on the
    shipped workloads every baseline that misses the SLA earns less than every one that meets it.

    ## Starting State

    ``initial_replicas`` ready replicas, nothing queued. Default: a warm fleet, as for a service that has
    been running through its peak: the replicas the episode's busiest 10-second window keeps busy
    (:meth:`burst_demand` at :meth:`planning_rates`) at 50 % utilisation, clipped to the bounds; policies
    scale it down from there. (A cold small fleet would make the first bursts of azure-code unservable
    for any policy, since a replica needs ~2 minutes to start.) The synthetic workload, ``rate_scale``
    thinning/replication of a trace and cold starts are drawn from the ``reset`` seed.

    ## Episode End

    Never terminated; truncated after the horizon (``ceil(trace length / interval_s)`` intervals, with
    a window ``ceil(trace_window_hours x 3600 / interval_s)``, or ``episode_days x 86400 / interval_s``
    for synthetic). On the last step every provisioning replica is
    cancelled and every ready one drained: requests still in the system finish (their latencies count)
    and the fleet is billed until it is empty. ``gym.make(...).spec.max_episode_steps`` is that horizon
    (``horizon_steps``): 1440 with the default kwargs (one synthetic day of 60 s intervals), 58 for
    ``azure-code`` and 59 for ``azure-conv`` (their hour of arrivals), set by the env from its kwargs
    rather than registered (a registered 1440 would cut ``episode_days=2`` in half; no ``TimeLimit``
    wrapper: the episode ends by itself then). ``gym.make(id, max_episode_steps=N)`` still truncates at
    ``N``, but without ``info["metrics"]`` (read ``env.unwrapped.metrics()``): the id has a native vector
    env (``GPUAutoscalingVectorEnv``), which Gymnasium allows only without registered wrappers.

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | workload | str | "synthetic" | "azure-code", "azure-conv", "synthetic" or "trace:<path>" (CSV/JSONL) |
    | trace_columns | dict | Azure names | ``{"time", "prompt_tokens", "output_tokens"}`` columns of a trace file |
    | trace_time_unit | str | "datetime" | "s", "ms" or "datetime" for a trace file |
    | trace_window_hours | float or None | None | trace workloads: replay a window this long; its offset is drawn from each ``reset`` seed (uniform over the trace), so N episodes replay N windows. None: the whole trace (the leaderboard's episode) |
    | trace_offset_hours | float or None | None | trace workloads: fix the window's start (with no ``trace_window_hours``: replay from there to the end); ``trace_offset_s`` holds the episode's |
    | rate_scale | float | 1.0 | multiply the arrival rate (thin or replicate a trace; scale the generator) |
    | mean_rate_per_s, burstiness, diurnal_amplitude, episode_days, token_trace | | 5.5, 0.3, 0.5, 1.0, "azure-conv" | synthetic knobs (``SyntheticParams``) |
    | start_hour, start_weekday | float, int | None | local time at t=0 (Azure traces: 18:17 Thursday; else 0:00 Monday) |
    | interval_s | float | 60 | decision interval, seconds |
    | history | int | 12 | intervals in the observation window |
    | model, hardware, gpus_per_replica | str, str, int | "llama2-70b", "a100-80gb", 4 | profile row; gpus_per_replica = tensor parallel |
    | max_num_seqs, max_num_batched_tokens | int | 64, 1024 | batch and per-iteration token budget of a replica (Description) |
    | preemption, routing | str | "recompute", "least_tokens" | serving-core options (``ServingParams``) |
    | cold_start_s, cold_start_sigma | float | 120, 0.3 | median and log-normal shape of the launch-to-ready time |
    | min_replicas, max_replicas | int | 1, 48 | fleet bounds (min_replicas >= 1: one replica always serves) |
    | initial_replicas | int or None | None | fleet at reset |
    | ttft_slo_floor_s, slo_scale, tpot_slo_s | float | 1.0, 5.0, 0.2 | SLO rule (Description) |
    | sla_target | float | 0.99 | share of requests within their SLOs that meets the SLA |
    | deltas | tuple[int] | (-4,-2,-1,0,1,2,4) | replica changes of the actions |
    | gpu_hour_usd | float | 3.0 | price of one GPU-hour (on-demand A100-80GB 2024-25 range; set yours) |
    | reward_scale_usd | float | 1.0 | dollars per unit of reward |

    ``gym.make("schedgym/GPUAutoscaling-v1", workload="azure-conv", rate_scale=4.0, max_replicas=48)``

    ## Info / Metrics

    Every step: ``ready``, ``provisioning``, ``draining``, ``requests`` (arrived in the interval),
    ``completed``, ``violations``, ``kv_utilisation``, ``waiting``, ``running``, ``cost_usd`` (the
    interval's). At the episode end ``info["metrics"]``:

    - ``cost_usd`` (GPU cost), ``gpu_hours``, ``sla_attainment`` (requests within their SLOs / all
      requests), ``sla_met`` (1.0 iff attainment >= sla_target), ``requests``, ``requests_infeasible``
      (requests no fleet can serve within their SLO: 0 under the default rule), ``preemptions``;
    - ``cost_lower_bound_usd``: a proven lower bound on the cost of any policy that meets the SLA.
      Proof: every iteration of the serving core lasts at least ``rho_p`` replica-seconds per prompt token
      and ``rho_o`` per decode token it processes (``workload.token_cost_lower_bounds``), so serving request
      ``i`` keeps some replica busy at least ``w_i = rho_p p_i + rho_o (o_i - 1)`` (recomputation and
      swaps only add). A policy that meets the SLA finishes at least ``ceil(sla_target N)`` requests, so
      the fleet is busy at least the sum ``W`` of the ``ceil(sla_target N)`` smallest ``w_i``; a replica is
      billed whenever it is busy, and at least ``min_replicas`` are billed at every instant of the
      horizon ``H``. Hence cost >= ``gpu_hour_usd x gpus_per_replica x max(W, min_replicas H) / 3600``.
    - ``ttft_p50_s``, ``ttft_p99_s``, ``tpot_p99_s`` (over finished requests), ``mean_utilisation``
      (busy / billed replica-seconds), ``scaling_actions``, ``extrapolated_frac`` (prompts outside the
      profile's measured sweep), ``energy_kwh`` (GPU energy: phase power while iterating, idle power
      otherwise).

    ## Version History

    - v1: the serving core (per-replica batching, paged KV, draining, cold-start distribution), SLOs
      scaled by isolated latency, scoring on cost at a met SLA, a proven cost lower bound.
    - v0: a pooled fluid FIFO queue with a fixed TTFT SLO (removed).
    """

    #: Frames a second ``render()`` keeps up with: 0.26 s per rgb_array frame measured by
    #: ``benchmarks/render_time.py`` (the figure is rebuilt every call).
    metadata = {**SchedEnv.metadata, "render_fps": 3}

    def __init__(
        self,
        workload: str = "synthetic",
        *,
        trace_columns: dict[str, str] | None = None,
        trace_time_unit: str = "datetime",
        trace_window_hours: float | None = None,
        trace_offset_hours: float | None = None,
        rate_scale: float = 1.0,
        mean_rate_per_s: float = 5.5,
        burstiness: float = 0.3,
        diurnal_amplitude: float = 0.5,
        episode_days: float = 1.0,
        token_trace: str = "azure-conv",
        start_hour: float | None = None,
        start_weekday: int | None = None,
        interval_s: float = 60.0,
        history: int = 12,
        model: str = "llama2-70b",
        hardware: str = "a100-80gb",
        gpus_per_replica: int = 4,
        max_num_seqs: int = 64,
        max_num_batched_tokens: int = 1024,
        preemption: str = "recompute",
        routing: str = "least_tokens",
        cold_start_s: float = 120.0,
        cold_start_sigma: float = 0.3,
        min_replicas: int = 1,
        max_replicas: int = 48,
        initial_replicas: int | None = None,
        ttft_slo_floor_s: float = 1.0,
        slo_scale: float = 5.0,
        tpot_slo_s: float = 0.2,
        sla_target: float = 0.99,
        deltas: tuple[int, ...] | list[int] = DEFAULT_DELTAS,
        gpu_hour_usd: float = 3.0,
        reward_scale_usd: float = 1.0,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        check_workload(workload, generated=("synthetic",))
        self.workload_name = workload
        self.rate_scale = check_float("rate_scale", rate_scale, low=0.0, low_inclusive=False, high=1000.0)
        self.interval_s = check_float("interval_s", interval_s, low=1.0, high=86400.0)
        self.history = check_int("history", history, low=1, high=1440)
        self.cold_start_s = check_float("cold_start_s", cold_start_s, low=0.0, high=86400.0)
        self.cold_start_sigma = check_float("cold_start_sigma", cold_start_sigma, low=0.0, high=3.0)
        self.max_replicas = check_int("max_replicas", max_replicas, low=1, high=4096)
        self.min_replicas = check_int("min_replicas", min_replicas, low=1, high=self.max_replicas)
        self.initial_replicas = (
            None
            if initial_replicas is None
            else check_int("initial_replicas", initial_replicas, low=self.min_replicas, high=self.max_replicas)
        )
        self.ttft_slo_floor_s = check_float("ttft_slo_floor_s", ttft_slo_floor_s, low=0.0, low_inclusive=False)
        self.slo_scale = check_float("slo_scale", slo_scale, low=0.0, low_inclusive=False)
        self.tpot_slo_s = check_float("tpot_slo_s", tpot_slo_s, low=0.0, low_inclusive=False)
        self.sla_target = check_float("sla_target", sla_target, low=0.0, high=1.0, high_inclusive=False)
        self.gpu_hour_usd = check_float("gpu_hour_usd", gpu_hour_usd, low=0.0)
        self.reward_scale_usd = check_float("reward_scale_usd", reward_scale_usd, low=0.0, low_inclusive=False)
        try:
            deltas_t = tuple(int(d) for d in deltas)
        except (TypeError, ValueError):
            raise ValueError(f"deltas must be a sequence of integers containing 0, got {deltas!r}") from None
        if 0 not in deltas_t or len(set(deltas_t)) != len(deltas_t) or any(float(d) != d for d in deltas):
            raise ValueError(f"deltas must be distinct integers including 0, got {deltas!r}")
        self.deltas = np.asarray(deltas_t, dtype=np.int64)
        self._noop_action = int(np.flatnonzero(self.deltas == 0)[0])
        check_choice("preemption", preemption, PREEMPTION)
        check_choice("routing", routing, ROUTING)
        try:
            self.serving = ServingParams.make(
                model=model,
                hardware=hardware,
                tensor_parallel=check_int("gpus_per_replica", gpus_per_replica),
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                preemption=preemption,
                routing=routing,
            )
        except ValueError as exc:  # the env calls the tensor-parallel degree gpus_per_replica
            raise ValueError(str(exc).replace("tensor_parallel", "gpus_per_replica")) from None
        self.gpus_per_replica = int(gpus_per_replica)
        self.profile = build_profile(self.serving)

        self.trace_window: TraceWindow | None = None
        #: Where the current episode's window starts in the trace, seconds (0 for synthetic / the whole trace).
        self.trace_offset_s = 0.0
        if workload == "synthetic":
            if trace_window_hours is not None or trace_offset_hours is not None:
                raise ValueError("trace_window_hours and trace_offset_hours apply to trace workloads only; "
                                 "the synthetic workload sets its length with episode_days")
            self.synthetic: SyntheticParams | None = SyntheticParams(
                mean_rate_per_s=check_float("mean_rate_per_s", mean_rate_per_s, low=0.0, low_inclusive=False)
                * self.rate_scale,
                burstiness=check_float("burstiness", burstiness, low=0.0, high=1.0),
                diurnal_amplitude=check_float("diurnal_amplitude", diurnal_amplitude, low=0.0, high=1.0),
                episode_days=check_float("episode_days", episode_days, low=1.0 / 1440.0, high=366.0),
                start_hour=0.0 if start_hour is None else check_float("start_hour", start_hour, low=0.0, high=24.0),
                start_weekday=0 if start_weekday is None else check_int("start_weekday", start_weekday, low=0, high=6),
                token_trace=check_choice("token_trace", token_trace, sorted(AZURE_TRACES)),
            )
            load_azure_trace(self.synthetic.token_trace)
            self._horizon_s = math.ceil(self.synthetic.episode_days * 86400.0 / self.interval_s) * self.interval_s
            self._start = (self.synthetic.start_hour, self.synthetic.start_weekday)
        else:
            self.synthetic = None
            check_choice("trace_time_unit", trace_time_unit, ["s", "ms", "datetime"])
            self._trace = load_workload_trace(workload, trace_columns, trace_time_unit)
            self.trace_window = TraceWindow.make(self._trace, trace_window_hours, trace_offset_hours)
            self._horizon_s = max(1, math.ceil((self.trace_window.length_s + 1e-9) / self.interval_s)) * self.interval_s
            default_start = AZURE_START.get(workload, (0.0, 0))
            self._start = (
                default_start[0] if start_hour is None else check_float("start_hour", start_hour, low=0.0, high=24.0),
                default_start[1] if start_weekday is None else check_int("start_weekday", start_weekday, low=0, high=6),
            )
        self.n_steps = int(round(self._horizon_s / self.interval_s))
        self.n_slots = 2 * self.max_replicas + 8  # draining replicas keep their slot until released
        self.replica_cost_per_s_usd = self.gpu_hour_usd * self.gpus_per_replica / 3600.0
        self.layout = ObsLayout(self.history)
        #: What the dynamics (``dynamics.py``) read of the kwargs.
        self.params = ScalingParams(
            interval_s=self.interval_s,
            n_steps=self.n_steps,
            deltas=self.deltas,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            cold_start_s=self.cold_start_s,
            cold_start_sigma=self.cold_start_sigma,
            tpot_slo_s=self.tpot_slo_s,
            sla_target=self.sla_target,
            replica_cost_per_s_usd=self.replica_cost_per_s_usd,
            reward_scale_usd=self.reward_scale_usd,
            max_num_seqs=self.serving.max_num_seqs,
        )
        low = np.zeros(self.layout.size, dtype=np.float32)
        low[-3:-1] = -1.0
        self.observation_space = gym.spaces.Box(low=low, high=np.float32(_OBS_HIGH), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.deltas))
        self._fleet: ServingFleet | None = None

    @property
    def horizon_steps(self) -> int:
        """Intervals of an episode: the env truncates itself after exactly this many steps."""
        return self.n_steps

    # ------------------------------------------------------------------ episode construction
    def _episode_trace(self):
        if self.synthetic is not None:
            return generate_synthetic(self.synthetic, self.np_random)
        # draw_offset uses the rng only to draw a window: the whole-trace episode (leaderboard) keeps its stream.
        self.trace_offset_s = self.trace_window.draw_offset(self.np_random)
        return scale_rate(self.trace_window.cut(self._trace, self.trace_offset_s), self.rate_scale, self.np_random)

    def _reset(self, options: dict[str, Any] | None) -> None:
        trace = self._episode_trace()
        # A window later in the trace starts later in the day (the observation's clock follows it).
        start_h = self._start[0] + self.trace_offset_s / 3600.0
        wl = make_workload(
            trace,
            self.serving,
            self.profile,
            interval_s=self.interval_s,
            horizon_s=self._horizon_s,
            ttft_slo_floor_s=self.ttft_slo_floor_s,
            slo_scale=self.slo_scale,
            tpot_slo_s=self.tpot_slo_s,
            start_hour=start_h % 24.0,
            start_weekday=self._start[1] + int(start_h // 24.0),
        )
        fleet = ServingFleet(
            self.serving, [(wl.arrival_s, wl.prompt_tokens, wl.output_tokens)], self.n_slots, profile=self.profile
        )
        if self.initial_replicas is not None:
            initial = self.initial_replicas
        else:
            peak = float(np.max(self.burst_demand(wl, _WARM_WINDOW_S), initial=0.0))
            initial = int(np.clip(math.ceil(peak / _WARM_UTILISATION - 1e-9), self.min_replicas, self.max_replicas))
        for _ in range(initial):
            fleet.launch(0, 0.0, 0.0)
        n = self.n_steps
        self._fleet = fleet
        allowance, lambda_usd = dyn.episode_prices(self.params, wl)
        self.state = AutoscalingState(
            workload=wl,
            fleet=fleet.state,
            step=0,
            n_resolved=0,
            met=0,
            violations=0,
            rejected=0,
            scaling_actions=0,
            allowance=allowance,
            lambda_usd=lambda_usd,
            billed_s=0.0,
            busy_s=0.0,
            history=np.zeros((self.history, len(INDICATORS)), dtype=np.float32),
            **{name: np.zeros(n) for name in _LOGS},
        )

    def _after_restore(self) -> None:
        if self._fleet is not None:  # the fleet object wraps the restored arrays
            self._fleet.state = self.state.fleet

    # ------------------------------------------------------------------ capacity planning helpers
    def planning_rates(self) -> tuple[float, float]:
        """Replica-seconds of one prompt token (in a full prefill chunk) and of one output token (in a decode
        batch of ``max_num_seqs // 4``): the per-token costs capacity planning divides demand by."""
        sp = self.serving
        prompt = self.profile.prefill_s(sp.max_num_batched_tokens) / sp.max_num_batched_tokens
        b = max(1, sp.max_num_seqs // 4)
        return prompt, float(self.profile.decode_base[b] / b)

    def demand_replicas(self, prompt_tokens: Any, output_tokens: Any, seconds: float) -> Any:
        """Replicas kept busy by ``prompt_tokens`` and ``output_tokens`` arriving over ``seconds``."""
        rp, ro = self.planning_rates()
        return (np.asarray(prompt_tokens) * rp + np.asarray(output_tokens) * ro) / seconds

    def burst_demand(self, wl: Workload, window_s: float) -> np.ndarray:
        """Per decision interval, the largest :meth:`demand_replicas` over windows of ``window_s`` inside it."""
        sub = max(1, int(round(self.interval_s / window_s)))
        n_bins = self.n_steps * sub
        k = np.minimum((wl.arrival_s / (self.interval_s / sub)).astype(np.int64), n_bins - 1)
        prompt = np.bincount(k, weights=wl.prompt_tokens, minlength=n_bins)
        output = np.bincount(k, weights=wl.output_tokens, minlength=n_bins)
        return self.demand_replicas(prompt, output, self.interval_s / sub).reshape(self.n_steps, sub).max(axis=1)

    # ------------------------------------------------------------------ fleet helpers (public telemetry)
    @property
    def fleet(self) -> ServingFleet:
        assert self._fleet is not None, "call reset() first"
        return self._fleet

    @property
    def now_s(self) -> float:
        return self.state.step * self.interval_s

    @property
    def fleet_size(self) -> int:
        """Ready + provisioning replicas (what the actions change; draining ones are on their way out)."""
        return dyn.fleet_size(self.state)

    @property
    def ready(self) -> int:
        return self.fleet.count(0, R_READY)

    @property
    def provisioning(self) -> int:
        return self.fleet.count(0, R_PROVISIONING)

    def _action_mask(self) -> np.ndarray:
        return dyn.action_mask(self.params, self.state)

    def _default_action(self) -> int:
        return self._noop_action

    # ------------------------------------------------------------------ dynamics
    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        self.fleet.advance(self._start_interval(action))
        return self._finish_interval()

    # A step is split around the serving core's advance so that the native vector env
    # (:mod:`.vector`) can advance every sub-env's fleet in one kernel call between the two halves.
    def _start_interval(self, action: int) -> float:
        return dyn.start_interval(self.params, self.state, self.fleet, action, self.np_random)

    def _finish_interval(self) -> tuple[float, bool, bool, dict[str, Any]]:
        reward, last, info = dyn.finish_interval(self.params, self.state, self.fleet, self.np_random)
        return reward, False, last, info

    def _observe(self) -> np.ndarray:
        return dyn.observe(self.params, self.state, self.fleet)

    # ------------------------------------------------------------------ metrics
    def cost_lower_bound_usd(self) -> float:
        """The proven lower bound of the class docstring (Metrics)."""
        wl = self.state.workload
        need = int(math.ceil(self.sla_target * len(wl) - 1e-9))
        w = float(np.sum(np.sort(wl.work_lb_s)[:need]))
        return self.replica_cost_per_s_usd * max(w, self.min_replicas * wl.horizon_s)

    def metrics(self) -> dict[str, float]:
        s = self.state
        wl = s.workload
        st = s.fleet
        fleet = self.fleet
        n = len(wl)
        ids = st.done_ids[0, : int(st.ei[0, EI_N_DONE])]
        ttft, tpot, _ = request_latencies(st, 0, ids, wl.output_tokens)
        billed = fleet.billed_s(0)
        busy = fleet.busy_s(0)
        idle_w = self.serving.power_w[0] * self.gpus_per_replica
        energy_j = fleet.busy_energy_j(0) + idle_w * max(billed - busy, 0.0)
        attainment = s.met / n if n else 1.0
        return {
            "cost_usd": float(billed * self.replica_cost_per_s_usd),
            "gpu_hours": float(billed * self.gpus_per_replica / 3600.0),
            "sla_attainment": float(attainment),
            "sla_met": float(attainment >= self.sla_target),
            "requests": float(n),
            "requests_infeasible": float(np.count_nonzero(wl.infeasible)),
            "preemptions": float(st.ei[0, EI_PREEMPTIONS]),
            "cost_lower_bound_usd": float(self.cost_lower_bound_usd()),
            "ttft_p50_s": float(np.percentile(ttft, 50.0)) if ttft.size else 0.0,
            "ttft_p99_s": float(np.percentile(ttft, 99.0)) if ttft.size else 0.0,
            "tpot_p99_s": float(np.percentile(tpot, 99.0)) if tpot.size else 0.0,
            "mean_utilisation": float(busy / billed) if billed > 0 else 0.0,
            "scaling_actions": float(s.scaling_actions),
            "extrapolated_frac": float(np.mean(wl.extrapolated)) if n else 0.0,
            "energy_kwh": float(energy_j / 3.6e6),
        }

    # ------------------------------------------------------------------ rendering
    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.gpu_autoscaling.render import render_rgb

        return render_rgb(self)

    def _render_ansi(self) -> str:
        from schedgym.envs.gpu_autoscaling.render import render_ansi

        return render_ansi(self)


_LOGS = (
    "log_kv",
    "log_waiting",
    "log_running",
    "log_ready",
    "log_provisioning",
    "log_draining",
    "log_target",
    "log_completed",
    "log_violations",
    "log_billed_s",
    "log_busy_s",
    "log_ttft_p95",
)



