"""PowerCapping-v2: keep an oversubscribed row of LLM inference servers under its power budget.

Grounded in POLCA (Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers", Microsoft,
ASPLOS'24). The servers are replicas of the shared LLM-serving core (:mod:`schedgym.sim.serving`);
power and clock model: :mod:`.power_model`; arrivals: :mod:`.workload`; dynamics: :mod:`.dynamics`.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.horizon import HorizonSpec
from schedgym.envs.core.traces import AZURE_TRACES, TraceWindow, check_workload, load_workload_trace
from schedgym.envs.core.validation import check_choice, check_float, check_int
from schedgym.envs.power_capping import dynamics as dyn
from schedgym.envs.power_capping.batch_lp import BatchTable, saturated_server_table
from schedgym.envs.power_capping import power_model as pm
from schedgym.envs.power_capping.types import (
    C_ACTIVE_HP,
    C_ACTIVE_LP,
    C_BRAKE_EVENTS,
    C_BRAKE_START,
    C_BRAKE_UNTIL,
    C_COMMANDED,
    C_COMMANDED_EFFECTIVE,
    C_SECONDS_OVER,
    C_T,
    PowerCappingState,
    RowParams,
)
from schedgym.envs.power_capping.workload import RowRequests, base_trace, default_start_hour, row_requests
from schedgym.sim.serving import ServingParams, build_profile
from schedgym.sim.serving.params import PF_DECODE_W
from schedgym.sim.serving.state import QF_FINISH_T, QF_FIRST_T, RI_NRUN, RI_NWAIT

__all__ = [
    "PowerCappingEnv",
    "POLCA_T1",
    "POLCA_T2",
    "OBS_NAMES",
    "OBS_INDEX",
    "DEFAULT_RATE_SCALE",
    "DEFAULT_RATE_SCALE_SHIFTED",
]

#: POLCA's row-power thresholds (fraction of the budget): above T1 cap LP, above T2 cap LP harder then HP.
POLCA_T1, POLCA_T2 = 0.80, 0.89
#: POLCA's production measurement: an inference row peaks at 79 % of its provisioned power.
POLCA_INFERENCE_PEAK_FRAC = 0.79

#: Arrivals multiplier of each shipped workload for the provisioned row (``rate_scale=None``), measured
#: on v1's row (``lp_workload="interactive"``, ``trace_replication="jitter"``) so that an uncapped row of
#: ``provisioned_servers`` (default split, 0.3 per-server variation) peaks near POLCA's 79 % of its budget
#: over the episode (1-s power, seeds 0-2). The v2 defaults use ``DEFAULT_RATE_SCALE_SHIFTED``; their
#: measured peaks are in the class docstring ("Starting State"). Per server: azure-conv
#: 6.0 x 5.53 / 40 = 0.83 req/s (peaks 0.76-0.79, mean 0.57 of the budget); azure-code
#: 1.3 x 2.57 / 40 = 0.083 req/s (long prompts, short answers: peaks 0.77-0.79, mean 0.27);
#: synthetic (5.5 req/s mean, one hour before its 14:00 peak) 4.7 (peaks ~0.79, mean 0.59).
DEFAULT_RATE_SCALE = {"azure-conv": 6.0, "azure-code": 1.3, "synthetic": 4.7}
#: ``trace_replication="shifted"``: the same calibration with time-shifted copies of the trace (its
#: bursts no longer repeat in step, so a higher rate gives the same ~79 % peak): azure-conv 9.0 x 5.53 /
#: 40 = 1.24 req/s per server (peaks 0.76-0.80, mean 0.61; the largest 40-s rise of the 10-s mean power
#: is 0.04-0.08 of the budget, POLCA's production maximum is 0.118; "jitter" replication gives 0.25;
#: measured with v1's interactive LP). With v2's batch LP the HP servers keep this per-server load (the
#: LP servers run their backlog): peaks 0.79-0.82 on azure-conv, 40-s rise 0.04-0.05. Reproduce with
#: ``python benchmarks/power_calibration.py`` and
#: ``tests/test_power_capping.py::test_default_load_peaks_near_polca_79pct``.
DEFAULT_RATE_SCALE_SHIFTED = {"azure-conv": 9.0, "azure-code": 1.3, "synthetic": 4.7}
#: Copies of ``trace_replication="shifted"`` are shifted by up to this much (the hour's profile is kept
#: at the 5-minute scale; bursts of tens of seconds decorrelate).
REPLICATION_MAX_SHIFT_S = 300.0

#: Observation layout: (name, what, scale). Values are raw / scale, clipped to [-10, 10].
OBS_LAYOUT: tuple[tuple[str, str, float], ...] = (
    ("power_frac_now", "row power in the last second / budget", 1.0),
    ("power_frac_max_interval", "max row power over the last decision interval / budget", 1.0),
    ("power_frac_mean_interval", "mean row power over the last decision interval / budget", 1.0),
    ("power_frac_max_60s", "max row power over the last 60 s / budget", 1.0),
    ("power_frac_mean_60s", "mean row power over the last 60 s / budget", 1.0),
    ("hp_power_share", "HP servers' share of row power in the last second", 1.0),
    ("prefill_share_interval", "mean share of time the servers spent in prefill over the interval", 1.0),
    ("hp_waiting_per_server", "requests waiting per HP server / 8", 8.0),
    ("lp_waiting_per_server", "requests waiting per LP server / 8", 8.0),
    ("hp_running_per_server", "running sequences per HP server / 64 (max_num_seqs)", 64.0),
    ("lp_running_per_server", "running sequences per LP server / 64", 64.0),
    ("active_lp_clock_frac", "LP clock in force / 1410 MHz (0.204 while the brake holds)", 1.0),
    ("active_hp_clock_frac", "HP clock in force / 1410 MHz", 1.0),
    ("commanded_lp_clock_frac", "LP cap last commanded / 1410 MHz", 1.0),
    ("commanded_hp_clock_frac", "HP cap last commanded / 1410 MHz", 1.0),
    ("time_to_effect_frac", "seconds until the last command takes effect / actuation_delay_s", 1.0),
    ("brake_active", "1 while the brake holds or is scheduled", 1.0),
    ("brake_remaining_frac", "brake seconds remaining / brake_duration_s", 1.0),
    ("time_of_day_sin", "sin of the time of day", 1.0),
    ("time_of_day_cos", "cos of the time of day", 1.0),
    ("oversubscription", "n_servers / provisioned_servers", 1.0),
)
OBS_NAMES = tuple(name for name, _, _ in OBS_LAYOUT)
OBS_INDEX = {name: i for i, name in enumerate(OBS_NAMES)}
_OBS_SCALE = np.array([s for _, _, s in OBS_LAYOUT])
_SECONDS_PER_HOUR = 3600.0
#: The SplitwiseSim profile measured batches up to 64: decode never extrapolates.
_MAX_NUM_SEQS = 64


class PowerCappingEnv(HorizonSpec, SchedEnv):
    """A row of DGX-A100 LLM inference servers, oversubscribed under a power budget (POLCA).

    ## Description

    ``n_servers`` servers share a row whose power budget is sized for ``provisioned_servers`` at their
    rated peak (6.5 kW each; DGX-A100 datasheet). Each server is one replica of the shared serving core:
    llama2-70b on 8 x A100-80GB (TP8), continuous batching with chunked prefill (``max_num_seqs`` 64,
    2048 tokens per iteration), paged KV (1.3 M tokens, never binding here) and iteration latencies from
    the SplitwiseSim profile. A share ``hp_fraction`` of the servers serves high-priority (HP) requests:
    interactive inference, each server with its own arrival stream (the workload, scaled to the row, split
    by a router with per-server variation, :mod:`.workload`, so the servers' peaks do not coincide). The
    rest are low priority (LP): by default (``lp_workload="batch"``) backlogged batch servers (offline
    inference whose queue never empties, with the workload's token mix), whose throughput is what a cap
    takes from them. They are read from a table of one such server simulated on the serving core at each
    clock (:mod:`.batch_lp`), each LP server at its own phase. ``lp_workload="interactive"`` gives v1's LP
    class instead: open-loop request streams like HP's.

    Power (:mod:`.power_model`): idle + SM (~ f^3.74) + HBM parts per GPU, prefill compute-bound (time
    ~ 1/f, power spikes to TDP), decode memory-bound (70 % of its dynamic power is HBM, time
    ``1 + 0.1 (1/f - 1)``); ``ALPHA`` is calibrated to POLCA's "up to 20 % peak-power reduction for
    <= ~7 % performance loss". Row power is metered every second. Every ``decision_interval_s`` the agent
    commands a clock cap for the LP and the HP servers; it takes effect ``actuation_delay_s`` later
    (POLCA: out-of-band capping takes up to 40 s). If row power exceeds the budget in a second, the power
    brake fires ``brake_delay_s`` (<= 5) seconds later and holds every GPU at 288 MHz for
    ``brake_duration_s``; each firing is a brake event.

    An uncapped, brake-free reference row of the same servers runs on the same per-server streams in
    lockstep; performance loss is measured against it (POLCA's rule: HP within 1 %, LP within 2 %): HP on
    mean latency, batch LP on throughput (interactive LP on mean latency).

    ## Action Space

    ``Discrete(len(lp_caps_mhz) * len(hp_caps_mhz))``: action ``a`` commands LP cap
    ``lp_caps_mhz[a // len(hp_caps_mhz)]`` and HP cap ``hp_caps_mhz[a % len(hp_caps_mhz)]``. Defaults: LP
    in {1410, 1275, 1110, 900} MHz, HP in {1410, 1305, 1110} MHz (12 actions; POLCA's levels 1275/1110
    for LP and 1305 for HP); action 0 is "no cap". ``env.unwrapped.action_for_caps(lp, hp)`` gives an index.

    ## Action Mask

    Every action is always legal (all ones). An invalid action (out of range, not an integer) is
    replaced by the last commanded action ("change nothing") and costs ``invalid_action_penalty``.

    ## Observation Space

    ``Box(-10, 10, shape=(21,), float32)``: raw value / scale, clipped (``OBS_LAYOUT`` in this module;
    ``OBS_INDEX`` maps names to indices). Power fractions are row power / budget.

    | index | name | raw value | scale |
    |---|---|---|---|
    | 0-4 | power_frac_now, _max_interval, _mean_interval, _max_60s, _mean_60s | row power / budget | 1 |
    | 5 | hp_power_share | HP servers' share of row power, last second | 1 |
    | 6 | prefill_share_interval | share of server time in prefill over the interval | 1 |
    | 7, 8 | hp/lp_waiting_per_server | requests waiting per server | 8 |
    | 9, 10 | hp/lp_running_per_server | running sequences per server | 64 |
    | 11, 12 | active_lp/hp_clock_frac | clock in force / 1410 MHz | 1 |
    | 13, 14 | commanded_lp/hp_clock_frac | cap last commanded / 1410 MHz | 1 |
    | 15 | time_to_effect_frac | seconds until the last command acts / actuation_delay_s | 1 |
    | 16, 17 | brake_active, brake_remaining_frac | brake holding or scheduled; seconds left / duration | 1 |
    | 18, 19 | time_of_day_sin, _cos | time of day | 1 |
    | 20 | oversubscription | n_servers / provisioned_servers | 1 |

    ## Rewards

    The benchmark's rule, priced per decision (``N`` = decisions in the episode)::

        r = tokens processed by the row in the interval / (episode's tokens / N)
            - N * loss_penalty * (increase of excess_hp + excess_lp)
            - N * brake_penalty * (brake events triggered)
        excess_c = max(0, perf_loss_c(so far) - tolerance_c)    (tolerance: HP 1 %, LP 2 %)

    ``perf_loss_c`` is, for HP (and interactive LP), the class's time-integral of requests in system
    (Little's law: mean latency) against the reference row on the same arrivals, up to now; for batch LP
    ``1 - tokens / reference tokens`` so far (POLCA's LP throughput rule). The excess terms telescope, so the return
    is ``~N x served share - N x (loss_penalty x final excess + brake_penalty x brakes)``: each 1 % of
    loss beyond the rule costs ``loss_penalty`` % of the episode's token reward (default 10 %), each
    brake ``brake_penalty`` of it (default 20 %). Capping never adds tokens, so breaking the rule never
    pays (tested on the shipped workloads).

    ## Starting State

    HP servers empty at the episode start, batch LP servers busy from the first second (at their drawn
    phases), every server ready, no brake. The requests are drawn at ``reset(seed)`` (trace
    thinning/replication or the synthetic generator, then the per-server split). A command acts
    ``actuation_delay_s`` after it is issued, except the episode's first, which is in force at once: the
    row was under its controller before the episode began (without this, every controller would face 40 s
    uncapped with the LP servers at full power, and a deep row would brake before any policy could act).

    Default load: ``rate_scale=None`` uses ``DEFAULT_RATE_SCALE_SHIFTED`` (``DEFAULT_RATE_SCALE`` with
    ``trace_replication="jitter"``), measured so that an uncapped row of ``provisioned_servers`` peaks
    near 79 % of its budget, POLCA's production figure for inference; ``n_servers`` servers get
    ``n_servers / provisioned_servers`` times that load, so per-server load does not change with
    oversubscription. The HP servers keep that per-server load with batch LP (requests routed to LP servers
    are dropped). Measured with the v2 defaults (40 servers, seeds 0-2, uncapped; ``tests/test_power_capping.py``):
    azure-conv peaks at 0.79-0.82 of the budget with a mean of 0.68 (the batch LP servers draw 0.76 of
    their rated power on average, with prefill spikes to 1.0), synthetic 0.79-0.80 (mean 0.67), azure-code
    0.83-0.88 (mean 0.64; its long-prompt backlog keeps LP servers in prefill at rated power).

    ## Episode End

    Truncated when simulated time reaches the horizon (``episode_hours`` or ``trace_window_hours``;
    default the trace's hour for the Azure traces, 1 h for synthetic); never terminated. ``gym.make(...).spec.max_episode_steps`` is
    that horizon in decisions, ``ceil(horizon_s / decision_interval_s)`` (``horizon_steps``: 351 with the
    default kwargs, azure-conv's 3,501 s in 10 s decisions; 344 for azure-code), set by the env from its
    kwargs rather than registered (the horizon depends on the workload, ``episode_hours`` and
    ``decision_interval_s``; no ``TimeLimit`` wrapper: the episode ends by itself then).
    ``gym.make(id, max_episode_steps=N)`` still truncates at ``N``, but without ``info["metrics"]`` (read
    ``env.unwrapped.metrics()``): the id has a native vector env (``PowerCappingVectorEnv``), which
    Gymnasium allows only without registered wrappers.

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | n_servers | int | 52 | servers deployed in the row (1..1000) |
    | provisioned_servers | int | 40 | the budget is ``6500 W x provisioned_servers`` |
    | hp_fraction | float | 0.5 | share of servers of the HP class, in (0, 1) |
    | workload | str | "azure-conv" | "azure-code", "azure-conv", "synthetic" or "trace:<path>" |
    | rate_scale | float or None | None | arrivals multiplier for the provisioned row; None: ``DEFAULT_RATE_SCALE`` (1.0 for trace files) |
    | trace_columns, trace_time_unit | dict, str | None, "datetime" | columns and time unit of a ``trace:`` file |
    | episode_hours | float or None | None | horizon; default the trace's length (Azure: ~0.97 h), 1 h for synthetic; up to 24 x 7 for synthetic |
    | trace_window_hours | float or None | None | trace workloads: replay a window this long (the horizon); its offset is drawn from each ``reset`` seed, uniform over the trace, so N episodes replay N windows. None: the whole trace (the leaderboard's episode). Not with ``episode_hours`` |
    | trace_offset_hours | float or None | None | trace workloads: fix the window's start (alone: replay from there to the end); ``trace_offset_s`` holds the episode's |
    | start_hour | float or None | None | time of day at the start (Azure 18.25; synthetic 13.5, the hour before its 14:00 peak) |
    | mean_rate_per_s, burstiness, diurnal_amplitude, token_trace, start_weekday | | 5.5, 0.3, 0.5, "azure-conv", 0 | synthetic knobs (rate before ``rate_scale``) |
    | server_variation | float | 0.3 | std of the per-server log-weight of the router (0 = uniform split) |
    | server_variation_tau_s | float | 600 | correlation time of the per-server weights |
    | trace_replication | str | "shifted" | how a trace is scaled up to the row (rate_scale > 1): "shifted" superposes copies shifted by up to 5 min (independent users; matches POLCA's largest 40-s rise of 11.8 %, with ``DEFAULT_RATE_SCALE_SHIFTED``); "jitter" replicates each request within the gap to the next (v1's default: the trace's bursts repeat in step, so the row's largest 40-s power rise is ~2x POLCA's) |
    | lp_workload | str | "batch" | the LP class: "batch" (backlogged batch servers, loss = throughput; :mod:`.batch_lp`) or "interactive" (v1: open-loop request streams, loss = mean latency) |
    | model | str | "llama2-70b" | "llama2-70b" or "bloom-176b" (A100-80GB, TP8 profile rows) |
    | decision_interval_s | int | 10 | seconds between decisions |
    | actuation_delay_s | int | 40 | seconds before a commanded cap takes effect (POLCA: up to 40 s) |
    | brake_delay_s | int | 5 | seconds from an over-budget second to the brake (1..5) |
    | brake_duration_s | int | 30 | seconds the brake holds every GPU at 288 MHz |
    | lp_caps_mhz, hp_caps_mhz | list[float] | see above | cap levels (MHz, within [288, 1410]) |
    | hp_loss_tolerance, lp_loss_tolerance | float | 0.01, 0.02 | POLCA's rule |
    | loss_penalty, brake_penalty | float | 10, 0.2 | reward prices (see Rewards) |
    | invalid_action_penalty | float | 0.0 | subtracted when an invalid action is replaced |

    ```python
    import gymnasium as gym, schedgym
    env = gym.make("schedgym/PowerCapping-v2", n_servers=52, workload="azure-conv")
    day = gym.make("schedgym/PowerCapping-v2", workload="synthetic", episode_hours=24, start_hour=0)
    ```

    ## Info / Metrics

    ``info["telemetry"]`` each step: what a row manager sees (row and per-class power of the last
    second in W, budget, caps in force and commanded, brake state). ``info["metrics"]`` at the end
    (``env.unwrapped.metrics()`` any time):

    | metric | meaning |
    |---|---|
    | brake_events, seconds_over_budget | power-brake firings; seconds with row power over the budget |
    | peak_power_frac, mean_power_frac, ref_peak_power_frac | row power / budget (controlled; reference peak) |
    | energy_kwh, ref_energy_kwh | row energy, and the reference row's |
    | hp_perf_loss, lp_perf_loss | HP: mean latency (Little's law) / reference - 1; LP: throughput loss with batch LP, mean latency with interactive LP |
    | hp_throughput_loss, lp_throughput_loss | 1 - tokens processed / reference |
    | hp_ttft_p50, hp_ttft_p99, lp_ttft_p99 | TTFT percentiles (s), controlled row (lp_ttft_p99 is 0 with batch LP: a backlog has no latency) |
    | hp_latency_p50_loss, lp_latency_p50_loss | median end-to-end latency of the class / reference - 1 (requests finished in both rows; LP 0 with batch LP) |
    | rule_ok | 1 if 0 brakes and HP/LP loss within the tolerances (POLCA's rule) |
    | no_brakes | 1 if no brake event (the deep-oversubscription task's rule) |
    | within_budget_frac | share of seconds with row power within the budget |
    | perf_loss | hp_perf_loss + lp_perf_loss (the deep-oversubscription task's score) |
    | rate_scale, n_requests | arrivals multiplier of this row; requests in the episode (HP only with batch LP) |

    ## Version History

    * v2: low-priority servers are backlogged batch servers scored on throughput (``lp_workload="batch"``,
      POLCA's "LP throughput within 2 %"): under v1's open-loop LP streams a cap cost LP no throughput and
      no LP latency measure let POLCA's policy deploy more servers than no cap
      (``benchmarks/power_rule_probe.py``), so the LP decision the paper is about did not exist. Also:
      ``trace_replication="shifted"`` by default (POLCA's 40-s power rise), and the episode's first cap
      command is in force at once. Not comparable with v1.
    * v1: the row runs on the shared serving core (continuous batching, per-server streams, power split
      into idle/SM/HBM, ALPHA = 3.74); reward = the benchmark's rule; observation scaled; ``clairvoyant``
      bound. Not comparable with v0.
      Later additions that leave the dynamics, reward and observation unchanged (rows still replay): the
      metrics ``hp_latency_p50_loss`` and ``lp_latency_p50_loss``.
    * v0: simplified per-server tick model (removed).
    """

    #: Frames a second ``render()`` keeps up with: 0.38 s per rgb_array frame measured by
    #: ``benchmarks/render_time.py`` (the figure is rebuilt every call).
    metadata = {**SchedEnv.metadata, "render_fps": 2}

    def __init__(
        self,
        n_servers: int = 52,
        provisioned_servers: int = 40,
        hp_fraction: float = 0.5,
        workload: str = "azure-conv",
        rate_scale: float | None = None,
        trace_columns: dict[str, str] | None = None,
        trace_time_unit: str = "datetime",
        episode_hours: float | None = None,
        trace_window_hours: float | None = None,
        trace_offset_hours: float | None = None,
        start_hour: float | None = None,
        mean_rate_per_s: float = 5.5,
        burstiness: float = 0.3,
        diurnal_amplitude: float = 0.5,
        token_trace: str = "azure-conv",
        start_weekday: int = 0,
        server_variation: float = 0.3,
        server_variation_tau_s: float = 600.0,
        trace_replication: str = "shifted",
        lp_workload: str = "batch",
        model: str = "llama2-70b",
        decision_interval_s: int = 10,
        actuation_delay_s: int = 40,
        brake_delay_s: int = 5,
        brake_duration_s: int = 30,
        lp_caps_mhz: list[float] | tuple[float, ...] = (1410.0, 1275.0, 1110.0, 900.0),
        hp_caps_mhz: list[float] | tuple[float, ...] = (1410.0, 1305.0, 1110.0),
        hp_loss_tolerance: float = 0.01,
        lp_loss_tolerance: float = 0.02,
        loss_penalty: float = 10.0,
        brake_penalty: float = 0.2,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        self.n_servers = check_int("n_servers", n_servers, low=1, high=1000)
        self.provisioned_servers = check_int("provisioned_servers", provisioned_servers, low=1, high=1000)
        self.hp_fraction = check_float("hp_fraction", hp_fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_workload(workload, generated=("synthetic",))
        self.workload = workload
        self.trace_columns = trace_columns
        self.trace_time_unit = check_choice("trace_time_unit", trace_time_unit, ("s", "ms", "datetime"))
        self.synthetic_knobs = {
            "mean_rate_per_s": check_float("mean_rate_per_s", mean_rate_per_s, low=0.0, low_inclusive=False, high=1e4),
            "burstiness": check_float("burstiness", burstiness, low=0.0, high=1.0),
            "diurnal_amplitude": check_float("diurnal_amplitude", diurnal_amplitude, low=0.0, high=1.0, high_inclusive=False),
            "token_trace": check_choice("token_trace", token_trace, sorted(AZURE_TRACES)),
            "start_weekday": check_int("start_weekday", start_weekday, low=0, high=6),
        }
        self.server_variation = check_float("server_variation", server_variation, low=0.0, high=3.0)
        self.server_variation_tau_s = check_float(
            "server_variation_tau_s", server_variation_tau_s, low=1.0, high=30 * 86400.0
        )
        self.trace_replication = check_choice("trace_replication", trace_replication, ("jitter", "shifted"))
        self.lp_workload = check_choice("lp_workload", lp_workload, ("interactive", "batch"))
        self.model = check_choice("model", model, ("llama2-70b", "bloom-176b"))
        self.decision_interval_s = check_int("decision_interval_s", decision_interval_s, low=1, high=3600)
        self.actuation_delay_s = check_int("actuation_delay_s", actuation_delay_s, low=0, high=3600)
        self.brake_delay_s = check_int("brake_delay_s", brake_delay_s, low=1, high=5)
        self.brake_duration_s = check_int("brake_duration_s", brake_duration_s, low=1, high=3600)
        self.lp_caps_mhz = _check_caps("lp_caps_mhz", lp_caps_mhz)
        self.hp_caps_mhz = _check_caps("hp_caps_mhz", hp_caps_mhz)
        self.hp_loss_tolerance = check_float("hp_loss_tolerance", hp_loss_tolerance, low=0.0, high=10.0)
        self.lp_loss_tolerance = check_float("lp_loss_tolerance", lp_loss_tolerance, low=0.0, high=10.0)
        self.loss_penalty = check_float("loss_penalty", loss_penalty, low=0.0, high=1e6)
        self.brake_penalty = check_float("brake_penalty", brake_penalty, low=0.0, high=1e6)

        self._trace = base_trace(workload, trace_columns, trace_time_unit)
        self.trace_window: TraceWindow | None = None
        #: Where the current episode's window starts in the trace, seconds (0 for synthetic / the whole trace).
        self.trace_offset_s = 0.0
        if trace_window_hours is not None or trace_offset_hours is not None:
            if self._trace is None:
                raise ValueError("trace_window_hours and trace_offset_hours apply to trace workloads only; "
                                 "the synthetic workload sets its length with episode_hours")
            if episode_hours is not None:
                raise ValueError("episode_hours and trace_window_hours/trace_offset_hours both set the length of "
                                 "a trace episode: pass trace_window_hours alone")
            self.trace_window = TraceWindow.make(self._trace, trace_window_hours, trace_offset_hours)
            horizon = max(1, int(math.floor(self.trace_window.length_s + 1e-9)))
        elif episode_hours is None:
            horizon = 3600 if self._trace is None else max(1, int(math.floor(self._trace.duration_s)))
        else:
            hi = 24.0 * 7 if self._trace is None else max(self._trace.duration_s, 1.0) / _SECONDS_PER_HOUR
            hours = check_float("episode_hours", episode_hours, low=0.0, low_inclusive=False, high=hi)
            horizon = max(1, int(round(hours * _SECONDS_PER_HOUR)))
        self.horizon_s = horizon
        if start_hour is None:
            self.start_hour = 13.5 if workload == "synthetic" else default_start_hour(workload)
        else:
            self.start_hour = check_float("start_hour", start_hour, low=0.0, high=24.0)
        if rate_scale is None:
            table = DEFAULT_RATE_SCALE_SHIFTED if self.trace_replication == "shifted" else DEFAULT_RATE_SCALE
            self.rate_scale_provisioned = table.get(workload, 1.0)
        else:
            self.rate_scale_provisioned = check_float("rate_scale", rate_scale, low=0.0, low_inclusive=False, high=1e4)
        self.rate_scale = self.rate_scale_provisioned * self.n_servers / self.provisioned_servers

        self.serving = ServingParams.make(
            model=self.model,
            hardware="a100-80gb",
            tensor_parallel=pm.GPUS_PER_SERVER,
            max_num_seqs=_MAX_NUM_SEQS,
            freq_alpha=pm.ALPHA,
            decode_freq_sensitivity=pm.DECODE_FREQ_SENSITIVITY,
            decode_mem_power_share=pm.DECODE_MEM_SHARE,
        )
        profile = build_profile(self.serving)
        self._pi, self._pf, self._prof = self.serving.int_array(), self.serving.float_array(), profile.arrays
        self._pf[PF_DECODE_W] = pm.GPU_DECODE_W  # measured decode power (power_model), not the constant model's
        n = self.n_servers
        n_hp = min(max(int(round(self.hp_fraction * n)), 1), n - 1) if n > 1 else 1
        batch = self.lp_workload == "batch"
        if batch:  # (a 1-server row is one HP server and no LP)
            table = self._batch_table()
            batch_kw = {"lp_batch": True, "lp_power_tab": table.power_w, "lp_tokens_tab": table.tokens}
        else:
            batch_kw = {}
        self.params = RowParams(
            n_servers=n,
            n_hp_servers=n_hp,
            budget_w=pm.SERVER_RATED_PEAK_W * self.provisioned_servers,
            horizon_s=horizon,
            decision_interval_s=self.decision_interval_s,
            actuation_delay_s=self.actuation_delay_s,
            brake_delay_s=self.brake_delay_s,
            brake_duration_s=self.brake_duration_s,
            lp_caps_mhz=self.lp_caps_mhz,
            hp_caps_mhz=self.hp_caps_mhz,
            **batch_kw,
        )
        self.n_decisions = -(-horizon // self.decision_interval_s)
        self.n_hp_actions = len(self.hp_caps_mhz)
        self.action_space = gym.spaces.Discrete(len(self.lp_caps_mhz) * self.n_hp_actions)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, shape=(len(OBS_NAMES),), dtype=np.float32)

    @property
    def horizon_steps(self) -> int:
        """Decisions of an episode: the env truncates itself after exactly this many steps."""
        return int(self.n_decisions)

    # ------------------------------------------------------------------ helpers
    def _batch_table(self) -> BatchTable:
        """The backlogged LP server's table (:mod:`.batch_lp`) for this model, token mix and LP caps."""
        import hashlib

        tokens = self._trace if self._trace is not None else load_workload_trace(self.synthetic_knobs["token_trace"])
        digest = hashlib.sha1(tokens.prompt_tokens.tobytes() + tokens.output_tokens.tobytes()).hexdigest()
        levels = tuple(float(x) for x in self.lp_caps_mhz) + (pm.F_BRAKE_MHZ, pm.F_MAX_MHZ)
        return saturated_server_table(
            (self.model, digest), tokens.prompt_tokens, tokens.output_tokens, levels,
            (self._pi, self._pf, self._prof), _MAX_NUM_SEQS, self.serving.kv_blocks,
        )  # fmt: skip

    def action_for_caps(self, lp_mhz: float, hp_mhz: float) -> int:
        """The action whose caps are nearest to ``(lp_mhz, hp_mhz)``."""
        i = int(np.argmin(np.abs(self.lp_caps_mhz - lp_mhz)))
        j = int(np.argmin(np.abs(self.hp_caps_mhz - hp_mhz)))
        return i * self.n_hp_actions + j

    def caps_of_action(self, action: int) -> tuple[float, float]:
        """``(lp_mhz, hp_mhz)`` commanded by ``action``."""
        return float(self.lp_caps_mhz[action // self.n_hp_actions]), float(self.hp_caps_mhz[action % self.n_hp_actions])

    @property
    def budget_w(self) -> float:
        return self.params.budget_w

    @property
    def serving_arrays(self) -> tuple[np.ndarray, np.ndarray, tuple]:
        """``(pi, pf, profile arrays)`` of the serving core (for look-ahead with :mod:`.dynamics`)."""
        return self._pi, self._pf, self._prof

    def advance(self, s: PowerCappingState, t_end: int) -> None:
        """Run ``s`` (this env's state or a copy, e.g. :func:`.dynamics.controlled_row_copy`) to ``t_end``."""
        dyn.run_seconds_py(s, self.params, t_end, self._pi, self._pf, self._prof)

    # ------------------------------------------------------------------ SchedEnv hooks
    def _reset(self, options: dict[str, Any] | None) -> None:
        trace = self._trace
        if self.trace_window is not None:  # the rng draws only with a window: the whole-trace stream is kept
            self.trace_offset_s = self.trace_window.draw_offset(self.np_random)
            trace = self.trace_window.cut(trace, self.trace_offset_s)
        reqs = row_requests(
            self.np_random,
            trace,
            self.horizon_s,
            self.rate_scale,
            self.n_servers,
            self.start_hour,
            self.server_variation,
            self.server_variation_tau_s,
            self.synthetic_knobs,
            self.trace_replication,
            REPLICATION_MAX_SHIFT_S,
        )
        p = self.params
        lp_phase = None
        if p.lp_batch:
            # Requests routed to LP servers are dropped: the LP servers run their backlog instead.
            hp = reqs.server < p.n_hp_servers
            reqs = RowRequests(reqs.arrival_s[hp], reqs.prompt_tokens[hp], reqs.output_tokens[hp], reqs.server[hp])
            lp_phase = self.np_random.integers(0, p.lp_power_tab.shape[1], p.n_servers - p.n_hp_servers)
        self.state = dyn.new_state(p, reqs, _MAX_NUM_SEQS, self.serving.kv_blocks, lp_phase)
        total = float(reqs.prompt_tokens.sum() + reqs.output_tokens.sum())
        if p.lp_batch:  # the LP servers' uncapped tokens over the episode
            total += (p.n_servers - p.n_hp_servers) * float(p.lp_tokens_tab[-1].mean()) * p.horizon_s
        self.state.episode[:] = (max(total / self.n_decisions, 1e-6), len(reqs))

    def _class_sums(self, per_fleet: np.ndarray) -> np.ndarray:
        """``[[ctrl HP, ctrl LP], [ref HP, ref LP]]`` sums of a per-fleet quantity (LP 0 with batch LP)."""
        n, nh = self.params.fleets_per_row, self.params.n_hp_servers
        return np.array(
            [[per_fleet[:nh].sum(), per_fleet[nh:n].sum()], [per_fleet[n : n + nh].sum(), per_fleet[n + nh :].sum()]]
        )

    def _class_tokens(self) -> np.ndarray:
        """``[[ctrl HP, ctrl LP], [ref HP, ref LP]]`` tokens processed so far."""
        tok = self._class_sums(dyn.tokens_processed(self.state))
        if self.params.lp_batch:
            tok[:, 1] = self.state.lp_tokens
        return tok

    def _perf_loss(self) -> np.ndarray:
        """HP, LP performance loss so far: mean latency against the reference (Little's law), or with batch
        LP the LP class's throughput (``1 - tokens / reference tokens``, POLCA's LP rule)."""
        w = self._class_sums(dyn.request_seconds(self.state))
        loss = np.where(w[1] > 0, w[0] / np.where(w[1] > 0, w[1], 1.0) - 1.0, 0.0)
        if self.params.lp_batch:
            ctl, ref = self.state.lp_tokens
            loss[1] = 1.0 - ctl / ref if ref > 0 else 0.0
        return loss

    def _latency_p50_loss(self) -> tuple[float, float]:
        """Per class, the median end-to-end latency (arrival to last token) over the requests finished in
        both rows, as a ratio to the reference row's median, minus 1. POLCA states its latency rule on the
        P50 ("<1 % P50 latency impact", env-power-capping.md); the rule here still prices mean latency
        (``hp_perf_loss``), this is reported so the two can be compared (issue 13)."""
        fl, n, nh = self.state.fleet, self.params.fleets_per_row, self.params.n_hp_servers
        finish = fl.qf[: 2 * n, :, QF_FINISH_T]
        latency = finish - fl.arrival_s[: 2 * n]
        out = []
        for rows in (slice(0, nh), slice(nh, n)):
            ref_rows = slice(n + rows.start, n + rows.stop)
            both = (finish[rows] >= 0) & (finish[ref_rows] >= 0)
            if not both.any():
                out.append(0.0)
                continue
            ref = float(np.median(latency[ref_rows][both]))
            out.append(float(np.median(latency[rows][both])) / ref - 1.0 if ref > 0 else 0.0)
        return out[0], out[1]

    def _observe(self) -> np.ndarray:
        s, p = self.state, self.params
        t = int(s.ctl[C_T])
        budget = p.budget_w
        obs = np.zeros(len(OBS_NAMES))
        if t > 0:
            last = s.power_w[max(0, t - p.decision_interval_s) : t]
            last60 = s.power_w[max(0, t - 60) : t]
            obs[0] = s.power_w[t - 1] / budget
            obs[1], obs[2] = last.max() / budget, last.mean() / budget
            obs[3], obs[4] = last60.max() / budget, last60.mean() / budget
            obs[5] = s.hp_power_w[t - 1] / max(s.power_w[t - 1], 1e-9)
            obs[6] = s.prefill_share[max(0, t - p.decision_interval_s) : t].mean()
        n, nh = p.n_servers, p.n_hp_servers
        ri = s.fleet.ri
        obs[7] = ri[:nh, 0, RI_NWAIT].sum() / nh
        obs[9] = ri[:nh, 0, RI_NRUN].sum() / nh
        if p.lp_batch:  # a backlog: the batch is always full, and its queue is not a signal
            obs[8], obs[10] = 0.0, float(_MAX_NUM_SEQS)
        else:
            obs[8] = ri[nh:n, 0, RI_NWAIT].sum() / max(n - nh, 1)
            obs[10] = ri[nh:n, 0, RI_NRUN].sum() / max(n - nh, 1)
        braking = t < s.ctl[C_BRAKE_UNTIL]
        f_brake = pm.F_BRAKE_MHZ / pm.F_MAX_MHZ
        obs[11] = f_brake if braking else p.lp_caps_mhz[s.ctl[C_ACTIVE_LP]] / pm.F_MAX_MHZ
        obs[12] = f_brake if braking else p.hp_caps_mhz[s.ctl[C_ACTIVE_HP]] / pm.F_MAX_MHZ
        lp_c, hp_c = self.caps_of_action(int(s.ctl[C_COMMANDED]))
        obs[13], obs[14] = lp_c / pm.F_MAX_MHZ, hp_c / pm.F_MAX_MHZ
        if p.actuation_delay_s > 0:
            obs[15] = max(0, int(s.ctl[C_COMMANDED_EFFECTIVE]) - t) / p.actuation_delay_s
        obs[16] = float(braking or s.ctl[C_BRAKE_START] >= t)
        obs[17] = max(0, int(s.ctl[C_BRAKE_UNTIL]) - t) / p.brake_duration_s if braking else 0.0
        hour = self.start_hour + (self.trace_offset_s + t) / _SECONDS_PER_HOUR
        obs[18], obs[19] = math.sin(2 * math.pi * hour / 24.0), math.cos(2 * math.pi * hour / 24.0)
        obs[20] = n / self.provisioned_servers
        return np.clip(obs / _OBS_SCALE, -10.0, 10.0).astype(np.float32)

    def _action_mask(self) -> np.ndarray:
        return np.ones(self.action_space.n, dtype=bool)

    def _default_action(self) -> int:
        return int(self.state.ctl[C_COMMANDED])

    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        s, p = self.state, self.params
        dyn.command_caps(s, p, action)
        brakes0 = int(s.ctl[C_BRAKE_EVENTS])
        t_end = min(int(s.ctl[C_T]) + p.decision_interval_s, p.horizon_s)
        self.advance(s, t_end)
        tokens = float(dyn.tokens_processed(s)[: p.fleets_per_row].sum() + s.lp_tokens[0])
        loss = self._perf_loss()
        excess = np.maximum(0.0, loss - np.array([self.hp_loss_tolerance, self.lp_loss_tolerance]))
        d_excess = float((excess - s.excess).sum())
        s.excess[:] = excess
        new_brakes = int(s.ctl[C_BRAKE_EVENTS]) - brakes0
        reward = (tokens - s.tokens_prev[0]) / s.episode[0] - self.n_decisions * (
            self.loss_penalty * d_excess + self.brake_penalty * new_brakes
        )
        s.tokens_prev[0] = tokens
        truncated = int(s.ctl[C_T]) >= p.horizon_s
        return float(reward), False, bool(truncated), {"telemetry": self.telemetry()}

    def telemetry(self) -> dict[str, Any]:
        """What a row manager sees now: power of the last second, caps and brake state."""
        s, p = self.state, self.params
        t = int(s.ctl[C_T])
        lp_c, hp_c = self.caps_of_action(int(s.ctl[C_COMMANDED]))
        row = float(s.power_w[t - 1]) if t > 0 else 0.0
        hp = float(s.hp_power_w[t - 1]) if t > 0 else 0.0
        return {
            "t_s": t,
            "row_power_w": row,
            "hp_power_w": hp,
            "lp_power_w": row - hp,
            "n_hp_servers": p.n_hp_servers,
            "n_lp_servers": p.n_servers - p.n_hp_servers,
            "budget_w": p.budget_w,
            "active_lp_mhz": float(p.lp_caps_mhz[s.ctl[C_ACTIVE_LP]]),
            "active_hp_mhz": float(p.hp_caps_mhz[s.ctl[C_ACTIVE_HP]]),
            "commanded_lp_mhz": lp_c,
            "commanded_hp_mhz": hp_c,
            "commanded_effective_s": int(s.ctl[C_COMMANDED_EFFECTIVE]),
            "braking": bool(t < s.ctl[C_BRAKE_UNTIL]),
            "brake_until_s": int(s.ctl[C_BRAKE_UNTIL]),
            "prefill_share": float(s.prefill_share[t - 1]) if t > 0 else 0.0,
        }

    def metrics(self) -> dict[str, float]:
        s, p = self.state, self.params
        t = int(s.ctl[C_T])
        tt = max(t, 1)
        budget = p.budget_w
        n, nh = p.fleets_per_row, p.n_hp_servers
        loss = self._perf_loss()
        tok = self._class_tokens()
        fl = s.fleet
        ttft = fl.qf[:n, :, QF_FIRST_T] - fl.arrival_s[:n]
        started = fl.qf[:n, :, QF_FIRST_T] >= 0

        def pct(x: np.ndarray, q: float) -> float:
            return float(np.percentile(x, q)) if x.size else 0.0

        hp_p50_loss, lp_p50_loss = self._latency_p50_loss()
        hp_ttft = ttft[:nh][started[:nh]]
        lp_ttft = ttft[nh:][started[nh:]]
        brakes = int(s.ctl[C_BRAKE_EVENTS])
        hp_loss, lp_loss = float(loss[0]), float(loss[1])
        return {
            "brake_events": brakes,
            "seconds_over_budget": int(s.ctl[C_SECONDS_OVER]),
            "peak_power_frac": float(s.power_w[:tt].max() / budget) if t else 0.0,
            "mean_power_frac": float(s.power_w[:tt].mean() / budget) if t else 0.0,
            "ref_peak_power_frac": float(s.ref_power_w[:tt].max() / budget) if t else 0.0,
            "energy_kwh": float(s.power_w[:t].sum() / 3.6e6),
            "ref_energy_kwh": float(s.ref_power_w[:t].sum() / 3.6e6),
            "hp_perf_loss": hp_loss,
            "lp_perf_loss": lp_loss,
            "hp_throughput_loss": float(1.0 - tok[0, 0] / tok[1, 0]) if tok[1, 0] > 0 else 0.0,
            "lp_throughput_loss": float(1.0 - tok[0, 1] / tok[1, 1]) if tok[1, 1] > 0 else 0.0,
            "hp_latency_p50_loss": hp_p50_loss,
            "lp_latency_p50_loss": lp_p50_loss,
            "hp_ttft_p50": pct(hp_ttft, 50),
            "hp_ttft_p99": pct(hp_ttft, 99),
            "lp_ttft_p99": pct(lp_ttft, 99),
            "rule_ok": int(brakes == 0 and hp_loss <= self.hp_loss_tolerance and lp_loss <= self.lp_loss_tolerance),
            "no_brakes": int(brakes == 0),
            "within_budget_frac": 1.0 - int(s.ctl[C_SECONDS_OVER]) / tt if t else 1.0,
            "perf_loss": hp_loss + lp_loss,
            "rate_scale": float(self.rate_scale),
            "n_requests": int(s.episode[1]),
        }

    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.power_capping.render import render_rgb

        return render_rgb(self)

    def _render_ansi(self) -> str:
        from schedgym.envs.power_capping.render import render_ansi

        return render_ansi(self)


def _check_caps(name: str, caps: Any) -> np.ndarray:
    msg = f"{name} must be a non-empty list of at most 16 clocks in MHz within [288, 1410], got {caps!r}"
    if isinstance(caps, (str, bytes)):
        raise ValueError(msg)
    try:
        arr = np.asarray(list(caps), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if arr.ndim != 1 or not 0 < arr.size <= 16 or not np.all(np.isfinite(arr)):
        raise ValueError(msg)
    if arr.min() < pm.F_BRAKE_MHZ or arr.max() > pm.F_MAX_MHZ:
        raise ValueError(msg)
    arr.setflags(write=False)
    return arr
