"""Rendering helpers: matplotlib on the Agg backend (no display needed), figures as RGB arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["new_figure", "figure_to_rgb", "save_rgb_png"]


def new_figure(width_in: float = 8.0, height_in: float = 4.5, dpi: int = 100) -> Any:
    """A matplotlib Figure bound to an Agg canvas, independent of pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("rendering needs matplotlib: pip install matplotlib") from exc
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig: Any) -> np.ndarray:
    """Draw a figure and return its pixels as a ``(H, W, 3)`` uint8 array."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def save_rgb_png(rgb: np.ndarray, path: str) -> None:
    """Write an ``(H, W, 3)`` uint8 array to a PNG file."""
    import matplotlib.image

    matplotlib.image.imsave(path, rgb)
