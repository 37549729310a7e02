"""Exact projective rendering of a planar board and of planes, for tests and synthetic runs.

A plane seen by a pinhole camera is a homography, so ``cv2.warpPerspective`` of the board image
renders it exactly (no mesh, no texture filtering of a GPU). We supersample and area-average to
avoid aliasing, so corners land where the geometry says to well under 0.1 px.
"""
from __future__ import annotations

import numpy as np

from sim2real.calibration.board import BoardConfig, board_image
from sim2real.errors import InputError


def _supersampled_K(K: np.ndarray, s: int) -> np.ndarray:
    """Camera matrix of an image s times larger whose s x s blocks average to the original pixels."""
    Ks = np.array(K, dtype=np.float64).copy()
    Ks[0, 0] *= s
    Ks[1, 1] *= s
    Ks[0, 2] = (K[0, 2] + 0.5) * s - 0.5
    Ks[1, 2] = (K[1, 2] + 0.5) * s - 0.5
    return Ks


def render_board(cfg: BoardConfig, K, size, T_camera_board, background=None, supersample: int = 3,
                 noise_sigma: float = 0.0, blur_sigma: float = 0.0, rng=None) -> np.ndarray:
    """RGB image of the board (face, with its white margin) seen by a pinhole camera.

    Args:
        K: (3, 3) camera matrix; size: (width, height) pixels.
        T_camera_board: (4, 4) board frame -> camera frame (metres).
        background: (H, W, 3) uint8 image behind the board, or None for mid grey.
        noise_sigma: std of additive Gaussian pixel noise (grey levels); blur_sigma: Gaussian blur (px).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    import cv2

    w, h = int(size[0]), int(size[1])
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_camera_board, dtype=np.float64)
    if T.shape != (4, 4):
        raise InputError(f"T_camera_board must be 4x4, got {T.shape}")
    # the board must be in front of the camera, facing it
    corners = np.array([[0, 0, 0], [cfg.size_m[0], 0, 0], [0, cfg.size_m[1], 0], [*cfg.size_m, 0]])
    if np.any((T[:3, :3] @ corners.T + T[:3, 3:4])[2] <= 0.01):
        raise InputError("the board is (partly) behind the camera; choose a pose in front of it")
    s = max(1, int(supersample))
    Ks = _supersampled_K(K, s)
    depth_px = float(np.min((T[:3, :3] @ corners.T + T[:3, 3:4])[2]))
    px_per_m = max(2000.0, 2.0 * Ks[0, 0] / depth_px)  # board texels at least ~2x finer than image pixels
    tex, px_per_m, m_px = board_image(cfg, px_per_m)
    m = m_px / px_per_m
    # texture pixel (col, row) centre -> board metres (margin shifts the origin)
    A = np.array([[1 / px_per_m, 0, 0.5 / px_per_m - m], [0, 1 / px_per_m, 0.5 / px_per_m - m], [0, 0, 1]])
    H = Ks @ np.column_stack([T[:3, 0], T[:3, 1], T[:3, 3]]) @ A
    big = (w * s, h * s)
    face = cv2.warpPerspective(tex, H, big, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpPerspective(np.full(tex.shape, 255, np.uint8), H, big, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if background is None:
        bg = np.full((h * s, w * s), 110.0)
    else:
        bg = cv2.resize(cv2.cvtColor(np.asarray(background, np.uint8), cv2.COLOR_RGB2GRAY), big,
                        interpolation=cv2.INTER_LINEAR).astype(np.float64)
    alpha = mask.astype(np.float64) / 255.0
    img = alpha * face + (1 - alpha) * bg
    if s > 1:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    if noise_sigma > 0:
        rng = np.random.default_rng() if rng is None else rng
        img = img + rng.normal(0.0, noise_sigma, img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def render_plane_depth(K, size, T_camera_plane) -> np.ndarray:
    """Depth (metres, float64 (H, W)) of the plane z = 0 of frame ``plane`` seen by a pinhole camera.

    Pixels whose ray misses the plane (parallel or behind) get 0.
    """
    w, h = int(size[0]), int(size[1])
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_camera_plane, dtype=np.float64)
    n = T[:3, 2]                      # plane normal in the camera frame
    p0 = T[:3, 3]                     # a point on the plane
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    denom = rays @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p0 @ n) / denom          # ray (x, y, 1) * z hits the plane
    z[~np.isfinite(z) | (z <= 0)] = 0.0
    return z


def add_boxes(depth, K, T_camera_plane, boxes) -> np.ndarray:
    """Depth of axis-aligned boxes standing on the plane (plane frame x, y, size, height), min-composited.

    Only the box tops are rendered (what a camera looking down sees first): enough to make
    outliers for the plane fit.
    """
    out = np.array(depth, dtype=np.float64, copy=True)
    for (x, y, sx, sy, hz) in boxes:
        T_top = np.array(T_camera_plane, dtype=np.float64) @ _translate(0, 0, hz)
        top = render_plane_depth(K, out.shape[::-1], T_top)
        # keep pixels whose top-plane hit lies inside the box footprint
        pts = _backproject(top, K)
        T_plane_cam = np.linalg.inv(T_top)
        local = pts @ T_plane_cam[:3, :3].T + T_plane_cam[:3, 3]
        inside = (top > 0) & (np.abs(local[..., 0] - x) <= sx / 2) & (np.abs(local[..., 1] - y) <= sy / 2)
        closer = inside & ((out == 0) | (top < out))
        out[closer] = top[closer]
    return out


def _translate(x, y, z) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def _backproject(depth, K) -> np.ndarray:
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], axis=-1)
