"""Pictures of AgentScheduling-v1: a Gantt chart of the cores (run segments coloured by agent, swaps and
recomputes marked) above the KV cache use of each core over time, with a legend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.agent_scheduling.types import (
    DECISION_NAMES,
    DONE,
    QF_FINISH,
    QF_RUN_START,
    QI_CORE,
    QI_GENERATED,
    QI_STATE,
    RUNNING,
)
from schedgym.envs.core.render import figure_to_rgb, new_figure

if TYPE_CHECKING:
    from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv

__all__ = ["render_gantt", "render_text"]


def render_gantt(env: AgentSchedulingEnv) -> np.ndarray:
    """Lane per core; every run segment of a request is a thin bar (stacked within the lane), coloured by agent."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    st = env.state
    wl = st.workload
    fig = new_figure(11.0, 6.5)
    ax, axk = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    segs = list(st.segments)
    status = st.qi[:, QI_STATE]
    for r in np.flatnonzero(status == DONE):
        segs.append((int(st.qi[r, QI_CORE]), float(st.qf[r, QF_RUN_START]), float(st.qf[r, QF_FINISH]), int(wl.req_agent[r])))
    for r in np.flatnonzero(status == RUNNING):
        segs.append((int(st.qi[r, QI_CORE]), float(st.qf[r, QF_RUN_START]), st.clock_s, int(wl.req_agent[r])))
    cmap = matplotlib.colormaps["tab20"]
    rows = 8  # sub-rows per core lane, so that concurrent sequences are visible
    if segs:
        seg = np.array(segs, dtype=np.float64)
        y = seg[:, 0] + (seg[:, 3] % rows) / rows
        ax.barh(y, np.maximum(seg[:, 2] - seg[:, 1], 1e-3), left=seg[:, 1], height=0.8 / rows,
                color=[cmap(int(a) % 20) for a in seg[:, 3]], align="edge")  # fmt: skip
    marks = {"swap": ("v", "black"), "recompute": ("x", "red")}
    for how, (marker, colour) in marks.items():
        pts = [(t, c + 1.0) for t, c, h in st.switches if h == how]
        if pts:
            p = np.array(pts)
            ax.scatter(p[:, 0], p[:, 1] - 0.05, marker=marker, color=colour, s=18, zorder=3)
    for c in range(1, env.n_cores):
        ax.axhline(c, color="black", lw=0.8)
    ax.set_ylim(env.n_cores, 0)
    ax.set_yticks([c + 0.5 for c in range(env.n_cores)])
    ax.set_yticklabels([f"core {c}" for c in range(env.n_cores)])
    n_agents_shown = min(wl.n_agents, 6)
    handles = [Patch(color=cmap(a % 20), label=f"agent {a}") for a in range(n_agents_shown)]
    handles += [Line2D([], [], ls="", marker=m, color=col, label=f"{h} (preempted)") for h, (m, col) in marks.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title="bars: agents (tab20 cycle)", title_fontsize=7)
    ax.set_title(
        f"AgentScheduling-v1 t={st.clock_s:.1f}s  done {st.n_done}/{wl.n_requests} requests  "
        f"swaps {len([s for s in st.switches if s[2] == 'swap'])}  recomputes {len([s for s in st.switches if s[2] == 'recompute'])}"
    )
    if st.kv_trace:
        kv = np.array(st.kv_trace, dtype=np.float64)
        for c in range(env.n_cores):
            axk.step(kv[:, 0], kv[:, 1 + c], where="post", label=f"core {c}")
        axk.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    axk.set_ylim(0, 1.05)
    axk.set_ylabel("KV used")
    axk.set_xlabel("simulated time (s)")
    ax.set_xlim(0, max(st.clock_s, 1.0))
    fig.tight_layout()
    return figure_to_rgb(fig)


def render_text(env: AgentSchedulingEnv) -> str:
    st = env.state
    wl = st.workload
    lines = [
        f"t={st.clock_s:.2f}s  decision: {DECISION_NAMES[st.decision_kind]} on core {st.decision_core}  "
        f"waiting={st.n_waiting}  done={st.n_done}/{wl.n_requests}"
    ]
    for c in range(env.n_cores):
        reqs = st.running[c][st.running[c] >= 0]
        used = env.params.kv_blocks - st.ci[c, 1]
        cells = " ".join(f"{r}(a{wl.req_agent[r]}:{st.qi[r, QI_GENERATED]}t)" for r in reqs)
        lines.append(f"core {c} kv {used}/{env.params.kv_blocks} blocks: {cells or '-'}")
    vis = [int(r) for r in st.visible if r >= 0]
    lines.append("offered: " + (" ".join(f"{r}(a{wl.req_agent[r]},p{wl.req_prompt_tokens[r]})" for r in vis) or "-"))
    return "\n".join(lines)
