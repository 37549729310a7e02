"""Files that carry frames and heightmaps between commands.

FRAME.npz (what ``sim2real capture`` writes and ``sim2real heightmap`` reads):
    color (H, W, 3) uint8 RGB; depth (H, W) float32 metres aligned to color (or uint16 together
    with a scalar ``depth_scale`` in metres per unit); K (3, 3); T_base_camera (4, 4).
    Optional: stamp (s), host_stamp (s), frame_id (str).
HM.npz (what ``sim2real heightmap`` writes and ``sim2real act`` reads):
    color (rows, cols, 3) uint8; height (rows, cols) float32 metres; bounds (3, 2); pixel_size.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from sim2real.errors import InputError
from sim2real.heightmap import HeightmapObservation
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

FRAME_KEYS = ("color", "depth", "K", "T_base_camera")


def _open_npz(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e}); re-capture or re-export it") from None


def load_frame_npz(path):
    """Read FRAME.npz. Returns (color, depth, K, T_base_camera, extras) with dtypes as stored.

    A uint16 depth is converted to metres with its ``depth_scale``; float depth is kept as
    stored (float32 or float64) so the projection reproduces the reference arithmetic.

    Raises:
        InputError: missing key, wrong dtype, or uint16 depth without ``depth_scale``.
    """
    data = _open_npz(path)
    missing = [k for k in FRAME_KEYS if k not in data]
    if missing:
        raise InputError(f"{path}: missing key(s) {missing}; a FRAME.npz needs {list(FRAME_KEYS)} "
                         "(color uint8 HxWx3, depth float32 metres, K 3x3, T_base_camera 4x4)")
    depth = data["depth"]
    if depth.dtype == np.uint16:
        if "depth_scale" not in data:
            raise InputError(f"{path}: depth is uint16 but there is no depth_scale (metres per unit, e.g. 0.001)")
        scale = float(np.asarray(data["depth_scale"]).reshape(-1)[0])
        if not (np.isfinite(scale) and scale > 0):
            raise InputError(f"{path}: depth_scale must be a positive number of metres per unit, got {scale}")
        depth = depth.astype(np.float32) * np.float32(scale)
    elif not np.issubdtype(depth.dtype, np.floating):
        raise InputError(f"{path}: depth must be float metres or uint16 with depth_scale, got {depth.dtype}")
    extras = {k: data[k] for k in data if k not in FRAME_KEYS and k != "depth_scale"}
    return data["color"], depth, data["K"], data["T_base_camera"], extras


def save_frame_npz(path, color, depth, K, T_base_camera, **extras) -> None:
    """Write FRAME.npz atomically (temp file, then rename). Depth is stored as float32 metres."""
    _atomic_savez(path, color=np.asarray(color, dtype=np.uint8), depth=np.asarray(depth, dtype=np.float32),
                  K=np.asarray(K, dtype=np.float64), T_base_camera=np.asarray(T_base_camera, dtype=np.float64),
                  **{k: np.asarray(v) for k, v in extras.items()})


def save_heightmap_npz(path, obs: HeightmapObservation) -> None:
    """Write HM.npz atomically: color, height, bounds, pixel_size, stamp."""
    _atomic_savez(path, color=obs.color, height=obs.height, bounds=obs.workspace.bounds,
                  pixel_size=np.float64(obs.workspace.pixel_size), stamp=np.float64(obs.stamp))


def load_heightmap_npz(path, workspace: Workspace | None = None) -> HeightmapObservation:
    """Read HM.npz (color + height). Bounds stored in the file are used unless ``workspace`` is given."""
    data = _open_npz(path)
    missing = [k for k in ("color", "height") if k not in data]
    if missing:
        raise InputError(f"{path}: missing key(s) {missing}; a heightmap npz needs color (rows,cols,3) uint8 "
                         "and height (rows,cols) float32")
    if workspace is None:
        workspace = (Workspace(data["bounds"], float(data["pixel_size"]))
                     if "bounds" in data and "pixel_size" in data else GENSIM_WORKSPACE)
    stamp = float(data["stamp"]) if "stamp" in data else 0.0
    return HeightmapObservation(data["color"], data["height"], workspace, stamp)


def _atomic_savez(path, **arrays) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
