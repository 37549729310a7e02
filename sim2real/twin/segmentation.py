"""Object-id maps of the twin's heightmaps: which object each heightmap cell shows.

The twin camera renders PyBullet's segmentation mask in the same ``getCameraImage`` call as the
colour and depth of a frame. This module carries that mask through the very projection the
observation goes through: the stable object ids are written into the three colour bytes of a
fake colour image (24-bit little endian), which ``sim2real.heightmap.project_frame`` projects
with the frame's own depth, intrinsics and ``T_base_camera``. The same points land in the same
cells with the same heights, so in every cell the id comes from a point at the cell's top height
whose colour is the observation's colour there (where equally high points of several objects
share a cell, the reference's sort picks, exactly as it does for the colour).

Ids: 0 = nothing / table / robot; object ``i`` of ``scene.objects`` (creation order, which a
trial's seed fixes) has id ``i + 1``. The twin reports the same ids for the picked and placed
objects of each step (``StepRecord.info['pick_object']`` / ``['place_object']``) and in the
trial's object list, so replay's same-object rate and the records speak one language.
"""
from __future__ import annotations

import numpy as np

from sim2real.errors import InputError
from sim2real.heightmap import project_frame
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

MAX_ID = (1 << 24) - 1
"""Largest id the three colour bytes can carry."""


def object_ids(scene) -> dict:
    """{PyBullet body id: stable object id} of the task objects of ``scene`` (1-based, creation order)."""
    return {o.body: i + 1 for i, o in enumerate(scene.objects)}


def pixel_object_ids(mask: np.ndarray, ids: dict) -> np.ndarray:
    """Map a PyBullet segmentation mask (H, W) of body ids (-1 = background) to stable ids (H, W) int32.

    Bodies not in ``ids`` (table, robot, background) become 0.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"segmentation mask must be (H, W) body ids, got shape {mask.shape}")
    body = mask.astype(np.int64) & 0xFFFFFF  # low 24 bits: the body id (links are above when flagged)
    body[mask < 0] = -1
    out = np.zeros(mask.shape, dtype=np.int32)
    for b, i in ids.items():
        if not 0 <= i <= MAX_ID:
            raise InputError(f"object id {i} does not fit in 24 bits")
        out[body == b] = i
    return out


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """(H, W) ids 0..2^24-1 -> (H, W, 3) uint8 'colour' (byte 0 = lowest)."""
    ids = np.asarray(ids, dtype=np.uint32)
    return np.ascontiguousarray(np.stack([(ids >> s) & 0xFF for s in (0, 8, 16)], axis=-1).astype(np.uint8))


def decode_ids(color: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_ids`: (..., 3) uint8 -> (...) int32."""
    c = np.asarray(color).astype(np.int32)
    return c[..., 0] | (c[..., 1] << 8) | (c[..., 2] << 16)


def heightmap_segmentation(frame, pixel_ids: np.ndarray, workspace: Workspace = GENSIM_WORKSPACE) -> np.ndarray:
    """Object id of every heightmap cell: (rows, cols) int32, 0 where no point or no object.

    Args:
        frame: the RGBDFrame the observation was projected from (its depth, K, T_base_camera).
        pixel_ids: (H, W) stable object ids of the frame's pixels (:func:`pixel_object_ids`).
        workspace: the observation's grid.
    """
    pixel_ids = np.asarray(pixel_ids)
    if pixel_ids.shape != frame.depth.shape:
        raise InputError(f"object-id image {pixel_ids.shape} does not match the frame's depth {frame.depth.shape}")
    if frame.T_base_camera is None:
        raise InputError("the frame has no T_base_camera; it cannot be projected")
    _, cmap, _ = project_frame(encode_ids(pixel_ids), frame.depth, frame.K, frame.T_base_camera, workspace)
    return decode_ids(cmap)
