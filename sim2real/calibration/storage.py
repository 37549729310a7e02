"""The calibration file ``calibration/<name>.yaml``: where the camera is, and where the workspace is.

Keys (see INTERFACES.md; every reader goes through :func:`load_calibration`)::

    name: str
    T_base_camera: 4x4 list          # camera optical frame -> robot base frame, metres
    intrinsics: {width, height, fx, fy, cx, cy}
    workspace: {bounds: 3x2, pixel_size: s, T_base_workspace: 4x4}   # optional
    table: {normal: [3], offset: d, height: z, tilt_deg: t}          # optional, base frame
    board: {...}  method: str  residuals: {...}  date: iso8601
    robot_id: str  camera_id: str  frames: {base: str, camera: str}
    mode: eye_to_hand | eye_in_hand | ground_truth                   # optional (eye_to_hand)
    T_flange_camera: 4x4 list                                        # eye_in_hand only

The heightmap is projected with :meth:`Calibration.T_workspace_camera`, i.e.
``inv(T_base_workspace) @ T_base_camera``: the simulator's bounds are laid out in the workspace
frame, whose z = 0 is the table surface.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from sim2real.camera import CameraIntrinsics
from sim2real.errors import CalibrationError, InputError
from sim2real.transforms import validate_rigid_matrix
from sim2real.workspace import Workspace

MODES = ("eye_to_hand", "eye_in_hand", "ground_truth")
"""How the calibration was obtained: the two hand-eye set-ups, or copied from a simulator."""

_FIX = "re-run `sim2real calibrate handeye` or fix the file by hand"


@dataclass(frozen=True, eq=False)
class TablePlane:
    """The table surface in the robot base frame: ``normal . p + offset = 0``.

    Attributes:
        normal: (3,) unit normal pointing up (towards the camera side), base frame.
        offset: plane offset d in metres.
        height: z of the plane (metres, base frame) at the workspace centre (x, y).
        tilt_deg: angle between the normal and the base z axis, degrees.
    """

    normal: np.ndarray
    offset: float
    height: float
    tilt_deg: float

    def __post_init__(self):
        n = np.asarray(self.normal, dtype=np.float64).reshape(-1)
        if n.shape != (3,) or not np.all(np.isfinite(n)) or abs(np.linalg.norm(n) - 1.0) > 1e-6:
            raise CalibrationError(f"table normal must be a unit 3-vector, got {np.asarray(self.normal).tolist()}")
        object.__setattr__(self, "normal", n)
        for k in ("offset", "height", "tilt_deg"):
            v = float(getattr(self, k))
            if not np.isfinite(v):
                raise CalibrationError(f"table {k} must be a finite number, got {getattr(self, k)}")
            object.__setattr__(self, k, v)

    def z_at(self, x: float, y: float) -> float:
        """Height (metres, base z) of the plane above base point (x, y)."""
        n = self.normal
        return float(-(self.offset + n[0] * x + n[1] * y) / n[2])

    def to_dict(self) -> dict:
        return {"normal": self.normal.tolist(), "offset": self.offset, "height": self.height,
                "tilt_deg": self.tilt_deg}


@dataclass(frozen=True, eq=False)
class Calibration:
    """A camera's pose in the robot base frame plus everything needed to trust and reuse it.

    Attributes:
        name: file stem, e.g. ``twin_default``.
        T_base_camera: (4, 4) float64, camera optical frame -> base frame (metres).
        intrinsics: colour camera intrinsics (depth is aligned to colour).
        workspace: the heightmap grid (bounds in the workspace frame) or None.
        T_base_workspace: (4, 4) workspace frame -> base frame, or None (= identity).
        table: fitted table plane or None.
        board: board description used (dict, see board.yaml) or {}.
        method: solver that produced T_base_camera (e.g. ``PARK+refine``).
        residuals: summary and per-sample residuals (mm, deg, px).
        date: ISO-8601 timestamp.
        robot_id, camera_id: which robot / camera (serial) this belongs to.
        frames: TF frame names {base, camera}.
        mode: one of :data:`MODES`.
        T_flange_camera: (4, 4) for eye-in-hand set-ups, else None.
    """

    name: str
    T_base_camera: np.ndarray
    intrinsics: CameraIntrinsics
    workspace: Optional[Workspace] = None
    T_base_workspace: Optional[np.ndarray] = None
    table: Optional[TablePlane] = None
    board: dict = field(default_factory=dict)
    method: str = ""
    residuals: dict = field(default_factory=dict)
    date: str = ""
    robot_id: str = ""
    camera_id: str = ""
    frames: dict = field(default_factory=lambda: {"base": "base_link", "camera": "camera_color_optical_frame"})
    mode: str = "eye_to_hand"
    T_flange_camera: Optional[np.ndarray] = None

    def __post_init__(self):
        object.__setattr__(self, "T_base_camera", _rigid(self.T_base_camera, "T_base_camera"))
        for k in ("T_base_workspace", "T_flange_camera"):
            if getattr(self, k) is not None:
                object.__setattr__(self, k, _rigid(getattr(self, k), k))
        if self.mode not in MODES:
            raise CalibrationError(f"calibration mode must be one of {MODES}, got {self.mode!r}")
        if not self.date:
            object.__setattr__(self, "date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def T_workspace_camera(self) -> np.ndarray:
        """(4, 4) camera -> workspace frame: the transform the heightmap projection needs."""
        if self.T_base_workspace is None:
            return self.T_base_camera.copy()
        return np.linalg.inv(self.T_base_workspace) @ self.T_base_camera

    def replace(self, **changes) -> "Calibration":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The YAML mapping (plain lists and numbers)."""
        d = {"name": self.name, "T_base_camera": self.T_base_camera.tolist(),
             "intrinsics": {k: (int(v) if k in ("width", "height") else float(v))
                            for k, v in self.intrinsics.to_dict().items()},
             "mode": self.mode}
        if self.workspace is not None:
            ws = self.workspace.to_dict()
            ws["T_base_workspace"] = (self.T_base_workspace if self.T_base_workspace is not None
                                      else np.eye(4)).tolist()
            d["workspace"] = ws
        if self.table is not None:
            d["table"] = self.table.to_dict()
        if self.T_flange_camera is not None:
            d["T_flange_camera"] = self.T_flange_camera.tolist()
        d.update({"board": _plain(self.board), "method": self.method, "residuals": _plain(self.residuals),
                  "date": self.date, "robot_id": self.robot_id, "camera_id": self.camera_id,
                  "frames": dict(self.frames)})
        return d


def _rigid(m, name: str) -> np.ndarray:
    try:
        m = validate_rigid_matrix(np.asarray(m, dtype=np.float64), name)
    except (InputError, ValueError, TypeError) as e:
        raise CalibrationError(f"{e}; {_FIX}") from None
    m = np.array(m, dtype=np.float64)
    m[3] = (0, 0, 0, 1)
    return m


def _plain(obj):
    """numpy scalars/arrays -> plain Python so yaml.safe_dump accepts them."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def calibration_from_dict(d, where: str = "calibration") -> Calibration:
    """Build a :class:`Calibration` from its YAML mapping; CalibrationError naming the bad key."""
    if not isinstance(d, dict):
        raise CalibrationError(f"{where}: expected a mapping of keys (name, T_base_camera, intrinsics, ...), "
                               f"got {type(d).__name__}; {_FIX}")
    missing = [k for k in ("T_base_camera", "intrinsics") if k not in d]
    if missing:
        raise CalibrationError(f"{where}: missing key(s) {missing}; {_FIX}")
    try:
        intr = d["intrinsics"]
        if not isinstance(intr, dict):
            raise CalibrationError("intrinsics must be a mapping {width, height, fx, fy, cx, cy}")
        need = ("width", "height", "fx", "fy", "cx", "cy")
        lacking = [k for k in need if k not in intr]
        if lacking:
            raise CalibrationError(f"intrinsics lack {lacking}")
        intrinsics = CameraIntrinsics(int(intr["width"]), int(intr["height"]), float(intr["fx"]),
                                      float(intr["fy"]), float(intr["cx"]), float(intr["cy"]))
        workspace = T_bw = table = None
        if d.get("workspace") is not None:
            ws = dict(d["workspace"])
            T_bw = ws.pop("T_base_workspace", None)
            workspace = Workspace.from_dict(ws)
        if d.get("table") is not None:
            t = d["table"]
            table = TablePlane(t["normal"], t["offset"], t["height"], t["tilt_deg"])
        return Calibration(
            name=str(d.get("name", Path(where).stem)), T_base_camera=np.asarray(d["T_base_camera"], dtype=np.float64),
            intrinsics=intrinsics, workspace=workspace,
            T_base_workspace=None if T_bw is None else np.asarray(T_bw, dtype=np.float64),
            table=table, board=dict(d.get("board") or {}), method=str(d.get("method", "")),
            residuals=dict(d.get("residuals") or {}), date=str(d.get("date", "")),
            robot_id=str(d.get("robot_id", "")), camera_id=str(d.get("camera_id", "")),
            frames=dict(d.get("frames") or {"base": "base_link", "camera": "camera_color_optical_frame"}),
            mode=str(d.get("mode", "eye_to_hand")),
            T_flange_camera=None if d.get("T_flange_camera") is None else np.asarray(d["T_flange_camera"], dtype=np.float64))
    except CalibrationError as e:
        msg = str(e)
        if _FIX not in msg:
            msg = f"{msg}; {_FIX}"
        raise CalibrationError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    except (KeyError, TypeError, ValueError) as e:
        detail = f"missing key {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
        raise CalibrationError(f"{where}: invalid calibration ({detail}); {_FIX}") from None


def load_calibration(path) -> Calibration:
    """Read ``calibration/<name>.yaml``.

    Raises:
        CalibrationError: file missing, not YAML, or a key missing/invalid; the message names the
            file and the key and says how to regenerate it.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found; run `sim2real calibrate handeye ...` "
                               "to make one, or pass the right --calibration path")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: corrupt calibration YAML ({str(e).splitlines()[0]}); {_FIX}") from None
    return calibration_from_dict(data, str(path))


def save_calibration(cal: Calibration, path) -> Path:
    """Write the calibration YAML atomically (temp file + rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# sim2real calibration: T_base_camera maps camera optical frame points to the robot base frame (m)\n"
    text += yaml.safe_dump(cal.to_dict(), sort_keys=False, default_flow_style=None)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
