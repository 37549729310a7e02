"""Pictures people look at: heightmaps, affordance overlays. matplotlib with the Agg backend."""
from __future__ import annotations

from pathlib import Path

from sim2real.heightmap import HeightmapObservation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heightmap_extent(obs: HeightmapObservation):
    """imshow extent (left, right, bottom, top) in metres: columns are x, rows are y."""
    b = obs.workspace.bounds
    return (b[0, 0], b[0, 1], b[1, 1], b[1, 0])


def save_heightmap_png(obs: HeightmapObservation, path, title: str | None = None) -> None:
    """Colour and height side by side, axes in metres, height colour bar in metres."""
    plt = _pyplot()
    fig, (ax_c, ax_h) = plt.subplots(1, 2, figsize=(7.5, 7.5), constrained_layout=True)
    extent = heightmap_extent(obs)
    ax_c.imshow(obs.color, extent=extent, interpolation="nearest")
    ax_c.set_title("colour")
    im = ax_h.imshow(obs.height, extent=extent, cmap="viridis", interpolation="nearest",
                     vmin=0.0, vmax=max(float(obs.height.max()), 1e-3))
    ax_h.set_title("height above table")
    for ax in (ax_c, ax_h):
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    fig.colorbar(im, ax=ax_h, label="height (m)", shrink=0.8)
    if title:
        fig.suptitle(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
