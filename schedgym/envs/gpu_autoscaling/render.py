"""Pictures of a GPU-autoscaling episode: demand vs capacity, KV use, SLA misses (with a legend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.core.render import figure_to_rgb, new_figure
from schedgym.sim.serving.state import EI_N_DONE

if TYPE_CHECKING:
    from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv

__all__ = ["render_rgb", "render_ansi"]


def _attainment_so_far(env: GPUAutoscalingEnv) -> float:
    """Requests done within their SLOs / requests done. ``metrics()["sla_attainment"]`` divides by every
    request of the episode (its end-of-episode meaning), which reads as a miss mid-episode."""
    s = env.state
    done = int(s.fleet.ei[0, EI_N_DONE])
    return s.met / done if done else 1.0


def render_rgb(env: GPUAutoscalingEnv) -> np.ndarray:
    """Top: demand (replicas the arriving tokens keep busy, and its busiest 10 s) vs ready, provisioning and
    draining replicas, intervals with SLO misses marked. Bottom: KV-cache use and waiting requests."""
    s = env.state
    wl = s.workload
    n = max(s.step, 1)
    x = np.arange(env.n_steps)[:n] * env.interval_s / 60.0
    demand = env.demand_replicas(wl.interval_prompt[:n], wl.interval_output[:n], env.interval_s)
    burst = env.burst_demand(wl, 10.0)[:n]
    misses = s.log_violations[:n]

    fig = new_figure(10.5, 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.fill_between(x, demand, step="post", alpha=0.35, color="tab:blue", label="demand (replicas busy)")
    ax1.step(x, burst, where="post", color="tab:blue", linewidth=0.6, alpha=0.7, label="demand, busiest 10 s")
    ax1.step(x, s.log_ready[:n], where="post", color="tab:green", label="ready replicas")
    ax1.step(x, s.log_ready[:n] + s.log_provisioning[:n], where="post", color="tab:orange", linestyle="--",
             label="ready + provisioning")
    ax1.step(x, s.log_draining[:n], where="post", color="tab:gray", linestyle=":", label="draining")
    bad = misses > 0
    if bad.any():
        top = max(float(np.max(burst)), float(np.max(s.log_ready[:n] + s.log_provisioning[:n])), 1.0)
        sizes = 10 + 40 * misses[bad] / max(float(misses.max()), 1.0)
        ax1.scatter(x[bad], np.full(int(bad.sum()), top * 1.05), marker="v", color="tab:red", s=sizes,
                    label="SLO misses (size = count)")
    ax1.set_ylabel("replicas")
    m = env.metrics()
    ax1.set_title(f"{wl.source}: step {s.step}/{env.n_steps}, cost ${m['cost_usd']:.2f}, "
                  f"SLA so far {_attainment_so_far(env):.4f} (target {env.sla_target:g})")
    # Legends beside the panels, so that they cover neither the demand nor the SLO-miss marks.
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax2.plot(x, 100.0 * s.log_kv[:n], color="tab:purple", label="KV cache in use, %")
    ax2.set_ylabel("KV use %")
    ax2.set_xlabel("minutes")
    ax3 = ax2.twinx()
    ax3.plot(x, s.log_waiting[:n], color="tab:gray", alpha=0.7, label="waiting requests")
    ax3.set_ylabel("waiting")
    lines = ax2.get_lines() + ax3.get_lines()
    ax2.legend(lines, [ln.get_label() for ln in lines], loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=7)
    fig.tight_layout()
    return figure_to_rgb(fig)


def render_ansi(env: GPUAutoscalingEnv) -> str:
    """A one-screen text summary: fleet, last interval, running metrics."""
    s = env.state
    m = env.metrics()
    prov, ready, draining = env.fleet.counts(0)
    lines = [
        f"GPUAutoscaling {s.workload.source} step {s.step}/{env.n_steps} (t={env.now_s / 60.0:.0f} min)",
        f"  replicas: ready {ready}, provisioning {prov}, draining {draining}, "
        f"bounds [{env.min_replicas}, {env.max_replicas}]",
    ]
    if s.step:
        t = s.step - 1
        lines.append(
            f"  last interval: {s.workload.interval_requests[t]:.0f} arrivals, {s.log_completed[t]:.0f} done, "
            f"{s.log_violations[t]:.0f} SLO misses, KV {100 * s.log_kv[t]:.0f} %, waiting {s.log_waiting[t]:.0f}, "
            f"running {s.log_running[t]:.0f}"
        )
    lines.append(
        f"  so far: gpu_hours {m['gpu_hours']:.1f}, cost ${m['cost_usd']:.2f}, SLA {_attainment_so_far(env):.4f}, "
        f"ttft_p99 {m['ttft_p99_s']:.2f} s, preemptions {m['preemptions']:.0f}"
    )
    return "\n".join(lines)
