"""Affordance picture in the style of CLIPort's ``notebooks/affordances.ipynb``.

A 2x2 figure, the heightmap shown transposed (x across, as the notebook does): input RGB,
input height, pick affordance (softmax of the attention logits over the RGB) and place
affordance (softmax of the transport logits summed over the 36 rotations), each with the
argmax and a 30-pixel line along the gripper angle.
"""
from __future__ import annotations

import numpy as np

HEATMAP_SCALE = 30.0
"""Display gain of the probability maps (the notebook's ``affordance_heatmap_scale``)."""


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


def _grasp_line(ax, pixel, theta, color):
    """Line of length 30 px through ``pixel`` (row, col) at angle ``theta`` in the transposed view."""
    half = 15.0
    r, c = pixel
    x0, y0 = r + half * np.sin(theta), c + half * np.cos(theta)
    x1, y1 = r - half * np.sin(theta), c - half * np.cos(theta)
    ax.plot((x1, x0), (y1, y0), color=color, linewidth=1.5)
    ax.plot(r, c, marker="o", markersize=5, markerfacecolor="none", markeredgecolor=color)


def save_affordance_png(path, image: np.ndarray, action, title: str | None = None) -> None:
    """Write the figure for ``action`` (PickPlaceAction with logit maps) on ``image`` (320,160,6)."""
    from sim2real.viz import _pyplot

    plt = _pyplot()
    color = np.clip(image[:, :, :3], 0, 255).astype(np.uint8).transpose(1, 0, 2)
    height = image[:, :, 3].transpose(1, 0)
    pick = _softmax(action.pick_logits)
    place = _softmax(action.place_logits).sum(axis=0)
    fig, axs = plt.subplots(2, 2, figsize=(13, 7))
    panels = [(axs[0, 0], "Input RGB"), (axs[0, 1], "Input height"), (axs[1, 0], "Pick affordance"),
              (axs[1, 1], "Place affordance")]
    for ax, name in panels:
        ax.xaxis.set_visible(False)
        ax.yaxis.set_visible(False)
        ax.set_title(name)
    axs[0, 0].imshow(color)
    axs[0, 1].imshow(height, cmap="viridis")
    for ax, prob, pose, cmap in ((axs[1, 0], pick, action.pick, "inferno"), (axs[1, 1], place, action.place, "viridis")):
        ax.imshow(color)
        # the notebook's display: uint8(prob * 255 * scale), saturating, zeros masked
        shown = np.clip(prob * 255.0 * HEATMAP_SCALE, 0, 255).astype(np.uint8).transpose(1, 0)
        ax.imshow(np.ma.masked_equal(shown, 0), cmap=cmap, alpha=0.75, vmin=0, vmax=255)
        _grasp_line(ax, pose.pixel, -pose.theta, "r")
    for ax in axs.flat:  # keep the grasp lines from widening the axes past the image
        ax.set_xlim(-0.5, image.shape[0] - 0.5)
        ax.set_ylim(image.shape[1] - 0.5, -0.5)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
