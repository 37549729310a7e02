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


def _softmax(x):
    import numpy as np

    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


def _cell_centre(workspace, pixel):
    """(x, y) metres of the centre of heightmap cell ``pixel`` (row, col)."""
    b, s = workspace.bounds, workspace.pixel_size
    return b[0, 0] + (pixel[1] + 0.5) * s, b[1, 0] + (pixel[0] + 0.5) * s


def _grasp_line(ax, workspace, pixel, theta, color, length_px: float = 30.0):
    """A ``length_px`` line through ``pixel`` along the gripper angle ``theta`` (CLIPort's notebook)."""
    import numpy as np

    x, y = _cell_centre(workspace, pixel)
    half = 0.5 * length_px * workspace.pixel_size
    dx, dy = half * np.cos(-theta), half * np.sin(-theta)
    ax.plot((x - dx, x + dx), (y - dy, y + dy), color=color, linewidth=1.5)
    ax.plot(x, y, marker="o", markersize=5, markerfacecolor="none", markeredgecolor=color)


def affordance_figure(image, action, title: str | None = None, workspace=None):
    """The affordance figure (a matplotlib Figure), oriented and scaled like :func:`save_heightmap_png`.

    Four panels in metres: input RGB, input height, pick affordance (softmax of the attention
    logits) and place affordance (softmax of the transport logits summed over the rotations),
    each probability map divided by its maximum so that a flat map shows (uniformly at 1) instead
    of vanishing, with a colour bar; the argmax and a 30-pixel line along the gripper angle as in
    CLIPort's ``notebooks/affordances.ipynb``.

    Args:
        image: (rows, cols, 6) float policy input (RGB 0-255 + height x3).
        action: PickPlaceAction with ``pick_logits`` (rows, cols) and ``place_logits`` (R, rows, cols).
    """
    import numpy as np

    from sim2real.workspace import GENSIM_WORKSPACE

    ws = workspace or GENSIM_WORKSPACE
    plt = _pyplot()
    b = ws.bounds
    extent = (b[0, 0], b[0, 1], b[1, 1], b[1, 0])
    color = np.clip(image[:, :, :3], 0, 255).astype(np.uint8)
    pick = _softmax(action.pick_logits)
    place = _softmax(action.place_logits).sum(axis=0)
    fig, axs = plt.subplots(1, 4, figsize=(13.0, 6.0), constrained_layout=True)
    axs[0].imshow(color, extent=extent, interpolation="nearest")
    axs[0].set_title("input RGB")
    im = axs[1].imshow(image[:, :, 3], extent=extent, cmap="viridis", interpolation="nearest")
    axs[1].set_title("input height")
    fig.colorbar(im, ax=axs[1], label="height (m)", shrink=0.6)
    for ax, prob, pose, name, cmap in ((axs[2], pick, action.pick, "pick", "inferno"),
                                       (axs[3], place, action.place, "place", "viridis")):
        ax.imshow(color, extent=extent, interpolation="nearest")
        peak = float(prob.max())
        flat = float(prob.min()) >= peak * (1 - 1e-6)
        im = ax.imshow(prob / peak, extent=extent, cmap=cmap, alpha=0.7, vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(im, ax=ax, label=f"{name} probability / max (max {peak:.2g})", shrink=0.6)
        ax.set_title(f"{name} affordance" + (" (flat)" if flat else ""))
        _grasp_line(ax, ws, pose.pixel, pose.theta, "r")
    for ax in axs:
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 90)))
    return fig


def save_affordance_png(path, image, action, title: str | None = None, workspace=None) -> None:
    """Write :func:`affordance_figure` to ``path`` (PNG)."""
    plt = _pyplot()
    fig = affordance_figure(image, action, title, workspace)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
