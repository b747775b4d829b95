"""Pictures of a GPU-autoscaling episode: demand vs provisioned capacity, replicas, SLA violations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.core.render import figure_to_rgb, new_figure

if TYPE_CHECKING:
    from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv

__all__ = ["render_rgb", "render_ansi"]


def render_rgb(env: GPUAutoscalingEnv) -> np.ndarray:
    """Top: demand (replica-equivalents of work arriving) vs ready capacity and billed replicas, intervals
    below the SLA target marked in red. Bottom: per-interval SLA attainment and queue length."""
    s = env.state
    n = max(s.step, 1)
    minutes = np.arange(env.n_steps) * env.interval_s / 60.0
    x = minutes[:n]
    demand = s.log_work_s[:n] / env.interval_s
    capacity = s.log_capacity_s[:n] / env.interval_s
    billed = s.log_billed[:n]
    resolved = s.log_met[:n] + s.log_violated[:n]
    attainment = np.where(resolved > 0, s.log_met[:n] / np.maximum(resolved, 1), 1.0)
    bad = attainment < env.sla_target

    fig = new_figure(9.0, 5.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.fill_between(x, demand, step="post", alpha=0.35, color="tab:blue", label="demand (replica-equivalents)")
    ax1.step(x, capacity, where="post", color="tab:green", label="ready capacity")
    ax1.step(x, billed, where="post", color="tab:orange", linestyle="--", label="billed replicas")
    if bad.any():
        top = max(float(np.max(demand)), float(np.max(billed)), 1.0)
        ax1.scatter(x[bad], np.full(int(bad.sum()), top * 1.05), marker="v", color="tab:red", s=14,
                    label=f"interval SLA < {env.sla_target:g}")
    ax1.set_ylabel("replicas")
    ax1.set_title(f"{s.workload.source}: step {s.step}/{env.n_steps}")
    ax1.legend(loc="upper left", fontsize=7)
    ax2.plot(x, attainment, color="tab:red", label="SLA attainment")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("attainment")
    ax2.set_xlabel("minutes")
    ax3 = ax2.twinx()
    ax3.plot(x, s.log_queue[:n], color="tab:gray", alpha=0.6, label="queue")
    ax3.set_ylabel("queued requests")
    fig.tight_layout()
    return figure_to_rgb(fig)


def render_ansi(env: GPUAutoscalingEnv) -> str:
    """A one-screen text summary: fleet, last interval, running metrics."""
    s = env.state
    m = env.metrics()
    lines = [
        f"GPUAutoscaling {s.workload.source} step {s.step}/{env.n_steps} (t={env.now_s / 60.0:.0f} min)",
        f"  replicas: ready {s.ready}, cold-starting {s.pending_ready_s.size}, "
        f"bounds [{env.min_replicas}, {env.max_replicas}]",
    ]
    if s.step:
        t = s.step - 1
        lines.append(
            f"  last interval: {s.log_requests[t]:.0f} requests, demand {s.log_work_s[t] / env.interval_s:.2f} "
            f"replicas, utilisation {s.log_busy_s[t] / max(s.log_capacity_s[t], 1e-9):.2f}, queue "
            f"{s.log_queue[t]:.0f}, violations {s.log_violated[t]:.0f}"
        )
    lines.append(
        f"  so far: gpu_hours {m['gpu_hours']:.1f}, cost ${m['cost_usd']:.2f}, SLA {m['sla_attainment']:.4f}, "
        f"ttft_p99 {m['ttft_p99']:.2f} s, dropped {m['dropped']:.0f}"
    )
    return "\n".join(lines)
