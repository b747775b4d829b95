"""What all schedgym envs share: the env contract, masks, kwarg checks, traces, perf profile, rendering."""

from schedgym.envs.core.base import EnvState, SchedEnv
from schedgym.envs.core.masks import ActionMaskObservation
from schedgym.envs.core.render import figure_to_rgb, new_figure, save_rgb_png
from schedgym.envs.core.validation import check_bool, check_choice, check_float, check_int

__all__ = [
    "SchedEnv",
    "EnvState",
    "ActionMaskObservation",
    "new_figure",
    "figure_to_rgb",
    "save_rgb_png",
    "check_int",
    "check_float",
    "check_choice",
    "check_bool",
]
