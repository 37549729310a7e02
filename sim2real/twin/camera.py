"""The twin's RGB-D cameras: a RealSense-like camera placed from a calibration YAML, and the
simulator's own three RealSense D415 views.

Frames come out as :class:`~sim2real.camera.RGBDFrame` with ``T_base_camera`` set, so they go
through the very same ``sim2real.heightmap.project_frames`` as the real camera's frames. The
simulator's privileged heightmap is never used.

Camera frame convention (OpenCV optical frame): x right, y down, z forward. The OpenGL
projection matrix is built from the intrinsics so cx, cy and fx != fy are honoured.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.config import load_yaml
from sim2real.errors import ConfigError, HardwareError
from sim2real.transforms import validate_rigid_matrix


GENSIM_TABLE_READING = 0.0016
"""Height (m) at which the simulator's own heightmaps read its table top.

Measured on GenSim's ``put-block-in-bowl-seen-colors`` (its environment, 3 RealSense D415 views,
``RavensDataset.get_image``): table 1.3-1.9 mm, median 1.6 mm, 0.02 % empty cells; the twin's
:func:`gensim_views` under PyBullet's TinyRenderer (GenSim's renderer) give the same 1.3/1.6/1.8 mm
(BENCHMARKS.md). The lift comes from deprojecting pixel (u, v) along the ray through its corner
while the renderer samples its centre, on views tilted ~45 deg, and from keeping the highest of
three views. A single camera looking nearly straight down reads the table at ~0 +- 0.1 mm, so half
its table points would fall below the workspace's z >= 0 bound and leave empty stripes. The twin's
camera therefore projects in a workspace frame this much below the table: its heightmaps read the
table, and everything on it, where the policy's training data did.
"""


def lifted(T_base_camera: np.ndarray, lift_m: float = GENSIM_TABLE_READING) -> np.ndarray:
    """``T_base_camera`` (4, 4) with the base frame moved ``lift_m`` metres down (points read higher)."""
    T = np.array(T_base_camera, dtype=np.float64, copy=True)
    T[2, 3] += lift_m
    return T


@dataclass(frozen=True)
class DepthNoise:
    """Depth error model of a stereo RGB-D camera.

    Attributes:
        sigma_m: Gaussian noise standard deviation at 1 m, metres; scaled by z^2 (stereo error).
        hole_fraction: fraction of pixels randomly set to 0 (no reading).
        edge_holes: drop the readings on depth discontinuities larger than ``edge_jump_m``.
        edge_jump_m: the jump (m) between 4-neighbours that counts as an edge.
    """

    sigma_m: float = 0.0
    hole_fraction: float = 0.0
    edge_holes: bool = False
    edge_jump_m: float = 0.02

    def validate(self, where: str) -> None:
        if self.sigma_m < 0 or not 0 <= self.hole_fraction < 1 or self.edge_jump_m <= 0:
            raise ConfigError(f"{where}: need sigma_m >= 0, 0 <= hole_fraction < 1, edge_jump_m > 0")

    @property
    def enabled(self) -> bool:
        return self.sigma_m > 0 or self.hole_fraction > 0 or self.edge_holes

    def apply(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy copy of ``depth`` (H, W) float32 metres; holes are 0."""
        out = depth.astype(np.float32, copy=True)
        if self.sigma_m > 0:
            out += (rng.standard_normal(out.shape) * self.sigma_m * out ** 2).astype(np.float32)
        if self.edge_holes:
            jump = np.zeros(out.shape, bool)
            jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > self.edge_jump_m
            jump[1:, :] |= np.abs(np.diff(depth, axis=0)) > self.edge_jump_m
            out[jump] = 0.0
        if self.hole_fraction > 0:
            out[rng.random(out.shape) < self.hole_fraction] = 0.0
        return np.clip(out, 0.0, None)


@dataclass(frozen=True)
class CameraView:
    """Where a camera is and how it images.

    Attributes:
        T_base_camera: (4, 4) optical frame -> robot base frame.
        intrinsics: pinhole intrinsics.
        near, far: clipping planes in metres (depth outside reads 0).
        name: frame id.
    """

    T_base_camera: np.ndarray
    intrinsics: CameraIntrinsics
    near: float = 0.1
    far: float = 3.0
    name: str = "twin_camera_color_optical_frame"

    def view_matrix(self) -> list:
        """OpenGL view matrix (column-major, 16 floats): eye at the camera, looking along +z."""
        T = np.asarray(self.T_base_camera, dtype=np.float64)
        eye, R = T[:3, 3], T[:3, :3]
        # OpenGL camera: x right, y up, looking down -z  <=>  optical frame with y and z flipped.
        R_gl = R @ np.diag([1.0, -1.0, -1.0])
        view = np.eye(4)
        view[:3, :3] = R_gl.T
        view[:3, 3] = -R_gl.T @ eye
        return view.T.reshape(-1).tolist()

    def projection_matrix(self) -> list:
        """OpenGL projection matrix (column-major) reproducing fx, fy, cx, cy exactly."""
        k = self.intrinsics
        w, h, n, f = k.width, k.height, self.near, self.far
        P = np.array([[2 * k.fx / w, 0.0, 1.0 - 2 * k.cx / w, 0.0],
                      [0.0, 2 * k.fy / h, 2 * k.cy / h - 1.0, 0.0],
                      [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
                      [0.0, 0.0, -1.0, 0.0]])
        return P.T.reshape(-1).tolist()


def render_view(conn, view: CameraView, noise: Optional[DepthNoise] = None, rng=None,
                stamp: float = 0.0, segmentation: bool = False):
    """Render ``view`` and return an RGBDFrame (and the segmentation mask when asked).

    Returns:
        RGBDFrame with color (H, W, 3) uint8, depth (H, W) float32 metres (z-depth, 0 = none).
    """
    import pybullet as p

    k = view.intrinsics
    flags = 0 if segmentation else p.ER_NO_SEGMENTATION_MASK
    from sim2real.twin.renderer import _quiet_stdout

    with _quiet_stdout():  # the EGL plugin prints its GL vendor on the first frame after a reset
        _, _, rgba, zbuf, seg = conn.client.getCameraImage(
            k.width, k.height, view.view_matrix(), view.projection_matrix(), shadow=0,
            flags=flags, renderer=conn.render_flag)
    color = np.asarray(rgba, dtype=np.uint8).reshape(k.height, k.width, 4)[..., :3].copy()
    zbuf = np.asarray(zbuf, dtype=np.float64).reshape(k.height, k.width)
    n, f = view.near, view.far
    depth = (f * n / (f - (f - n) * zbuf)).astype(np.float32)
    depth[zbuf >= 1.0 - 1e-7] = 0.0  # background: no return
    if noise is not None and noise.enabled:
        depth = noise.apply(depth, rng if rng is not None else np.random.default_rng(0))
    if not (depth > 0).any():
        raise HardwareError(f"twin camera {view.name} sees nothing (all depth beyond {view.far} m); check its pose")
    frame = RGBDFrame(color, depth, k, view.name, stamp, np.asarray(view.T_base_camera, dtype=np.float64))
    if segmentation:
        return frame, np.asarray(seg).reshape(k.height, k.width)
    return frame


def load_camera_config(path) -> tuple[CameraIntrinsics, DepthNoise, float, float]:
    """Intrinsics, depth noise and clip range from a camera YAML (config/cameras/twin.yaml).

    Keys: ``intrinsics: {width, height, fx, fy, cx, cy}``, optional ``depth_noise: {sigma_m,
    hole_fraction, edge_holes, edge_jump_m}``, optional ``near``, ``far`` (m).
    """
    from sim2real.config import from_mapping

    data = load_yaml(path)
    where = str(path)
    if "intrinsics" not in data:
        raise ConfigError(f"{where}: missing 'intrinsics' (width, height, fx, fy, cx, cy)")
    k = _intrinsics(data["intrinsics"], f"{where}.intrinsics")
    noise = from_mapping(DepthNoise, data.get("depth_noise") or {}, f"{where}.depth_noise")
    near, far = float(data.get("near", 0.1)), float(data.get("far", 3.0))
    if not 0 < near < far:
        raise ConfigError(f"{where}: need 0 < near < far (got near={near}, far={far})")
    return k, noise, near, far


def _intrinsics(d, where: str) -> CameraIntrinsics:
    try:
        return CameraIntrinsics(int(d["width"]), int(d["height"]), float(d["fx"]), float(d["fy"]),
                                float(d["cx"]), float(d["cy"]))
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{where}: needs width, height, fx, fy, cx, cy ({e})") from None


def load_T_base_camera(path) -> tuple[np.ndarray, Optional[CameraIntrinsics]]:
    """T_base_camera (4, 4) and the intrinsics (if any) of a calibration YAML.

    Uses ``sim2real.calibration.storage.load_calibration`` when that module exists (issue 6),
    else reads the same keys (see INTERFACES.md) directly.
    """
    try:
        from sim2real.calibration.storage import load_calibration  # type: ignore
    except ImportError:
        load_calibration = None
    if load_calibration is not None:
        cal = load_calibration(path)
        k = getattr(cal, "intrinsics", None)
        return np.asarray(cal.T_base_camera, dtype=np.float64), k if isinstance(k, CameraIntrinsics) else None
    data = load_yaml(path)
    if "T_base_camera" not in data:
        raise ConfigError(f"{path}: missing T_base_camera (4x4 list, camera optical frame -> robot base)")
    T = np.asarray(data["T_base_camera"], dtype=np.float64)
    try:
        validate_rigid_matrix(T, f"{path}: T_base_camera")
    except Exception as e:  # InputError -> ConfigError for a file
        raise ConfigError(str(e)) from None
    k = _intrinsics(data["intrinsics"], f"{path}.intrinsics") if "intrinsics" in data else None
    return T, k


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_base_camera (4, 4) of an optical frame at ``eye`` looking at ``target`` (image up ~ ``up``)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along `up`: pick any image x axis
        x = np.cross(z, (1.0, 0.0, 0.0)) if abs(z[0]) < 0.9 else np.cross(z, (0.0, 1.0, 0.0))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


# GenSim cliport/tasks/cameras.py RealSenseD415.CONFIG: 640x480, fx = fy = 450, cx = 320, cy = 240,
# poses (position, Euler XYZ as passed to pybullet.getQuaternionFromEuler), zrange 0.01-10 m.
_GENSIM_D415 = (
    ("front", (1.0, 0.0, 0.75), (np.pi / 4, np.pi, -np.pi / 2)),
    ("left", (0.0, 0.5, 0.75), (np.pi / 4.5, np.pi, np.pi / 4)),
    ("right", (0.0, -0.5, 0.75), (np.pi / 4.5, np.pi, 3 * np.pi / 4)),
)


def gensim_views() -> list[CameraView]:
    """The simulator's three RealSense D415 views, as used to render its training data.

    pybullet's ``getQuaternionFromEuler`` is extrinsic XYZ (roll, pitch, yaw), i.e. scipy "xyz";
    the resulting rotation maps the camera's optical frame into the world, as in GenSim's
    ``render_camera`` (look along R z, up = -R y).
    """
    k = CameraIntrinsics(640, 480, 450.0, 450.0, 320.0, 240.0)
    views = []
    for name, pos, euler in _GENSIM_D415:
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("xyz", euler).as_matrix()
        T[:3, 3] = pos
        views.append(CameraView(T, k, near=0.01, far=10.0, name=f"gensim_{name}"))
    return views


class TwinCamera:
    """A CameraPort over the twin scene: renders the calibrated view after the scene settles.

    Args:
        scene: a :class:`~sim2real.twin.scene.TwinScene`.
        view: where the camera is.
        noise: optional depth noise/holes model.
        seed: seed of the noise generator (deterministic per trial).
        T_base_camera_calibrated: (4, 4) pose stamped on the frames (what the heightmap uses), from
            a calibration produced by ``sim2real calibrate``; None = the true pose (``view``).
            Either is stamped :func:`lifted` by :data:`GENSIM_TABLE_READING`.
    """

    def __init__(self, scene, view: CameraView, noise: Optional[DepthNoise] = None, seed: int = 0,
                 T_base_camera_calibrated=None):
        self.scene, self.view, self.noise = scene, view, noise
        self.rng = np.random.default_rng(seed)
        self.frames_read = 0
        self.last_frame = None  # the frame read() returned last, and its PyBullet body-id mask (H, W),
        self.last_mask = None   # rendered in the same getCameraImage call (-1 = background)
        self.T_calibrated = (None if T_base_camera_calibrated is None
                             else validate_rigid_matrix(np.asarray(T_base_camera_calibrated, np.float64),
                                                        "T_base_camera_calibrated"))
        self.T_stamped = lifted(view.T_base_camera if self.T_calibrated is None else self.T_calibrated)

    @classmethod
    def from_files(cls, scene, calibration_path, camera_config_path, seed: int = 0,
                   calibrated_path=None) -> "TwinCamera":
        """Place the camera from a (ground-truth) calibration YAML; intrinsics and noise from a camera YAML.

        ``calibrated_path``: a calibration produced by ``sim2real calibrate``; its projection pose
        (``Calibration.T_workspace_camera()``) is stamped on the frames instead of the truth.
        """
        k, noise, near, far = load_camera_config(camera_config_path)
        T, cal_k = load_T_base_camera(calibration_path)
        if cal_k is not None and (cal_k.width, cal_k.height) != (k.width, k.height):
            raise ConfigError(f"{calibration_path}: calibrated for {cal_k.width}x{cal_k.height} but "
                              f"{camera_config_path} renders {k.width}x{k.height}; make them agree")
        T_cal = None
        if calibrated_path is not None:
            from sim2real.calibration.storage import load_calibration

            cal = load_calibration(calibrated_path)
            if (cal.intrinsics.width, cal.intrinsics.height) != (k.width, k.height):
                raise ConfigError(f"{calibrated_path}: calibrated for {cal.intrinsics.width}x{cal.intrinsics.height} "
                                  f"but {camera_config_path} renders {k.width}x{k.height}; recalibrate")
            T_cal = cal.T_workspace_camera()
        return cls(scene, CameraView(T, k, near, far), noise, seed, T_cal)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def read(self, timeout_s: float = 1.0) -> RGBDFrame:
        """Render one frame of the current scene (timeout unused: rendering is synchronous)."""
        self.frames_read += 1
        self.scene.settle(120)  # let released objects come to rest, as a real capture would wait
        frame, mask = render_view(self.scene.conn, self.view, self.noise, self.rng, stamp=self.scene.sim_time,
                                  segmentation=True)
        # rendered from the truth, projected with the calibration (if any), lifted as GenSim's views
        frame = replace(frame, T_base_camera=self.T_stamped)
        self.last_frame, self.last_mask = frame, mask
        return frame

    def segmentation_for(self, frame, workspace):
        """Object-id map (rows, cols) int32 of ``frame`` on ``workspace``'s grid, or None when ``frame``
        is not the last frame read (its mask is gone). Ids: see :mod:`sim2real.twin.segmentation`."""
        from sim2real.twin.segmentation import heightmap_segmentation, object_ids, pixel_object_ids

        if frame is None or frame is not self.last_frame or self.last_mask is None:
            return None
        return heightmap_segmentation(frame, pixel_object_ids(self.last_mask, object_ids(self.scene)), workspace)

    def close(self) -> None:
        """Nothing to release: the scene owns the simulator."""
