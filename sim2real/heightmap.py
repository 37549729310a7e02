"""Project calibrated RGB-D frames into the simulator's top-down heightmap.

This reproduces, cell for cell, GenSim's / CLIPort's reconstruction in ``cliport/utils/utils.py``
(``get_pointcloud`` -> ``transform_pointcloud`` -> ``get_heightmap`` per camera, then
``get_fused_heightmap`` across cameras):

* back-projection in float64, points stored as float32, then the camera-to-base transform summed
  term by term in the transform's precision and stored as float32 again;
* a point is kept when ``min <= coord < max`` on all three axes (NaN never passes);
* cell = floor((coord - min) / pixel), clipped into the grid;
* in each cell the highest point wins; among points of equal height the winner is the one the
  reference's ``np.argsort`` puts last, so we call the very same ``np.argsort`` whenever that
  choice could change the colour;
* empty cells stay height 0 and colour black;
* several cameras fuse as the simulator does: colour = rounded mean over the views whose colour
  is not black, height = max over views.

The fast path differs from the reference only in how it finds each cell's winner: a per-cell
maximum instead of a full sort, falling back to the reference's sort only when two equally high
points with different colours compete for a cell. Output is bit-identical (tested).
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from sim2real.camera import validate_K, validate_color, validate_depth
from sim2real.errors import InputError
from sim2real.transforms import validate_rigid_matrix
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

HEIGHT_CHANNELS = 3
"""The policy input repeats the height channel three times (RGB + h, h, h)."""


class EmptyHeightmapWarning(UserWarning):
    """No point of any frame fell inside the workspace bounds."""


@dataclass(frozen=True, eq=False)
class HeightmapObservation:
    """A top-down observation of the workspace, as the policy sees it.

    Attributes:
        color: (rows, cols, 3) uint8 RGB; (320, 160, 3) for GenSim's workspace.
        height: (rows, cols) float32 metres above the workspace's z-min (the table).
        workspace: the grid the maps are laid on.
        stamp: time of the newest frame used, seconds.
    """

    color: np.ndarray
    height: np.ndarray
    workspace: Workspace = GENSIM_WORKSPACE
    stamp: float = 0.0
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        rows, cols = self.workspace.shape
        color, height = np.asarray(self.color), np.asarray(self.height)
        if color.shape != (rows, cols, 3) or color.dtype != np.uint8:
            raise InputError(f"heightmap color must be ({rows}, {cols}, 3) uint8, got {color.shape} {color.dtype}")
        if height.shape != (rows, cols) or height.dtype != np.float32:
            raise InputError(f"heightmap height must be ({rows}, {cols}) float32 metres, got {height.shape} {height.dtype}")
        if not np.all(np.isfinite(height)):
            raise InputError("heightmap height contains NaN or inf")


def policy_input(obs: HeightmapObservation) -> np.ndarray:
    """The 6-channel image of the reference ``get_image``: (rows, cols, 6) float32, RGB 0-255 + h, h, h."""
    h = obs.height[..., None]
    return np.concatenate([obs.color, h, h, h], axis=2)


def observation_from_policy_input(image, workspace: Workspace = GENSIM_WORKSPACE, stamp: float = 0.0) -> HeightmapObservation:
    """Inverse of :func:`policy_input` for images whose colour channels hold integers 0-255."""
    image = np.asarray(image)
    rows, cols = workspace.shape
    if image.shape != (rows, cols, 6):
        raise InputError(f"policy image must be ({rows}, {cols}, 6) (RGB 0-255 + height x3), got {image.shape}")
    rgb = image[..., :3]
    if not np.all(np.isfinite(image)) or rgb.min() < 0 or rgb.max() > 255:
        raise InputError("policy image colour channels must be finite values in 0-255")
    return HeightmapObservation(np.round(rgb).astype(np.uint8), image[..., 3].astype(np.float32), workspace, stamp)


# ----------------------------------------------------------------------------------------------
# Geometry (exact reproductions of the reference arithmetic)
# ----------------------------------------------------------------------------------------------

def camera_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Back-project a depth image: (H, W) metres -> (H, W, 3) float32 points in the camera frame.

    Same arithmetic as the reference ``get_pointcloud``: (u - cx) * (depth / fx), in the
    promoted dtype of the inputs, rounded to float32 at the end.
    """
    height, width = depth.shape
    u = np.linspace(0, width - 1, width)
    v = np.linspace(0, height - 1, height)
    points = np.empty((height, width, 3), dtype=np.float32)
    points[..., 0] = (u[None, :] - K[0, 2]) * (depth / K[0, 0])
    points[..., 1] = (v[:, None] - K[1, 2]) * (depth / K[1, 1])
    points[..., 2] = depth
    return points


def transform_points(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (..., 3) float32 points; returns a new float32 array.

    Summed as ((T[i,0] x + T[i,1] y) + T[i,2] z) + T[i,3] in the promoted dtype, which is the
    order the reference's ``np.sum(T[i] * homogeneous, axis=-1)`` uses (checked bit for bit).
    Unlike the reference, the input is not modified.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    out = np.empty_like(points)
    for i in range(3):
        out[..., i] = ((T[i, 0] * x + T[i, 1] * y) + T[i, 2] * z) + T[i, 3]
    return out


def _in_bounds(points: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Boolean mask of points with min <= coord < max on x, y and z (NaN fails)."""
    mask = _axis_in_bounds(points[..., 0], bounds[0])
    mask &= _axis_in_bounds(points[..., 1], bounds[1])
    mask &= _axis_in_bounds(points[..., 2], bounds[2])
    return mask


def _axis_in_bounds(coord: np.ndarray, lo_hi: np.ndarray) -> np.ndarray:
    """min <= coord < max, the reference's half-open test (NaN fails)."""
    return (coord >= lo_hi[0]) & (coord < lo_hi[1])


def _cells(x: np.ndarray, y: np.ndarray, workspace: Workspace) -> np.ndarray:
    """Flat cell index of points (x, y): floor((coord - min) / pixel), clipped to the grid."""
    rows, cols = workspace.shape
    b, s = workspace.bounds, workspace.pixel_size
    px = np.clip(np.int32(np.floor((x - b[0, 0]) / s)), 0, cols - 1)
    py = np.clip(np.int32(np.floor((y - b[1, 0]) / s)), 0, rows - 1)
    return py.astype(np.intp) * cols + px


def heightmap_from_points(points: np.ndarray, colors: np.ndarray, workspace: Workspace = GENSIM_WORKSPACE):
    """Top-down orthographic heightmap of a point cloud (reference ``get_heightmap``).

    Args:
        points: (..., 3) float32 points in the base frame, metres.
        colors: (..., 3) uint8 colours aligned with ``points``.
        workspace: bounds and pixel size.

    Returns:
        height: (rows, cols) float32 metres above z-min; 0 where no point fell.
        color: (rows, cols, 3) uint8; black where no point fell.
    """
    valid = _in_bounds(points, workspace.bounds)
    pts = points[valid]
    return _scatter_highest(pts[:, 0], pts[:, 1], pts[:, 2], _pack_rgb(colors[valid].reshape(-1, 3)), workspace)


def _scatter_highest(x, y, z, packed_colors, workspace: Workspace, color_index=None):
    """Heightmap and colormap of in-bounds points (N,) x, y, z float32.

    Args:
        packed_colors: (M,) uint32 colours from :func:`_pack_rgb`; point i has colour
            ``packed_colors[color_index[i]]`` (or ``packed_colors[i]`` when ``color_index`` is None).

    The points must be in the reference's order (row-major over the image), because where
    equally high points of different colours share a cell the reference's sort decides.
    """
    rows, cols = workspace.shape
    height = np.zeros(rows * cols, dtype=np.float32)
    color = np.zeros(rows * cols, dtype=np.uint32)
    if len(z):
        colors = packed_colors if color_index is None else packed_colors[color_index]
        cell = _cells(x, y, workspace)
        winners, ambiguous = _cell_maxima(z, cell, colors, rows * cols)
        if ambiguous:  # equal heights with different colours: the reference's sort decides
            order = np.argsort(z)  # the very call the reference makes, on the same array
            is_top = np.zeros(len(z), dtype=bool)
            is_top[winners] = True
            winners = order[is_top[order]]  # a cell's last point in that order is one of its maxima
        height[cell[winners]] = z[winners] - workspace.bounds[2, 0]
        color[cell[winners]] = colors[winners]
    return height.reshape(rows, cols), _unpack_rgb(color).reshape(rows, cols, 3)


def _cell_maxima(z: np.ndarray, cell: np.ndarray, colors: np.ndarray, n_cells: int):
    """Indices of the points at their cell's maximum height, and whether a tie is ambiguous.

    Where several points share a cell's maximum height with identical colours, any of them gives
    the reference's result; where their colours (packed, (N,) uint32) differ, only the
    reference's sort order can say which one wins, and the caller must use it.

    Returns:
        (indices (M,) of the points at their cell's maximum, ambiguous: bool).
    """
    top = np.full(n_cells, -np.inf, dtype=np.float32)
    np.maximum.at(top, cell, z)
    at_top = np.flatnonzero(z == top[cell])
    counts = np.bincount(cell[at_top], minlength=n_cells)
    tied = at_top[counts[cell[at_top]] > 1]
    ambiguous = False
    if len(tied):
        first = np.zeros(n_cells, dtype=colors.dtype)
        first[cell[tied]] = colors[tied]
        ambiguous = bool(np.any(first[cell[tied]] != colors[tied]))
    return at_top, ambiguous


def _packed_pixels(color: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Packed colours (as :func:`_pack_rgb`) of the pixels at flat ``index`` of an (H, W, 3) image.

    Reads each pixel's 3 bytes as one little-endian 32-bit word through a strided view and masks
    off the 4th byte (the next pixel's red), so only the pixels that matter are touched.
    """
    raw = np.empty(color.size + 1, dtype=np.uint8)  # one spare byte for the last pixel's word
    raw[:-1] = color.reshape(-1)
    raw[-1] = 0
    words = np.lib.stride_tricks.as_strided(raw[:4].view("<u4"), shape=(color.size // 3,), strides=(3,))
    return (words[index] & np.uint32(0xFFFFFF)).astype(np.uint32)


def _pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) uint32, one byte per channel, so colours compare and move as one."""
    padded = np.zeros((len(colors), 4), dtype=np.uint8)
    padded[:, :3] = colors
    return padded.view("<u4").reshape(-1).astype(np.uint32)


def _unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_pack_rgb`: (N,) uint32 -> (N, 3) uint8 (a contiguous copy)."""
    return np.ascontiguousarray(packed.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3])


def fuse_heightmaps(heights: Sequence[np.ndarray], colors: Sequence[np.ndarray]):
    """Fuse per-camera maps as the simulator's ``get_fused_heightmap``.

    Colour is the mean over the views whose colour is not black (rounded half to even, as
    ``np.round``), height the maximum over views ("to handle occlusions").

    Returns:
        height: (rows, cols) float32; color: (rows, cols, 3) uint8.
    """
    if len(heights) == 1:  # the reference's arithmetic is the identity for one view
        return heights[0], colors[0]
    colormaps = np.float32(colors)
    heightmaps = np.float32(heights)
    seen = np.sum(colormaps, axis=3) > 0
    repeat = np.sum(seen, axis=0)
    repeat[repeat == 0] = 1
    color = np.uint8(np.round(np.sum(colormaps, axis=0) / repeat[..., None]))
    return np.max(heightmaps, axis=0), color


# ----------------------------------------------------------------------------------------------
# Frames -> observation
# ----------------------------------------------------------------------------------------------

def project_frame(color, depth, K, T_base_camera, workspace: Workspace = GENSIM_WORKSPACE):
    """Heightmap of one RGB-D frame; validates its inputs first.

    Args:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) float metres aligned to color; 0 or NaN = no reading.
        K: (3, 3) intrinsics of the color camera.
        T_base_camera: (4, 4) rigid camera-to-base transform.
        workspace: bounds and pixel size.

    Returns:
        (height (rows, cols) float32, color (rows, cols, 3) uint8, points_in_workspace int).
    """
    color = validate_color(color)
    depth = validate_depth(depth, shape=color.shape[:2])
    K = validate_K(K)
    T = validate_rigid_matrix(T_base_camera, "T_base_camera")
    index, x, y, z = _points_in_workspace(depth, K, T, workspace)
    height, cmap = _scatter_highest(x, y, z, _packed_pixels(color, index), workspace)
    return height, cmap, len(index)


_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads for the per-block arithmetic (numpy releases the GIL inside its loops)."""

_POOL: Optional[ThreadPoolExecutor] = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="sim2real-heightmap")
    return _POOL


def _points_in_workspace(depth, K, T, workspace: Workspace):
    """Base-frame points of the pixels that land in the workspace.

    Same values as ``transform_points(camera_points(depth, K), T)`` masked by the bounds (so
    depth 0 lands on the camera centre and NaN never passes, as in the reference), computed in
    one block of image rows per thread (measured: smaller blocks lose more to the GIL than they
    gain in cache); within a block z comes first and x, y only where z passes.

    Returns:
        (flat pixel indices (N,) in row-major order, x (N,), y (N,), z (N,) float32 metres).
    """
    height = depth.shape[0]
    rows = -(-height // _WORKERS)
    parts = list(_pool().map(lambda r0: _block_points(depth, K, T, workspace.bounds, r0, min(r0 + rows, height)),
                             range(0, height, rows)))
    return tuple(np.concatenate(p) for p in zip(*parts))


def _block_points(depth, K, T, b, r0: int, r1: int):
    """:func:`_points_in_workspace` for image rows r0..r1-1."""
    width = depth.shape[1]
    d = depth[r0:r1]
    u = np.linspace(0, width - 1, width) - K[0, 2]
    v = np.linspace(0, depth.shape[0] - 1, depth.shape[0])[r0:r1] - K[1, 2]
    xc = (u[None, :] * (d / K[0, 0])).astype(np.float32).reshape(-1)
    yc = (v[:, None] * (d / K[1, 1])).astype(np.float32).reshape(-1)
    zc = d.astype(np.float32).reshape(-1)
    # The reference multiplies T by float32 homogeneous points, so the sums run in this dtype;
    # widening once here (exact) saves a mixed-type cast in each of the nine products.
    wide = np.result_type(T.dtype, np.float32)
    xc, yc, zc = xc.astype(wide), yc.astype(wide), zc.astype(wide)
    z = _transform_row(T[2], xc, yc, zc)
    keep = np.flatnonzero(_axis_in_bounds(z, b[2]))
    xc, yc, zc, z = xc[keep], yc[keep], zc[keep], z[keep]
    x = _transform_row(T[0], xc, yc, zc)
    y = _transform_row(T[1], xc, yc, zc)
    inside = np.flatnonzero(_axis_in_bounds(x, b[0]) & _axis_in_bounds(y, b[1]))
    return keep[inside] + r0 * width, x[inside], y[inside], z[inside]


def _transform_row(row: np.ndarray, x, y, z) -> np.ndarray:
    """One output coordinate, ((r0 x + r1 y) + r2 z) + r3, rounded to float32.

    The sum runs in the dtype of ``row * float32`` and in this order, which is what the
    reference's ``np.sum(T[i] * homogeneous, axis=-1)`` does (checked bit for bit).
    """
    acc = row[0] * x
    acc += row[1] * y
    acc += row[2] * z
    acc += row[3]
    return acc.astype(np.float32)


def project_frames(frames, workspace: Workspace = GENSIM_WORKSPACE, stamp: Optional[float] = None) -> HeightmapObservation:
    """Project and fuse calibrated frames into one observation.

    Args:
        frames: iterable of ``RGBDFrame`` (each with ``T_base_camera``) or of tuples
            (color, depth, K, T_base_camera).
        workspace: bounds and pixel size of the heightmap.
        stamp: observation time; defaults to the newest frame's stamp.

    Warns:
        EmptyHeightmapWarning: when no point of any frame falls in the workspace.
    """
    heights, colors, n_total, stamps = [], [], 0, []
    for i, frame in enumerate(frames):
        color, depth, K, T, t = _frame_parts(frame, i)
        h, c, n = project_frame(color, depth, K, T, workspace)
        heights.append(h), colors.append(c), stamps.append(t)
        n_total += n
    if not heights:
        raise InputError("no frame given; pass at least one RGB-D frame")
    if n_total == 0:
        warnings.warn("no point of the frame(s) falls inside the workspace bounds: the heightmap is empty. "
                      "Check T_base_camera (calibration) and the bounds.", EmptyHeightmapWarning, stacklevel=2)
    height, color = fuse_heightmaps(heights, colors)
    obs_stamp = max(stamps) if stamp is None else float(stamp)
    return HeightmapObservation(color, height, workspace, obs_stamp, {"points_in_workspace": n_total})


def _frame_parts(frame, index: int):
    """(color, depth, K, T, stamp) of an RGBDFrame or a 4-tuple."""
    if isinstance(frame, tuple):
        color, depth, K, T = frame
        return color, depth, K, T, 0.0
    if frame.T_base_camera is None:
        raise InputError(f"frame {index} ({frame.frame_id}) has no T_base_camera; calibrate the camera first "
                         "(sim2real calibrate handeye) or pass the transform")
    return frame.color, frame.depth, frame.K, frame.T_base_camera, frame.stamp
