"""Images the page shows, encoded once per frame: camera JPEG, heightmap colour and height PNGs,
policy affordance overlays (RGBA PNG). OpenCV, no matplotlib (a frame must encode in milliseconds).
"""
from __future__ import annotations

import numpy as np

HEIGHT_DISPLAY_MIN_M = 0.05
"""The height image's colour scale spans [0, max(height max, this)] metres."""


def _cv2():
    import cv2

    return cv2


def jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes()


def png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) RGB or (H, W, 4) RGBA uint8 image."""
    cv2 = _cv2()
    img = rgb[..., ::-1] if rgb.shape[-1] == 3 else rgb[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return buf.tobytes()


def height_rgb(height: np.ndarray) -> tuple[np.ndarray, float]:
    """(rows, cols, 3) uint8 viridis image of a heightmap in metres, and the scale's top (m)."""
    cv2 = _cv2()
    vmax = max(float(np.max(height)) if height.size else 0.0, HEIGHT_DISPLAY_MIN_M)
    scaled = np.clip(np.asarray(height, np.float32) / vmax * 255.0, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)
    return bgr[..., ::-1].copy(), vmax


def affordance_rgba(logits: np.ndarray, color=(255, 40, 40)) -> np.ndarray:
    """(rows, cols, 4) uint8: ``color`` with alpha = the softmax of ``logits`` (rows, cols) normalised to its max.

    For place logits (n_rot, rows, cols) pass their maximum over rotations.
    """
    x = np.asarray(logits, np.float64)
    x = np.exp(x - np.max(x))
    p = x / np.max(x) if np.max(x) > 0 else x
    out = np.zeros(p.shape + (4,), np.uint8)
    out[..., :3] = color
    out[..., 3] = np.clip(np.sqrt(p) * 220, 0, 255).astype(np.uint8)  # sqrt: show the tail too
    return out
