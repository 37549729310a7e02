"""A straightforward implementation of the reference heightmap algorithm.

Written from the description of GenSim's ``cliport/utils/utils.py`` (get_pointcloud,
transform_pointcloud, get_heightmap, get_fused_heightmap): dense meshgrid back-projection,
homogeneous coordinates, a full argsort by height and a scatter in which the highest point
wins. It is the baseline of ``bench/heightmap.py`` and the oracle of the exactness tests; the
project's own implementation is in ``sim2real/heightmap.py``.
"""
import numpy as np


def pointcloud(depth, K):
    """(H, W) depth -> (H, W, 3) float32 camera-frame points via a dense meshgrid."""
    h, w = depth.shape
    cols, rows = np.meshgrid(np.linspace(0, w - 1, w), np.linspace(0, h - 1, h))
    x = (cols - K[0, 2]) * (depth / K[0, 0])
    y = (rows - K[1, 2]) * (depth / K[1, 1])
    return np.float32([x, y, depth]).transpose(1, 2, 0)


def transform(points, T):
    """Homogeneous 4x4 transform of (H, W, 3) points, summed with np.sum over the 4 terms."""
    homogeneous = np.pad(points.copy(), ((0, 0), (0, 0), (0, 1)), "constant", constant_values=1)
    out = points.copy()
    for i in range(3):
        out[..., i] = np.sum(T[i, :] * homogeneous, axis=-1)
    return out


def heightmap(points, colors, bounds, pixel_size):
    """Sort all in-bounds points by z and scatter them, so the highest point of a cell wins."""
    width = int(np.round((bounds[0, 1] - bounds[0, 0]) / pixel_size))
    height = int(np.round((bounds[1, 1] - bounds[1, 0]) / pixel_size))
    hmap = np.zeros((height, width), dtype=np.float32)
    cmap = np.zeros((height, width, colors.shape[-1]), dtype=np.uint8)
    keep = np.ones(points.shape[:-1], dtype=bool)
    for axis in range(3):
        keep &= (points[..., axis] >= bounds[axis, 0]) & (points[..., axis] < bounds[axis, 1])
    points, colors = points[keep], colors[keep]
    order = np.argsort(points[:, -1])
    points, colors = points[order], colors[order]
    px = np.clip(np.int32(np.floor((points[:, 0] - bounds[0, 0]) / pixel_size)), 0, width - 1)
    py = np.clip(np.int32(np.floor((points[:, 1] - bounds[1, 0]) / pixel_size)), 0, height - 1)
    hmap[py, px] = points[:, 2] - bounds[2, 0]
    for c in range(colors.shape[-1]):
        cmap[py, px, c] = colors[:, c]
    return hmap, cmap


def fused(colors, depths, Ks, Ts, bounds, pixel_size):
    """Per-camera heightmaps fused by mean colour over non-black views and max height."""
    hmaps, cmaps = [], []
    for color, depth, K, T in zip(colors, depths, Ks, Ts):
        h, c = heightmap(transform(pointcloud(depth, K), T), color, bounds, pixel_size)
        hmaps.append(h), cmaps.append(c)
    cmaps, hmaps = np.float32(cmaps), np.float32(hmaps)
    seen = np.sum(cmaps, axis=3) > 0
    repeat = np.sum(seen, axis=0)
    repeat[repeat == 0] = 1
    cmap = np.uint8(np.round(np.sum(cmaps, axis=0) / repeat[..., None]))
    return np.max(hmaps, axis=0), cmap
