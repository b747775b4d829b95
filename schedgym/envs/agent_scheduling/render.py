"""Pictures of AgentScheduling: a Gantt chart of the cores' batch slots and the queue length over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.agent_scheduling.types import ADMIT, DONE, SLICE_END, WAITING
from schedgym.envs.core.render import figure_to_rgb, new_figure

if TYPE_CHECKING:
    from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv

__all__ = ["render_gantt", "render_text"]


def render_gantt(env: AgentSchedulingEnv) -> np.ndarray:
    """One lane per (core, slot); each run segment of a request is a bar coloured by its agent."""
    st = env.state
    fig = new_figure(10.0, 6.0)
    ax, axq = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    segments = list(st.segments)  # preempted segments; finished and running ones are derived below
    done = np.flatnonzero(st.status == DONE)
    for r in done:
        segments.append((int(st.last_core[r]), int(st.last_slot[r]), float(st.run_start_s[r]), float(st.finish_s[r]), int(st.workload.req_agent[r])))
    for core, slot in zip(*np.nonzero(st.slot_req >= 0)):
        r = int(st.slot_req[core, slot])
        segments.append((int(core), int(slot), float(st.run_start_s[r]), st.clock_s, int(st.workload.req_agent[r])))
    cmap = __import__("matplotlib").colormaps["tab20"]
    lanes = env.n_cores * env.max_batch
    if segments:
        seg = np.array(segments, dtype=np.float64)
        lane = seg[:, 0] * env.max_batch + seg[:, 1]
        width = np.maximum(seg[:, 3] - seg[:, 2], 1e-3)
        colors = [cmap(int(a) % 20) for a in seg[:, 4]]
        ax.barh(lane, width, left=seg[:, 2], height=0.8, color=colors, edgecolor="none")
    for c in range(1, env.n_cores):
        ax.axhline(c * env.max_batch - 0.5, color="black", lw=0.8)
    ax.set_ylim(lanes - 0.5, -0.5)
    ax.set_yticks([c * env.max_batch + (env.max_batch - 1) / 2 for c in range(env.n_cores)])
    ax.set_yticklabels([f"core {c}" for c in range(env.n_cores)])
    ax.set_title(
        f"AgentScheduling t={st.clock_s:.1f}s  done {st.n_done}/{st.workload.n_requests} requests  "
        f"switches {st.n_switches}  (bars coloured by agent)"
    )
    if st.queue_trace:
        q = np.array(st.queue_trace, dtype=np.float64)
        axq.step(q[:, 0], q[:, 1], where="post", color="tab:red")
    axq.set_ylabel("waiting")
    axq.set_xlabel("simulated time (s)")
    ax.set_xlim(0, max(st.clock_s, 1.0))
    fig.tight_layout()
    return figure_to_rgb(fig)


def render_text(env: AgentSchedulingEnv) -> str:
    st = env.state
    wl = st.workload
    kind = {ADMIT: "free slot", SLICE_END: f"slice end of request {st.decision_req}"}.get(st.decision_kind, "none")
    lines = [
        f"t={st.clock_s:.2f}s  decision: {kind} on core {st.decision_core}  waiting={st.n_waiting}  "
        f"done={st.n_done}/{wl.n_requests}  switches={st.n_switches}"
    ]
    for c in range(env.n_cores):
        reqs = st.slot_req[c][st.slot_req[c] >= 0]
        cells = " ".join(f"{r}(a{wl.req_agent[r]}:{st.generated[r]:.0f}t)" for r in reqs)
        lines.append(f"core {c} kv {st.core_kv_tokens[c]}/{env.kv_capacity_tokens}: {cells or '-'}")
    vis = [int(r) for r in st.visible if r >= 0 and st.status[r] == WAITING]
    lines.append("queue: " + (" ".join(f"{r}(a{wl.req_agent[r]},p{wl.req_prompt_tokens[r]})" for r in vis) or "-"))
    return "\n".join(lines)
