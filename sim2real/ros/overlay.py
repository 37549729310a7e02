"""The affordance overlay the policy node publishes for RViz (pure numpy + OpenCV).

The heightmap colours, tinted by the softmax of the pick logits (red) and of the place logits
(maximum over rotations, blue), with the chosen pick (circle) and place (square) pixels and a
tick showing each rotation. Rows are y and columns x, as in the heightmap.
"""
from __future__ import annotations

import numpy as np

from sim2real.action import PickPlaceAction
from sim2real.errors import InputError
from sim2real.heightmap import HeightmapObservation


def softmax_map(logits: np.ndarray) -> np.ndarray:
    """(rows, cols) probabilities (sum 1) of logits of shape (rows, cols) or (R, rows, cols) (max over R first)."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 3:
        x = x.max(axis=0)
    if x.ndim != 2:
        raise InputError(f"logits must be (rows, cols) or (rotations, rows, cols), got {x.shape}")
    x = x - np.nanmax(x)
    e = np.exp(x)
    return e / e.sum()


def affordance_overlay(obs: HeightmapObservation, action: PickPlaceAction, alpha: float = 0.6) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB overlay of ``action`` on ``obs`` (see the module docstring)."""
    import cv2

    base = obs.color.astype(np.float32)
    tint = np.zeros_like(base)
    for logits, channel in ((action.pick_logits, 0), (action.place_logits, 2)):
        if logits is not None:
            p = softmax_map(logits)
            if p.shape != base.shape[:2]:
                raise InputError(f"logits shape {p.shape} differs from the heightmap {base.shape[:2]}")
            tint[..., channel] = 255.0 * p / max(p.max(), 1e-12)
    weight = alpha * tint.max(axis=2, keepdims=True) / 255.0
    out = np.clip(base * (1 - weight) + tint * weight, 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(out)
    for pose, color, square in ((action.pick, (255, 64, 64), False), (action.place, (64, 128, 255), True)):
        row, col = int(pose.pixel[0]), int(pose.pixel[1])
        center = (col, row)  # OpenCV points are (x=col, y=row)
        if square:
            cv2.rectangle(out, (col - 4, row - 4), (col + 4, row + 4), color, 1)
        else:
            cv2.circle(out, center, 4, color, 1)
        tip = (int(round(col + 8 * np.cos(pose.theta))), int(round(row + 8 * np.sin(pose.theta))))
        cv2.line(out, center, tip, color, 1)
    return out
