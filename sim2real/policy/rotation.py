"""Image rotation about a pivot, with the numerics of the reference's ``ImageRotator``.

CLIPort and GenSim rotate the (padded) input image -- and, for the transport, the image whose
crops around the pick pixel become the query kernels -- with kornia:
``M = get_rotation_matrix2d(center=(col, row), angle=deg, scale=1)`` then
``warp_affine(x, M, dsize=(h, w))``: bilinear sampling, zero padding, the inverse of ``M``
normalised to [-1, 1] with the ``(size - 1)`` convention, then ``F.affine_grid`` and
``F.grid_sample``. Positive angles turn the image counter-clockwise on screen.

The two references ran different kornia releases, which differ in one flag that matters:

* cliport/cliport pins ``kornia==0.4.1``: ``warp_affine(..., align_corners=False)``;
* liruiw/GenSim calls the kornia >= 0.5 API (``kornia.geometry.transform.warp_affine``) and
  pins no version; since 0.5 the default is ``align_corners=True``.

This module re-implements both in plain torch, op for op (same float32 matrix arithmetic, same
``torch.inverse`` calls), so the sampled images are bit-identical to kornia's. It never imports
kornia.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

KORNIA_0_4 = "kornia-0.4"
"""Matrix arithmetic and ``align_corners=False`` of kornia 0.4.1 (cliport/cliport's pin)."""

KORNIA_0_5 = "kornia-0.5+"
"""Matrix arithmetic and ``align_corners=True`` of kornia >= 0.5 (what GenSim's code calls)."""

CONVENTIONS = (KORNIA_0_4, KORNIA_0_5)

_PI = torch.tensor(3.14159265358979323846)  # kornia.constants.pi (float32)


def rotation_angles(n_rotations: int) -> list[float]:
    """Angles in degrees of the reference's ``ImageRotator``: ``i * 2 * 180 / n``."""
    return [i * 2 * 180 / n_rotations for i in range(n_rotations)]


def _angle_to_rotation_matrix(angle: torch.Tensor) -> torch.Tensor:
    """(B,) degrees -> (B, 2, 2) ``[[cos, sin], [-sin, cos]]`` as kornia computes it."""
    ang_rad = angle * _PI.to(angle.device).type(angle.dtype) / 180.0
    cos_a, sin_a = torch.cos(ang_rad), torch.sin(ang_rad)
    return torch.stack([cos_a, sin_a, -sin_a, cos_a], dim=-1).view(*angle.shape, 2, 2)


def _rotation_matrix_0_4(center: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """kornia 0.4.1 ``get_rotation_matrix2d`` with unit scale: (B, 2, 3)."""
    rot = _angle_to_rotation_matrix(angle)
    scale = torch.ones(angle.shape[0], 2, dtype=rot.dtype)
    scaling = torch.zeros((2, 2), dtype=rot.dtype).fill_diagonal_(1).repeat(rot.size(0), 1, 1)
    scaling = scaling * scale.unsqueeze(dim=2).repeat(1, 1, 2)
    scaled = rot @ scaling
    alpha, beta = scaled[:, 0, 0], scaled[:, 0, 1]
    x, y = center[..., 0], center[..., 1]
    one = torch.tensor(1.0)
    M = torch.zeros(center.shape[0], 2, 3, dtype=center.dtype)
    M[..., 0:2, 0:2] = scaled
    M[..., 0, 2] = (one - alpha) * x - beta * y
    M[..., 1, 2] = beta * x + (one - alpha) * y
    return M


def _eye_like(n: int, batch: int, dtype) -> torch.Tensor:
    return torch.eye(n).type(dtype)[None].repeat(batch, 1, 1)


def _rotation_matrix_0_5(center: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """kornia >= 0.5 ``get_rotation_matrix2d`` with unit scale: (B, 2, 3)."""
    b, dtype = center.shape[0], center.dtype
    shift_m = _eye_like(3, b, dtype)
    shift_m[:, :2, 2] = center
    shift_m_inv = _eye_like(3, b, dtype)
    shift_m_inv[:, :2, 2] = -center
    scale = torch.ones(b, 2, dtype=dtype)
    scale_m = _eye_like(3, b, dtype)
    scale_m[:, 0, 0] *= scale[:, 0]
    scale_m[:, 1, 1] *= scale[:, 1]
    rotat_m = _eye_like(3, b, dtype)
    rotat_m[:, :2, :2] = _angle_to_rotation_matrix(angle)
    return (shift_m @ rotat_m @ scale_m @ shift_m_inv)[:, :2, :]


def _normal_transform_pixel(height: int, width: int) -> torch.Tensor:
    tr_mat = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]])
    tr_mat[0, 0] = tr_mat[0, 0] * 2.0 / (width - 1.0)
    tr_mat[1, 1] = tr_mat[1, 1] * 2.0 / (height - 1.0)
    return tr_mat.unsqueeze(0)


def sampling_theta(angles_deg, pivot_rc, size_hw, convention: str) -> torch.Tensor:
    """(B, 2, 3) float32 ``affine_grid`` matrices (dst -> src, normalised) of the rotations.

    Args:
        angles_deg: B angles in degrees (counter-clockwise).
        pivot_rc: (row, col) of the rotation centre in pixels, shared by all angles.
        size_hw: (height, width) of the image (source and destination).
        convention: ``KORNIA_0_4`` or ``KORNIA_0_5``.
    """
    angle = torch.tensor([float(a) for a in angles_deg], dtype=torch.float32)
    center = torch.tensor([[float(pivot_rc[1]), float(pivot_rc[0])]], dtype=torch.float32)
    center = center.repeat(angle.shape[0], 1)
    if convention == KORNIA_0_4:
        M = _rotation_matrix_0_4(center, angle)
    elif convention == KORNIA_0_5:
        M = _rotation_matrix_0_5(center, angle)
    else:
        raise ValueError(f"unknown rotation convention {convention!r}; use one of {CONVENTIONS}")
    M3 = F.pad(M, [0, 0, 0, 1], "constant", value=0.0)
    M3[..., -1, -1] += 1.0
    h, w = size_hw
    src_norm = _normal_transform_pixel(h, w).to(M3)
    dst_norm = _normal_transform_pixel(h, w).to(M3)
    dst_norm_trans_src_norm = dst_norm @ (M3 @ torch.inverse(src_norm))
    return torch.inverse(dst_norm_trans_src_norm)[:, :2, :]


def align_corners_of(convention: str) -> bool:
    """The ``align_corners`` flag that ``warp_affine`` uses under ``convention``."""
    return convention == KORNIA_0_5


def rotate(x: torch.Tensor, angles_deg, pivot_rc, convention: str) -> torch.Tensor:
    """Rotate ``x`` (1 or B, C, H, W) by each angle about ``pivot_rc``: (B, C, H, W).

    A single image is rotated by every angle (the reference's ``[x] * n_rotations``).
    """
    _, c, h, w = x.shape
    theta = sampling_theta(angles_deg, pivot_rc, (h, w), convention).to(x.device)
    ac = align_corners_of(convention)
    grid = F.affine_grid(theta, [theta.shape[0], c, h, w], align_corners=ac)
    src = x.float().expand(theta.shape[0], -1, -1, -1) if x.shape[0] == 1 else x.float()
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=ac)


def rotated_windows(x: torch.Tensor, angles_deg, pivot_rc, rows: slice, cols: slice,
                    convention: str) -> torch.Tensor:
    """``rotate(x, ...)[:, :, rows, cols]`` without sampling the rest of the image.

    Each output pixel depends only on its own grid coordinate, so sampling the window of the
    full-size grid gives the same bits as rotating everything and cropping afterwards.
    """
    _, c, h, w = x.shape
    theta = sampling_theta(angles_deg, pivot_rc, (h, w), convention).to(x.device)
    ac = align_corners_of(convention)
    grid = F.affine_grid(theta, [theta.shape[0], c, h, w], align_corners=ac)[:, rows, cols]
    src = x.float().expand(theta.shape[0], -1, -1, -1)
    return F.grid_sample(src, grid.contiguous(), mode="bilinear", padding_mode="zeros", align_corners=ac)
