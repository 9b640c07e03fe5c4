"""Plot helpers shared by the chapters: a consistent style, mean +- std bands, PNG + SVG output."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

plt.rcParams.update({
    "figure.dpi": 110, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "font.size": 10, "legend.fontsize": 9, "svg.fonttype": "path",
})


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.png`` and ``.svg`` (via temp files, then rename)."""
    from rlntp.results import atomic_write_bytes

    paths = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight")
        paths.append(atomic_write_bytes(Path(out_dir) / f"{name}.{ext}", buf.getvalue()))
    return paths


MAX_WIDTH_IN = 7.0  # the book's column is about 690 px: a wider figure shrinks and its labels blur


def show_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> None:
    """Save ``fig`` (PNG and SVG, see :func:`save_figure`) and show it as SVG, sharp at any zoom.

    A figure wider than :data:`MAX_WIDTH_IN` inches is refused: in the book it would be scaled
    down until its tick labels cannot be read (stack the panels instead).
    """
    from IPython.display import SVG, display

    width = fig.get_size_inches()[0]
    if width > MAX_WIDTH_IN:
        raise ValueError(f"figure {name!r} is {width:.1f} in wide; the book's column fits "
                         f"{MAX_WIDTH_IN} in: stack its panels")
    _, svg = save_figure(fig, out_dir, name)
    plt.close(fig)
    display(SVG(svg.read_bytes()))


def mean_std_band(ax: plt.Axes, frame: pd.DataFrame, x: str, y: str = "value", label: str | None = None,
                  **line_kw) -> None:
    """Plot the mean of ``y`` over rows sharing ``x`` (e.g. over seeds) with a +-1 std band."""
    g = frame.groupby(x)[y].agg(["mean", "std"]).reset_index().sort_values(x)
    std = g["std"].fillna(0.0).to_numpy()
    (line,) = ax.plot(g[x], g["mean"], label=label, **line_kw)
    ax.fill_between(g[x], g["mean"] - std, g["mean"] + std, color=line.get_color(), alpha=0.2, lw=0)


def colors(n: int, cmap: str = "viridis") -> list:
    """``n`` distinct colours from a sequential colormap (for ordered values such as p_cot)."""
    return [plt.get_cmap(cmap)(v) for v in np.linspace(0.05, 0.9, max(n, 1))]
