"""Hand-eye calibration: where the camera is relative to the robot, from board views at robot poses.

Two set-ups, one equation ``A_i @ X @ B_i = Y`` for every sample i, where F_i = T_base_flange
(robot forward kinematics) and B_i = T_camera_board (board pose from PnP):

* eye-to-hand (camera on a tripod, board on the flange): A_i = inv(F_i),
  X = T_base_camera, Y = T_flange_board. This is easy_handeye2's "eye_on_base" trick: OpenCV's
  eye-in-hand solver fed with inverted robot poses returns camera -> base.
* eye-in-hand (camera on the flange, board on the table): A_i = F_i, X = T_flange_camera,
  Y = T_base_board.

All five OpenCV methods (Tsai, Park, Horaud, Andreff, Daniilidis) are run; the one whose result
is most *consistent* (the board pose predicted through the camera and through the robot agree
best over all samples) is chosen, then refined jointly with Y by minimising the corner
reprojection error over all samples (robust loss). Per-sample residuals are reported in mm and
degrees, and samples that disagree with the rest are rejected one at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from sim2real.errors import CalibrationError

MIN_SAMPLES = 3
"""OpenCV's minimum (two motions with non-parallel rotation axes); we recommend 12-20."""

RECOMMENDED_SAMPLES = 12

MIN_ROTATION_DEG = 10.0
"""Largest rotation between two robot poses must exceed this, or the problem is degenerate."""

MIN_AXIS_SPREAD_DEG = 15.0
"""Rotation axes of the robot motions must span at least this angle (two independent axes)."""

OUTLIER_FLOOR_MM = 3.0
OUTLIER_FLOOR_DEG = 0.5
"""Residuals below these never make a sample an outlier (they are within honest noise)."""

MAX_REJECT_FRACTION = 0.3
"""Never reject more than this fraction of the samples."""

MODES = ("eye_to_hand", "eye_in_hand")


def _methods():
    import cv2

    return {"TSAI": cv2.CALIB_HAND_EYE_TSAI, "PARK": cv2.CALIB_HAND_EYE_PARK,
            "HORAUD": cv2.CALIB_HAND_EYE_HORAUD, "ANDREFF": cv2.CALIB_HAND_EYE_ANDREFF,
            "DANIILIDIS": cv2.CALIB_HAND_EYE_DANIILIDIS}


METHOD_NAMES = ("TSAI", "PARK", "HORAUD", "ANDREFF", "DANIILIDIS")


@dataclass(frozen=True, eq=False)
class HandEyeSample:
    """One observation: the robot's flange pose and the board pose seen by the camera.

    Attributes:
        T_base_flange: (4, 4) flange -> base (robot forward kinematics), metres.
        T_camera_board: (4, 4) board -> camera (PnP), metres.
        image_points: (N, 2) detected corners in pixels (for the reprojection refinement) or None.
        object_points: (N, 3) the same corners in the board frame, metres, or None.
        rms_px: PnP reprojection RMS of this view, pixels.
        label: free text (pose index, time).
    """

    T_base_flange: np.ndarray
    T_camera_board: np.ndarray
    image_points: Optional[np.ndarray] = None
    object_points: Optional[np.ndarray] = None
    rms_px: float = 0.0
    label: str = ""

    def to_dict(self) -> dict:
        d = {"T_base_flange": np.asarray(self.T_base_flange).tolist(),
             "T_camera_board": np.asarray(self.T_camera_board).tolist(), "rms_px": float(self.rms_px),
             "label": self.label}
        if self.image_points is not None:
            d["image_points"] = np.asarray(self.image_points).tolist()
            d["object_points"] = np.asarray(self.object_points).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HandEyeSample":
        ip = d.get("image_points")
        op = d.get("object_points")
        return cls(np.asarray(d["T_base_flange"], float), np.asarray(d["T_camera_board"], float),
                   None if ip is None else np.asarray(ip, float), None if op is None else np.asarray(op, float),
                   float(d.get("rms_px", 0.0)), str(d.get("label", "")))


@dataclass(frozen=True, eq=False)
class SampleResidual:
    """Disagreement of one sample with the solution: board centre offset (mm), rotation (deg), reprojection (px)."""

    index: int
    label: str
    trans_mm: float
    rot_deg: float
    reproj_px: float
    used: bool


@dataclass(frozen=True, eq=False)
class HandEyeResult:
    """The calibration and how much to trust it.

    Attributes:
        mode: ``eye_to_hand`` or ``eye_in_hand``.
        X: (4, 4) T_base_camera (eye-to-hand) or T_flange_camera (eye-in-hand).
        Y: (4, 4) T_flange_board (eye-to-hand) or T_base_board (eye-in-hand).
        method: chosen method, e.g. ``PARK+refine``.
        candidates: per OpenCV method {trans_rms_mm, rot_rms_deg, score_mm} (or {error: str}).
        residuals: one :class:`SampleResidual` per input sample (rejected ones have used=False).
        rejected: indices of rejected samples, with the reason.
    """

    mode: str
    X: np.ndarray
    Y: np.ndarray
    method: str
    candidates: dict
    residuals: list
    rejected: list = field(default_factory=list)

    @property
    def used(self) -> list:
        return [r for r in self.residuals if r.used]

    def summary(self) -> dict:
        """RMS / max over the used samples: trans_rms_mm, trans_max_mm, rot_rms_deg, rot_max_deg, reproj_rms_px."""
        t = np.array([r.trans_mm for r in self.used])
        a = np.array([r.rot_deg for r in self.used])
        p = np.array([r.reproj_px for r in self.used])
        return {"n_samples": len(self.residuals), "n_used": len(self.used),
                "trans_rms_mm": float(np.sqrt(np.mean(t ** 2))), "trans_max_mm": float(t.max()),
                "rot_rms_deg": float(np.sqrt(np.mean(a ** 2))), "rot_max_deg": float(a.max()),
                "reproj_rms_px": float(np.sqrt(np.mean(p ** 2))) if np.all(np.isfinite(p)) else float("nan")}

    def to_dict(self) -> dict:
        """YAML-ready residual report (goes into the calibration's ``residuals`` key)."""
        return {"summary": self.summary(), "candidates": self.candidates,
                "rejected": [dict(index=i, reason=why) for i, why in self.rejected],
                "per_sample": [dict(index=r.index, label=r.label, trans_mm=round(r.trans_mm, 4),
                                    rot_deg=round(r.rot_deg, 5), reproj_px=round(r.reproj_px, 4), used=r.used)
                               for r in self.residuals]}


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def _mean_pose(Ts: Sequence[np.ndarray]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_matrix(np.array([T[:3, :3] for T in Ts])).mean().as_matrix()
    out[:3, 3] = np.mean([T[:3, 3] for T in Ts], axis=0)
    return out


def _A(sample: HandEyeSample, mode: str) -> np.ndarray:
    return _inv(sample.T_base_flange) if mode == "eye_to_hand" else np.asarray(sample.T_base_flange, float)


def check_samples(samples: Sequence[HandEyeSample], mode: str) -> None:
    """Reject inputs no solver can handle, saying what to do.

    Raises:
        CalibrationError: unknown mode, too few samples, non-finite poses, or degenerate robot
            motion (too little rotation, or all rotations about one axis).
    """
    if mode not in MODES:
        raise CalibrationError(f"unknown hand-eye mode {mode!r}; use 'eye_to_hand' (camera fixed, board on the "
                               "flange) or 'eye_in_hand' (camera on the flange, board fixed)")
    n = len(samples)
    if n < MIN_SAMPLES:
        raise CalibrationError(f"only {n} usable hand-eye sample(s); need at least {MIN_SAMPLES} "
                               f"({RECOMMENDED_SAMPLES}+ recommended): collect more poses in which the board is "
                               "fully visible (--poses N, or press Enter at more free-drive poses)")
    for i, s in enumerate(samples):
        for name in ("T_base_flange", "T_camera_board"):
            T = np.asarray(getattr(s, name), float)
            if T.shape != (4, 4) or not np.all(np.isfinite(T)):
                raise CalibrationError(f"sample {i}: {name} must be a finite 4x4 matrix; re-take this sample")
    rots = Rotation.from_matrix(np.array([np.asarray(s.T_base_flange, float)[:3, :3] for s in samples]))
    pair_angles = [np.degrees((rots[i].inv() * rots[j]).magnitude()) for i in range(n) for j in range(i + 1, n)]
    max_angle = float(max(pair_angles))
    if max_angle < MIN_ROTATION_DEG:
        raise CalibrationError(
            f"degenerate robot motion: the flange orientations differ by at most {max_angle:.1f} deg; hand-eye "
            f"calibration needs rotations of >= {MIN_ROTATION_DEG:.0f} deg (ideally 20-40 deg) about at least two "
            "different axes. Tilt the board/flange more between the poses")
    axes = []
    for i in range(n):
        for j in range(i + 1, n):
            r = rots[i].inv() * rots[j]
            if np.degrees(r.magnitude()) >= 2.0:
                axes.append(r.as_rotvec() / r.magnitude())
    axes = np.array(axes)
    spread = 0.0
    for a in axes:
        cos = np.clip(np.abs(axes @ a), 0.0, 1.0)
        spread = max(spread, float(np.degrees(np.arccos(cos.min()))))
    if spread < MIN_AXIS_SPREAD_DEG:
        raise CalibrationError(
            f"degenerate robot motion: all rotations between poses are about (nearly) one axis "
            f"(axes spread {spread:.1f} deg < {MIN_AXIS_SPREAD_DEG:.0f} deg), so the camera position along that axis "
            "cannot be found. Add poses tilted about a second, different axis")


def _opencv_solve(samples, mode: str, method: str) -> np.ndarray:
    import cv2

    As = [_A(s, mode) for s in samples]
    Bs = [np.asarray(s.T_camera_board, float) for s in samples]
    R, t = cv2.calibrateHandEye([A[:3, :3] for A in As], [A[:3, 3].reshape(3, 1) for A in As],
                                [B[:3, :3] for B in Bs], [B[:3, 3].reshape(3, 1) for B in Bs],
                                method=_methods()[method])
    X = np.eye(4)
    X[:3, :3] = R
    X[:3, 3] = np.asarray(t).reshape(3)
    if not np.all(np.isfinite(X)):
        raise CalibrationError(f"{method} returned NaN")
    # re-orthonormalise (some methods return a slightly non-orthogonal matrix)
    X[:3, :3] = Rotation.from_matrix(X[:3, :3]).as_matrix()
    return X


def estimate_Y(samples, mode: str, X: np.ndarray) -> np.ndarray:
    """Average of A_i X B_i: the board pose in the flange (eye-to-hand) or base (eye-in-hand) frame."""
    return _mean_pose([_A(s, mode) @ X @ np.asarray(s.T_camera_board, float) for s in samples])


def _chains(sample: HandEyeSample, mode: str, X, Y):
    """Board pose in the base frame via the camera and via the robot."""
    F = np.asarray(sample.T_base_flange, float)
    B = np.asarray(sample.T_camera_board, float)
    if mode == "eye_to_hand":
        return X @ B, F @ Y
    return F @ X @ B, Y


def sample_residual(sample, mode, X, Y, center, K=None) -> tuple[float, float, float]:
    """(board-centre offset mm, rotation deg, reprojection RMS px) between the camera and robot chains."""
    Pc, Pr = _chains(sample, mode, X, Y)
    dt = np.linalg.norm((Pc[:3, :3] @ center + Pc[:3, 3]) - (Pr[:3, :3] @ center + Pr[:3, 3])) * 1000.0
    dr = np.degrees(Rotation.from_matrix(Pc[:3, :3].T @ Pr[:3, :3]).magnitude())
    rp = float("nan")
    if K is not None and sample.image_points is not None:
        rp = float(np.sqrt(np.mean(np.sum(_reproject(sample, mode, X, Y, K) ** 2, axis=1))))
    return float(dt), float(dr), rp


def _predicted_B(sample, mode, X, Y) -> np.ndarray:
    F = np.asarray(sample.T_base_flange, float)
    if mode == "eye_to_hand":
        return _inv(X) @ F @ Y
    return _inv(X) @ _inv(F) @ Y


def _reproject(sample, mode, X, Y, K) -> np.ndarray:
    """(N, 2) predicted minus detected corner pixels."""
    B = _predicted_B(sample, mode, X, Y)
    P = np.asarray(sample.object_points, float) @ B[:3, :3].T + B[:3, 3]
    uv = P[:, :2] / P[:, 2:3]
    uv = uv * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return uv - np.asarray(sample.image_points, float)


def _score(samples, mode, X, center) -> dict:
    Y = estimate_Y(samples, mode, X)
    res = np.array([sample_residual(s, mode, X, Y, center)[:2] for s in samples])
    lever_mm = 1000.0 * float(np.median([np.linalg.norm(np.asarray(s.T_camera_board)[:3, 3]) for s in samples]))
    t_rms = float(np.sqrt(np.mean(res[:, 0] ** 2)))
    r_rms = float(np.sqrt(np.mean(res[:, 1] ** 2)))
    return {"trans_rms_mm": t_rms, "rot_rms_deg": r_rms, "score_mm": t_rms + lever_mm * np.radians(r_rms), "Y": Y}


def _best_opencv(samples, mode, center, methods):
    candidates, best = {}, None
    for name in methods:
        try:
            X = _opencv_solve(samples, mode, name)
            sc = _score(samples, mode, X, center)
        except Exception as e:  # noqa: BLE001 - a failing method (cv2.error, NaN) is reported, the others go on
            candidates[name] = {"error": str(e).splitlines()[0][:200]}
            continue
        candidates[name] = {k: round(float(v), 5) for k, v in sc.items() if k != "Y"}
        if best is None or sc["score_mm"] < best[2]["score_mm"]:
            best = (name, X, sc)
    if best is None:
        raise CalibrationError(f"every OpenCV hand-eye method failed ({candidates}); check that the samples are "
                               "correct (robot poses in metres, board poses from the same camera)")
    return best, candidates


def refine(samples, mode: str, X0, Y0, K) -> tuple[np.ndarray, np.ndarray]:
    """Joint least-squares refinement of X and Y on the corner reprojection error (soft-L1 loss)."""
    K = np.asarray(K, float)
    usable = [s for s in samples if s.image_points is not None and s.object_points is not None]
    if len(usable) < MIN_SAMPLES:
        return X0, Y0

    def unpack(p):
        X, Y = np.eye(4), np.eye(4)
        X[:3, :3] = Rotation.from_rotvec(p[0:3]).as_matrix()
        X[:3, 3] = p[3:6]
        Y[:3, :3] = Rotation.from_rotvec(p[6:9]).as_matrix()
        Y[:3, 3] = p[9:12]
        return X, Y

    def fun(p):
        X, Y = unpack(p)
        return np.concatenate([_reproject(s, mode, X, Y, K).ravel() for s in usable])

    p0 = np.concatenate([Rotation.from_matrix(X0[:3, :3]).as_rotvec(), X0[:3, 3],
                         Rotation.from_matrix(Y0[:3, :3]).as_rotvec(), Y0[:3, 3]])
    sol = least_squares(fun, p0, loss="soft_l1", f_scale=1.0, x_scale="jac", max_nfev=200)
    if not sol.success and sol.status <= 0:
        return X0, Y0
    return unpack(sol.x)


def solve_handeye(samples: Sequence[HandEyeSample], mode: str = "eye_to_hand", K=None,
                  board_center=None, methods: Sequence[str] = METHOD_NAMES, do_refine: bool = True,
                  reject_outliers: bool = True, max_pnp_rms_px: float = 2.0) -> HandEyeResult:
    """Solve hand-eye calibration with all methods, pick the most consistent, refine, reject outliers.

    Args:
        samples: observations (>= 3; 12+ recommended) with diverse flange rotations.
        mode: ``eye_to_hand`` or ``eye_in_hand``.
        K: (3, 3) camera matrix, enables the reprojection refinement and px residuals.
        board_center: (3,) point of the board (board frame, metres) where translation residuals are
            measured; default the mean of the first sample's object points (or the board origin).
    Returns:
        :class:`HandEyeResult`.
    Raises:
        CalibrationError: too few samples, degenerate motion, or all methods failed.
    """
    samples = list(samples)
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise CalibrationError(f"unknown hand-eye method(s) {unknown}; choose from {list(METHOD_NAMES)}")
    rejected: list = []
    keep = list(range(len(samples)))
    for i, s in enumerate(samples):
        if s.rms_px > max_pnp_rms_px:
            rejected.append((i, f"board pose reprojection {s.rms_px:.2f} px > {max_pnp_rms_px} px (bad detection)"))
    keep = [i for i in keep if i not in {r[0] for r in rejected}]
    check_samples([samples[i] for i in keep], mode)
    if board_center is None:
        s0 = samples[0]
        board_center = (np.mean(s0.object_points, axis=0) if s0.object_points is not None else np.zeros(3))
    center = np.asarray(board_center, float)
    max_reject = int(np.floor(MAX_REJECT_FRACTION * len(samples)))
    while True:
        used = [samples[i] for i in keep]
        (name, X, sc), candidates = _best_opencv(used, mode, center, methods)
        Y = sc["Y"]
        method = name
        if do_refine and K is not None:
            X, Y = refine(used, mode, X, Y, K)
            method = f"{name}+refine"
        res = np.array([sample_residual(samples[i], mode, X, Y, center)[:2] for i in keep])
        if not reject_outliers or len(rejected) >= max_reject or len(keep) <= max(MIN_SAMPLES, 4):
            break
        worst, why = _worst_outlier(res)
        if worst is None:
            break
        rejected.append((keep[worst], why))
        keep.pop(worst)
        check_samples([samples[i] for i in keep], mode)
    kept = set(keep)
    residuals = []
    for i, s in enumerate(samples):
        t, r, p = sample_residual(s, mode, X, Y, center, K)
        residuals.append(SampleResidual(i, s.label, t, r, p, i in kept))
    return HandEyeResult(mode, X, Y, method, candidates, residuals, rejected)


def _worst_outlier(res: np.ndarray):
    """Index of the worst sample if it is an outlier (robust z-score > 3.5 above a noise floor)."""
    out = []
    for col, floor, unit in ((0, OUTLIER_FLOOR_MM, "mm"), (1, OUTLIER_FLOOR_DEG, "deg")):
        v = res[:, col]
        med = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - med)) + 1e-12
        thr = max(med + 3.5 * mad, floor)
        out.append((v - thr) / max(thr, 1e-9))
    z = np.maximum(out[0], out[1])
    i = int(np.argmax(z))
    if z[i] <= 0:
        return None, ""
    return i, (f"inconsistent with the others: {res[i, 0]:.2f} mm / {res[i, 1]:.3f} deg (robot moving while "
               "sampled, or a wrong detection)")


def compose_base_camera(result: HandEyeResult, T_base_flange_view=None) -> np.ndarray:
    """T_base_camera from a result: X itself (eye-to-hand) or F @ X at the viewing pose (eye-in-hand)."""
    if result.mode == "eye_to_hand":
        return result.X.copy()
    if T_base_flange_view is None:
        raise CalibrationError("eye-in-hand: T_base_camera depends on the arm pose; give the pose the camera "
                               "observes the workspace from (--view-pose)")
    return np.asarray(T_base_flange_view, float) @ result.X
