"""Does the real heightmap look like the simulator's? A check image and statistics with warnings.

The statistics are compared against the normalisation constants GenSim's transporter stream uses
(``cliport/utils/utils.py::preprocess``, dist='transporter'): colour / 255 has mean 0.18877631 and
std 0.07276466 (same for R, G, B); height (metres) has mean 0.00509261 and std 0.00903967. A real
heightmap whose means sit many of those standard deviations away will be out of distribution for
the policy (bright table, wrong table height, tilted workspace).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.heightmap import HeightmapObservation

from sim2real.normalisation import TRANSPORTER_DEPTH_MEAN, TRANSPORTER_DEPTH_STD
from sim2real.normalisation import TRANSPORTER_COLOR_MEAN as _COLOR_MEANS
from sim2real.normalisation import TRANSPORTER_COLOR_STD as _COLOR_STDS

TRANSPORTER_COLOR_MEAN = _COLOR_MEANS[0]
"""The transporter stream uses the same mean and std for R, G and B."""
TRANSPORTER_COLOR_STD = _COLOR_STDS[0]

COLOR_Z_WARN = 1.5
"""Warn when the mean colour is more than this many reference stds from the reference mean."""

HEIGHT_Z_WARN = 1.5
HOLE_FRACTION_WARN = 0.05
"""Warn when more than this fraction of heightmap cells received no depth point."""

TABLE_ON_BOUND_M = 0.0005
"""A table whose filled cells read lower than this (m, median) sits on the workspace's z = 0 bound:
depth noise then drops about half its points below the bound, which empties cells in stripes
whatever the camera's placement. The simulator's heightmaps read the table at
:data:`sim2real.twin.camera.GENSIM_TABLE_READING` (1.6 mm)."""


@dataclass(frozen=True)
class HeightmapStats:
    """Summary of a heightmap and its distance from the simulator's statistics.

    Attributes:
        color_mean: mean of colour / 255 over all cells and channels.
        color_z: (color_mean - reference mean) / reference std.
        height_mean, height_p95: metres; height_z as color_z.
        hole_fraction: cells with neither colour nor height.
        warnings: human-readable warnings (empty when all is well).
    """

    color_mean: float
    color_z: float
    height_mean: float
    height_z: float
    height_p95: float
    hole_fraction: float
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def heightmap_stats(obs: HeightmapObservation, empty_table: bool = True) -> HeightmapStats:
    """Compare a heightmap with GenSim's transporter normalisation constants.

    Args:
        empty_table: the scene is an empty table, so the heights should be ~0 everywhere (a
            stricter height check: p95 must be < 1 cm).
    """
    color = obs.color.astype(np.float64) / 255.0
    height = obs.height.astype(np.float64)
    c_mean = float(color.mean())
    h_mean = float(height.mean())
    c_z = (c_mean - TRANSPORTER_COLOR_MEAN) / TRANSPORTER_COLOR_STD
    h_z = (h_mean - TRANSPORTER_DEPTH_MEAN) / TRANSPORTER_DEPTH_STD
    p95 = float(np.percentile(height, 95))
    holes = float(np.mean(~obs.color.any(axis=-1) & (obs.height == 0)))
    warnings = []
    if abs(c_z) > COLOR_Z_WARN:
        kind = "brighter" if c_z > 0 else "darker"
        warnings.append(f"mean colour {c_mean:.3f} is {abs(c_z):.1f} std {kind} than the simulator's "
                        f"{TRANSPORTER_COLOR_MEAN:.3f}; cover the table with a dark matte sheet or adjust exposure")
    if abs(h_z) > HEIGHT_Z_WARN:
        warnings.append(f"mean height {h_mean * 1000:.1f} mm is {abs(h_z):.1f} std from the simulator's "
                        f"{TRANSPORTER_DEPTH_MEAN * 1000:.1f} mm; re-run `sim2real calibrate table` "
                        "(the table may not be at z = 0)")
    if empty_table and p95 > 0.01:
        warnings.append(f"95th percentile height {p95 * 1000:.1f} mm on an empty table (should be ~0): the "
                        "workspace frame is tilted or offset; re-run `sim2real calibrate table`")
    if holes > HOLE_FRACTION_WARN:
        warnings.append(_holes_warning(obs, holes))
    return HeightmapStats(c_mean, float(c_z), h_mean, float(h_z), p95, holes, warnings)


def _holes_warning(obs: HeightmapObservation, holes: float) -> str:
    """Why cells are empty: a table on the z = 0 bound (its points fall below it), else the view."""
    from sim2real.twin.camera import GENSIM_TABLE_READING

    filled = obs.color.any(axis=-1) | (obs.height != 0)
    table = float(np.median(obs.height[filled])) if filled.any() else 0.0
    if table < TABLE_ON_BOUND_M:
        return (f"{holes * 100:.1f}% of heightmap cells are empty and the table reads {table * 1000:.2f} mm: it sits "
                "on the workspace's z = 0 bound, so depth noise drops about half its points below it. Put the "
                f"workspace frame {GENSIM_TABLE_READING * 1000:.1f} mm below the table (the simulator's heightmaps "
                "read the table that high); the camera's placement is not the cause")
    return (f"{holes * 100:.1f}% of heightmap cells are empty (no depth) although the table reads "
            f"{table * 1000:.1f} mm: the camera does not see the whole workspace, objects shadow it, or depth has "
            "holes; move the camera closer / more overhead, or enable the hole-filling filter")


def save_check_image(obs: HeightmapObservation, path, stats: Optional[HeightmapStats] = None,
                     grid_m: float = 0.1, title: str = "") -> Path:
    """Colour and height maps with the workspace bounds and a 10 cm grid overlaid (PNG).

    A person sees at once whether the calibration is right: the table should be flat (uniform
    height colour ~0), straight edges straight, and objects inside the bounds where they are.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = obs.workspace.bounds
    extent = (b[0, 0], b[0, 1], b[1, 1], b[1, 0])
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 8.0), constrained_layout=True)
    axes[0].imshow(obs.color, extent=extent, interpolation="nearest")
    im = axes[1].imshow(obs.height * 1000.0, extent=extent, cmap="viridis", interpolation="nearest",
                        vmin=0.0, vmax=max(20.0, float(np.percentile(obs.height, 99.5)) * 1000.0))
    fig.colorbar(im, ax=axes[1], label="height above table (mm)", shrink=0.7)
    for ax, name in zip(axes, ("colour", "height")):
        for x in np.arange(np.ceil(b[0, 0] / grid_m) * grid_m, b[0, 1] + 1e-9, grid_m):
            ax.axvline(x, color="w", lw=0.5, alpha=0.7)
        for y in np.arange(np.ceil(b[1, 0] / grid_m) * grid_m, b[1, 1] + 1e-9, grid_m):
            ax.axhline(y, color="w", lw=0.5, alpha=0.7)
        ax.add_patch(plt.Rectangle((b[0, 0], b[1, 0]), b[0, 1] - b[0, 0], b[1, 1] - b[1, 0], fill=False,
                                   edgecolor="red", lw=2))
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_title(f"{name} (bounds red, {grid_m * 100:.0f} cm grid)")
    lines = [title] if title else []
    if stats is not None:
        lines.append(f"colour mean {stats.color_mean:.3f} (sim {TRANSPORTER_COLOR_MEAN:.3f}, z {stats.color_z:+.1f}); "
                     f"height mean {stats.height_mean * 1000:.1f} mm (sim {TRANSPORTER_DEPTH_MEAN * 1000:.1f}, "
                     f"z {stats.height_z:+.1f}); holes {stats.hole_fraction * 100:.1f}%")
        lines += [f"WARNING: {w}" for w in stats.warnings]
    if lines:
        import textwrap

        wrapped = [w for line in lines for w in textwrap.wrap(line, 120)]
        fig.suptitle("\n".join(wrapped), fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
