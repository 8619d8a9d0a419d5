"""One figure style for the whole report: readable on a laptop screen, colour-blind-safe
palette, light grid."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # the lab draws into files; no display needed

import matplotlib.pyplot as plt

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
        "legend.frameon": False,
        "legend.fontsize": 8,
    }
)


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.4, height: float = 3.4):
    """A new figure of ``nrows`` x ``ncols`` panels, each about ``width`` x ``height``
    inches; returns (figure, axes), axes flattened to a list."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, list(axes.flat)
