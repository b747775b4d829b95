"""Pictures of a PowerCapping-v2 episode: row power vs budget with T1/T2, caps as bands, brake events, a legend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedgym.envs.core.render import figure_to_rgb, new_figure
from schedgym.envs.power_capping import power_model as pm

if TYPE_CHECKING:
    from schedgym.envs.power_capping.env import PowerCappingEnv

__all__ = ["render_rgb", "render_ansi"]


def render_rgb(env: PowerCappingEnv) -> np.ndarray:
    """Row power / budget over time (controlled and uncapped reference), T1/T2 lines, caps and brakes."""
    from schedgym.envs.power_capping.env import POLCA_T1, POLCA_T2

    from schedgym.envs.power_capping.types import C_BRAKE_EVENTS, C_SECONDS_OVER, C_T

    s, p = env.state, env.params
    t = max(int(s.ctl[C_T]), 1)
    x = np.arange(t)
    fig = new_figure(9.0, 5.0)
    ax, ax_cap = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(x, s.ref_power_w[:t] / p.budget_w, color="0.6", lw=0.8, label="uncapped reference")
    ax.plot(x, s.power_w[:t] / p.budget_w, color="C0", lw=1.0, label="row power")
    ax.axhline(1.0, color="C3", lw=1.2, label="budget")
    ax.axhline(POLCA_T1, color="C1", lw=0.8, ls="--", label=f"T1 {POLCA_T1:.0%}")
    ax.axhline(POLCA_T2, color="C1", lw=0.8, ls=":", label=f"T2 {POLCA_T2:.0%}")
    fired = np.flatnonzero(s.brake_fired[:t])
    if fired.size:
        ax.scatter(fired, np.full(fired.size, 1.02), marker="v", color="C3", zorder=3, label="brake event")
    ax.set_ylabel("power / budget")
    ax.set_title(
        f"{p.n_servers} servers on a {env.provisioned_servers}-server budget ({p.budget_w / 1e3:.0f} kW): "
        f"brakes {int(s.ctl[C_BRAKE_EVENTS])}, over budget {int(s.ctl[C_SECONDS_OVER])} s"
    )
    ax.legend(loc="lower right", fontsize=7, ncol=3)
    # Caps as shaded bands: how far each class's clock is below the maximum.
    lp = s.lp_cap_hist_mhz[:t] / pm.F_MAX_MHZ
    hp = s.hp_cap_hist_mhz[:t] / pm.F_MAX_MHZ
    ax_cap.fill_between(x, lp, 1.0, step="post", color="C2", alpha=0.35, label="LP cap")
    ax_cap.fill_between(x, hp, 1.0, step="post", color="C4", alpha=0.35, label="HP cap")
    braking = np.minimum(lp, hp) <= pm.F_BRAKE_MHZ / pm.F_MAX_MHZ + 1e-6
    if braking.any():
        ax_cap.fill_between(x, 0, 1, where=braking, step="post", color="C3", alpha=0.25, label="brake")
    ax_cap.set_ylim(0, 1.02)
    ax_cap.set_ylabel("clock / max")
    ax_cap.set_xlabel("time (s)")
    ax_cap.legend(loc="lower left", fontsize=7, ncol=3)
    fig.tight_layout()
    return figure_to_rgb(fig)


def render_ansi(env: PowerCappingEnv) -> str:
    """One-screen text summary: power now and recently, caps, brake state, queues."""
    from schedgym.envs.power_capping.types import (
        C_ACTIVE_HP,
        C_ACTIVE_LP,
        C_BRAKE_EVENTS,
        C_BRAKE_UNTIL,
        C_COMMANDED,
        C_COMMANDED_EFFECTIVE,
        C_SECONDS_OVER,
        C_T,
    )
    from schedgym.sim.serving.state import RI_NRUN, RI_NWAIT

    s, p = env.state, env.params
    t = int(s.ctl[C_T])
    now = s.power_w[t - 1] / p.budget_w if t else 0.0
    recent = s.power_w[max(0, t - 60) : t]
    peak60 = recent.max() / p.budget_w if recent.size else 0.0
    width = 40
    bar = "#" * int(min(now, 1.5) / 1.5 * width)
    budget_col = int(1.0 / 1.5 * width)
    bar = bar.ljust(width)
    bar = bar[:budget_col] + "|" + bar[budget_col:]
    ctl = s.ctl
    lp_c, hp_c = env.caps_of_action(int(ctl[C_COMMANDED]))
    n, nh = p.fleets_per_row, p.n_hp_servers  # LP fleets: none with batch LP (a full batch, no queue)
    ri = s.fleet.ri[:, 0]
    until = int(ctl[C_BRAKE_UNTIL])
    lines = [
        f"t={t}s/{p.horizon_s}s  row power {now:6.1%} of {p.budget_w / 1e3:.0f} kW  [{bar}]  max60s {peak60:6.1%}",
        f"caps in force LP {p.lp_caps_mhz[ctl[C_ACTIVE_LP]]:.0f} MHz, HP {p.hp_caps_mhz[ctl[C_ACTIVE_HP]]:.0f} MHz; "
        f"commanded LP {lp_c:.0f}, HP {hp_c:.0f} (effective at t={int(ctl[C_COMMANDED_EFFECTIVE])}s)",
        f"brake {'HOLDING until t=' + str(until) + 's' if t < until else 'off'}; "
        f"events {int(ctl[C_BRAKE_EVENTS])}, seconds over budget {int(ctl[C_SECONDS_OVER])}",
        f"waiting HP {int(ri[:nh, RI_NWAIT].sum())}, LP {int(ri[nh:n, RI_NWAIT].sum())}; "
        f"running HP {int(ri[:nh, RI_NRUN].sum())}, LP {int(ri[nh:n, RI_NRUN].sum())}",
    ]
    return "\n".join(lines)
