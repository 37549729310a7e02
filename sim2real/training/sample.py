"""Training samples exactly as GenSim's ``RavensDataset.process_sample`` makes them.

A sample is a dict::

    img        (320, 160, 6) float32   RGB 0-255 + height (m) x3, GenSim's ``get_image`` layout
    p0, p1     (2,) int64              pick / place pixel (row, col) from ``xyz_to_pix``
    p0_theta   0                       the pick rotation is discarded (as GenSim does)
    p1_theta   float32 (radians)       place yaw relative to pick yaw: (-yaw1) - (-yaw0)
    lang_goal  str                     ``info['lang_goal']`` ('task completed.' when missing)

``--augment gensim`` is GenSim's ``perturb`` (random SE(2) about the image centre, theta ~
N(0, 60 deg), translation ~ N(0, min(H, W) / 6) per axis, redrawn until both labels stay in the
image; ``cv2.warpAffine`` bilinear; colour truncated to integers as GenSim's ``np.int32``).
``--augment sim2real`` adds GenSim's sim-to-real augmentation (``chromatic_transform``,
``add_noise``, ``add_noise_depth``, each with probability 0.9) -- with one departure: GenSim's
released code concatenates the 3-channel height slice three times (12 channels, which its own
network rejects); here the noisy height slice is used once (6 channels), the evident intent.

Random draws use a ``numpy.random.RandomState`` (GenSim's ``np.random`` calls, in the same order)
and a ``random.Random`` (GenSim's ``random.uniform`` in ``add_noise_depth``), so a run seeded the
same way draws the same numbers GenSim's functions would draw from the global generators.
"""
from __future__ import annotations

import random
from typing import Optional

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.action import N_ROTATIONS
from sim2real.workspace import GENSIM_BOUNDS, GENSIM_PIXEL_SIZE

AUGMENTATIONS = ("none", "gensim", "sim2real")
THETA_SIGMA_DEG = 60.0
"""``train.yaml`` ``dataset.augment.theta_sigma``: sigma of the random rotation, degrees."""
AUG_SKIP = 0.1
"""Each sim-to-real augmentation is applied when ``rand() > 0.1`` (probability 0.9)."""
DEFAULT_GOAL = "task completed."
IMAGE_SHAPE = (320, 160, 6)


def xyz_to_pix(xyz, bounds=GENSIM_BOUNDS, pixel_size: float = GENSIM_PIXEL_SIZE) -> tuple[int, int]:
    """World position (m) -> heightmap pixel (row, col) as GenSim rounds it (y -> row, x -> col)."""
    row = int(np.round((xyz[1] - bounds[1][0]) / pixel_size))
    col = int(np.round((xyz[0] - bounds[0][0]) / pixel_size))
    return row, col


def yaw_of_quat(quat_xyzw) -> float:
    """The z angle of the static 'zxy' Euler decomposition (GenSim's ``quatXYZW_to_eulerXYZ()[2]``)."""
    return float(Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).as_euler("zxy")[0])


def rotation_bin(theta, n_rotations: int = N_ROTATIONS) -> int:
    """Label bin of an angle (rad): ``round(theta / (2 pi / n)) mod n`` as GenSim's criteria."""
    return int(np.int32(np.round(theta / (2 * np.pi / n_rotations))) % n_rotations)


def labels_of_action(act: dict) -> dict:
    """GenSim's labels of one action ``{'pose0': (xyz, xyzw), 'pose1': ...}``."""
    p0 = xyz_to_pix(act["pose0"][0])
    p1 = xyz_to_pix(act["pose1"][0])
    p0_theta = -np.float32(yaw_of_quat(act["pose0"][1]))
    p1_theta = -np.float32(yaw_of_quat(act["pose1"][1]))
    return {"p0": p0, "p1": p1, "p0_theta": 0, "p1_theta": p1_theta - p0_theta}


def make_sample(img: np.ndarray, act: dict, info: Optional[dict], augment: str = "none",
                rng: Optional[np.random.RandomState] = None, py_rng: Optional[random.Random] = None) -> dict:
    """One training sample from a policy image, the action taken there and its info dict.

    ``augment`` is 'none', 'gensim' (perturb) or 'sim2real' (perturb + photometric noise); the
    random generators are used only when augmenting.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    img = np.asarray(img, dtype=np.float32)
    lab = labels_of_action(act)
    p0, p1 = lab["p0"], lab["p1"]
    if augment != "none":
        img, (p0, p1), _ = perturb(img, [p0, p1], rng)
        if augment == "sim2real":
            img = sim2real_noise(img, rng, py_rng)
    goal = info.get("lang_goal") if isinstance(info, dict) else None
    return {"img": np.ascontiguousarray(img, dtype=np.float32),
            "p0": np.array(p0, dtype=np.int64), "p0_theta": np.array(0),
            "p1": np.array(p1, dtype=np.int64), "p1_theta": np.array(lab["p1_theta"], dtype=np.float32),
            "lang_goal": goal if goal else DEFAULT_GOAL}


# ------------------------------------------------------------------------------------ perturb
def image_transform(theta: float, trans, pivot) -> np.ndarray:
    """3x3 rigid transform (x, y pixel coordinates): rotate by theta about pivot, then translate."""
    c, s = np.cos(theta), np.sin(theta)
    to_pivot = np.array([[1.0, 0.0, -pivot[0]], [0.0, 1.0, -pivot[1]], [0.0, 0.0, 1.0]])
    from_pivot = np.array([[1.0, 0.0, pivot[0]], [0.0, 1.0, pivot[1]], [0.0, 0.0, 1.0]])
    rigid = np.array([[c, -s, trans[0]], [s, c, trans[1]], [0.0, 0.0, 1.0]])
    return from_pivot @ (rigid @ to_pivot)


def random_transform_params(image_size, rng: np.random.RandomState, theta_sigma: float = THETA_SIGMA_DEG):
    """(theta rad, trans (2,) px, pivot (x, y) px): theta ~ N(0, sigma), trans ~ N(0, min(H, W) / 6)."""
    theta = rng.normal(0, np.deg2rad(theta_sigma))
    trans = rng.normal(0, np.min(image_size) / 6, size=2)
    pivot = (image_size[1] / 2, image_size[0] / 2)
    return theta, trans, pivot


def _moved(transform: np.ndarray, pixel) -> tuple[np.ndarray, np.ndarray]:
    """(exact, rounded) (row, col) of ``pixel`` after ``transform``, with GenSim's float32 input."""
    xy1 = np.float32([pixel[1], pixel[0], 1.0]).reshape(3, 1)
    moved = transform @ xy1
    return np.flip(moved[:2].squeeze()), np.flip(np.int32(np.round(moved))[:2].squeeze())


def perturb(img: np.ndarray, pixels, rng: np.random.RandomState, theta_sigma: float = THETA_SIGMA_DEG):
    """GenSim's ``perturb``: returns (image, rounded pixels (row, col) int32, params (5,)).

    The transform is redrawn until every pixel, exact and rounded, stays inside the image.
    """
    h, w = img.shape[:2]
    while True:
        theta, trans, pivot = random_transform_params((h, w), rng, theta_sigma)
        transform = image_transform(theta, trans, pivot)
        moved = [_moved(transform, p) for p in pixels]
        if all(np.all(r >= 0) and np.all(e >= 0) and r[0] < h and r[1] < w and e[0] < h and e[1] < w
               for e, r in moved):
            break
    warped = cv2.warpAffine(img, transform[:2, :], (w, h), flags=cv2.INTER_LINEAR)
    # GenSim keeps colour as int32 (truncation) and height as float32
    out = np.concatenate((np.int32(warped[:, :, :3]), np.float32(warped[:, :, 3:])), axis=2)
    params = np.array([theta, trans[0], trans[1], pivot[0], pivot[1]])
    return out.astype(np.float32), [r for _, r in moved], params


# ------------------------------------------------------------------- sim-to-real augmentation
def chromatic_transform(color_u8: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Random hue (+-0.9 OpenCV units), lightness and saturation (+-12.8) shifts, uint8 out.

    As GenSim, the array is handed to OpenCV's BGR->HLS conversion whatever its channel order.
    """
    d_h = (rng.rand(1) - 0.5) * 0.02 * 180
    d_l = (rng.rand(1) - 0.5) * 0.2 * 256
    d_s = (rng.rand(1) - 0.5) * 0.2 * 256
    h, lum, s = cv2.split(cv2.cvtColor(color_u8, cv2.COLOR_BGR2HLS))
    hls = cv2.merge(((h + d_h) % 180, np.clip(lum + d_l, 0, 255), np.clip(s + d_s, 0, 255))).astype("uint8")
    return cv2.cvtColor(hls, cv2.COLOR_HLS2BGR)


MOTION_BLUR_SIZES = (3, 5, 7, 9, 11, 15)


def add_noise(color: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """90 %: Gaussian noise, sigma = sqrt(U(0, 76.8)), equal on all channels, clipped to 0-255;
    10 %: horizontal or vertical motion blur of a random size."""
    if rng.rand(1) < 0.9:
        rows, cols, ch = color.shape
        sigma = (rng.rand(1) * 0.3 * 256) ** 0.5
        gauss = sigma * rng.randn(rows, cols)
        return np.clip(color + np.repeat(gauss[:, :, None], ch, axis=2), 0, 255)
    size = MOTION_BLUR_SIZES[int(rng.randint(len(MOTION_BLUR_SIZES), size=1)[0])]  # GenSim's int(array) fails on numpy 2
    kernel = np.zeros((size, size))
    if rng.rand(1) < 0.5:
        kernel[(size - 1) // 2, :] = 1.0
    else:
        kernel[:, (size - 1) // 2] = 1.0
    return cv2.filter2D(color, -1, kernel / size)


def add_noise_depth(height: np.ndarray, rng: np.random.RandomState, py_rng: random.Random,
                    level: float = 0.01) -> np.ndarray:
    """Gaussian height noise with sigma ~ U(0, level) m (drawn with Python's ``random``), equal on
    all channels."""
    rows, cols, ch = height.shape
    gauss = py_rng.uniform(0, level) * rng.randn(rows, cols)
    return height + np.repeat(gauss[:, :, None], ch, axis=2)


def sim2real_noise(img: np.ndarray, rng: np.random.RandomState, py_rng: random.Random) -> np.ndarray:
    """GenSim's sim-to-real augmentation of a perturbed image, 6 channels out (see module doc)."""
    color, height = img[..., :3], img[..., 3:]
    if rng.rand(1) > AUG_SKIP:
        color = chromatic_transform(color.astype(np.uint8), rng)
    if rng.rand(1) > AUG_SKIP:
        color = add_noise(color, rng)
    if rng.rand(1) > AUG_SKIP:
        height = add_noise_depth(height, rng, py_rng)
    return np.concatenate((color.astype(np.float32), height), axis=-1).astype(np.float32)
