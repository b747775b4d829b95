"""Pictures of a memory mapping: the time x address plane with placed buffers as rectangles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.core.render import figure_to_rgb, new_figure

if TYPE_CHECKING:
    from schedgym.envs.memory_mapping.env import MemoryMappingEnv


def render_rgb(env: MemoryMappingEnv) -> np.ndarray:
    from matplotlib import cm
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import EngFormatter, FixedLocator, FuncFormatter, MaxNLocator

    st = env.state
    inst = st.prep.inst
    m = env.metrics()
    fig = new_figure(9.0, 5.0)
    ax = fig.add_subplot(111)
    placed = np.flatnonzero(st.placed)
    density = inst.benefit / inst.size
    norm = Normalize(vmin=float(density.min()), vmax=float(density.max()) or 1.0)
    rects = [Rectangle((inst.start[b], st.offset[b]), inst.end[b] - inst.start[b], inst.size[b]) for b in placed]
    if rects:
        coll = PatchCollection(rects, cmap=cm.viridis, norm=norm, edgecolor="black", linewidth=0.2)
        coll.set_array(density[placed])
        ax.add_collection(coll)
        # EngFormatter: "200k" ticks instead of a "1e6" multiplier above the bar (area benefit / byte = steps).
        fig.colorbar(coll, ax=ax, label="benefit / byte", format=EngFormatter(sep=""))
    cur = env.current_buffer() if env.action_mode == "place" else (int(st.cand_buffer[0]) if st.n_candidates else -1)
    if cur >= 0 and st.n_candidates:
        ax.add_patch(
            Rectangle((inst.start[cur], st.cand_offset[0]), inst.end[cur] - inst.start[cur], inst.size[cur],
                      fill=False, edgecolor="red", linestyle="--", linewidth=1.2, label="next (action 0)")
        )
    ax.axhline(inst.capacity, color="crimson", linewidth=1.5, label=f"capacity {inst.capacity:,} B")
    ax.set_xlim(float(inst.start.min()), float(inst.horizon))
    ax.set_ylim(0, inst.capacity * 1.05)
    unit, scale = _byte_unit(inst.capacity)
    # Round ticks in the display unit (256 KiB, not 262,144 B shown as 256.0).
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, inst.capacity * 1.05 / scale) * scale
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / scale:,.6g}"))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("schedule step")
    ax.set_ylabel(f"address ({unit})")
    skipped = int((st.decided & ~st.placed).sum())
    ax.set_title(
        f"{inst.name}: {m['benefit_placed_frac']:.1%} of benefit placed, "
        f"{int(m['buffers_placed'])}/{inst.n} buffers, {skipped} in slow memory"
    )
    handles, _labels = ax.get_legend_handles_labels()
    handles.insert(0, Patch(facecolor=cm.viridis(0.5), edgecolor="black", linewidth=0.2,
                            label="placed buffer (colour: benefit / byte)"))
    # Below the axes, so that it never covers a buffer.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.22, top=0.92)
    return figure_to_rgb(fig)


def _byte_unit(capacity: int) -> tuple[str, float]:
    """The binary unit the address axis reads best in: a few to a few thousand of them up to the capacity."""
    for unit, scale in (("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if capacity >= 2 * scale:
            return unit, scale
    return "bytes", 1.0


def render_ansi(env: MemoryMappingEnv, width: int = 64, height: int = 12) -> str:
    st = env.state
    inst = st.prep.inst
    m = env.metrics()
    grid = np.zeros((height, width), dtype=np.int64)
    t0, t1 = float(inst.start.min()), float(inst.horizon)
    for b in np.flatnonzero(st.placed):
        c0 = int((inst.start[b] - t0) / (t1 - t0) * width)
        c1 = max(int(np.ceil((inst.end[b] - t0) / (t1 - t0) * width)), c0 + 1)
        r0 = int(st.offset[b] / inst.capacity * height)
        r1 = max(int(np.ceil((st.offset[b] + inst.size[b]) / inst.capacity * height)), r0 + 1)
        grid[r0:r1, c0:c1] += 1
    rows = ["".join("#" if v else "." for v in row) for row in grid[::-1]]
    skipped = int((st.decided & ~st.placed).sum())
    head = (
        f"{inst.name} [{env.action_mode}] capacity={inst.capacity:,} B  decided {st.n_decided}/{inst.n}  "
        f"placed {int(m['buffers_placed'])}  slow {skipped}  benefit placed {m['benefit_placed_frac']:.3f}"
    )
    return "\n".join([head, "+" + "-" * width + "+"] + ["|" + r + "|" for r in rows] + ["+" + "-" * width + "+"])
