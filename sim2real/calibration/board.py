"""The ChArUco calibration board: its definition, a true-scale printout, detection and pose.

Board frame (OpenCV's): origin at the outer corner of the first square, x along the
``squares_x`` direction, y along ``squares_y``, z = x cross y, which points *into* the board when
you look at the printed face. Chessboard corner k (k = 0 .. (sx-1)(sy-1)-1) sits at
((k % (sx-1) + 1) * square, (k // (sx-1) + 1) * square, 0) metres.

Uses OpenCV >= 4.7's detector objects (``CharucoDetector``) and ``matchImagePoints`` + ``solvePnP``
(the old ``estimatePoseCharucoBoard`` is gone). ``legacy_pattern: true`` reads boards made with
OpenCV < 4.6 or calib.io (an even number of rows starts with a marker there).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.config import config_dir, from_mapping, load_yaml
from sim2real.errors import CalibrationError, ConfigError

MIN_CORNERS = 6
"""Fewest ChArUco corners for a pose we trust (4 is the PnP minimum; 6 rejects most flips)."""

MAX_PNP_RMS_PX = 2.0
"""A board pose whose corners reproject worse than this (pixels, RMS) is a bad detection."""

PAPER_SIZES_MM = {"A4": (210.0, 297.0), "A3": (297.0, 420.0), "A2": (420.0, 594.0), "Letter": (215.9, 279.4)}
"""Portrait paper sizes (width, height) in millimetres for the printable PDF."""


def _cv2():
    import cv2

    if not hasattr(cv2, "aruco") or not hasattr(cv2.aruco, "CharucoDetector"):
        raise CalibrationError(f"OpenCV {cv2.__version__} lacks cv2.aruco.CharucoDetector; install "
                               "opencv-python-headless>=4.7,<5 (4.14.0.94 is tested)")
    return cv2


@dataclass(frozen=True)
class BoardConfig:
    """A ChArUco board (``config/calibration/board.yaml``).

    Attributes:
        squares_x, squares_y: number of chessboard squares along x and y (>= 3 each).
        square_length_m: edge of one chessboard square, metres (measure your print!).
        marker_length_m: edge of one ArUco marker, metres (< square_length_m).
        dictionary: OpenCV ArUco dictionary name, e.g. ``DICT_4X4_50``.
        legacy_pattern: True for boards printed with OpenCV < 4.6 / calib.io.
        margin_m: white border printed around the board (helps detection), metres.
    """

    squares_x: int = 6
    squares_y: int = 5
    square_length_m: float = 0.05
    marker_length_m: float = 0.037
    dictionary: str = "DICT_4X4_50"
    legacy_pattern: bool = False
    margin_m: float = 0.01

    def validate(self, where: str = "board") -> None:
        if int(self.squares_x) < 3 or int(self.squares_y) < 3:
            raise ConfigError(f"{where}: squares_x and squares_y must be >= 3, got {self.squares_x}x{self.squares_y}")
        if not (0 < self.marker_length_m < self.square_length_m):
            raise ConfigError(f"{where}: need 0 < marker_length_m < square_length_m, got marker "
                              f"{self.marker_length_m} m, square {self.square_length_m} m")
        if self.margin_m < 0:
            raise ConfigError(f"{where}: margin_m must be >= 0, got {self.margin_m}")
        cv2 = _cv2()
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            names = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_"))
            raise ConfigError(f"{where}: unknown ArUco dictionary {self.dictionary!r}; use one of {names}")
        n_markers = (self.squares_x * self.squares_y) // 2
        dict_size = int(self.dictionary.rsplit("_", 1)[-1]) if self.dictionary.rsplit("_", 1)[-1].isdigit() else 1000
        if n_markers > dict_size:
            raise ConfigError(f"{where}: a {self.squares_x}x{self.squares_y} board needs {n_markers} markers but "
                              f"{self.dictionary} has {dict_size}; pick a larger dictionary")

    @property
    def size_m(self) -> tuple[float, float]:
        """Board (width, height) in metres without the margin."""
        return self.squares_x * self.square_length_m, self.squares_y * self.square_length_m

    @property
    def center(self) -> np.ndarray:
        """(3,) board centre in the board frame, metres."""
        w, h = self.size_m
        return np.array([w / 2, h / 2, 0.0])

    def corners(self) -> np.ndarray:
        """(N, 3) float64 chessboard corner positions in the board frame, metres, by corner id."""
        return np.asarray(cv_board(self).getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def to_dict(self) -> dict:
        return {"squares_x": int(self.squares_x), "squares_y": int(self.squares_y),
                "square_length_m": float(self.square_length_m), "marker_length_m": float(self.marker_length_m),
                "dictionary": self.dictionary, "legacy_pattern": bool(self.legacy_pattern),
                "margin_m": float(self.margin_m)}


def default_board_path() -> Path:
    return config_dir() / "calibration" / "board.yaml"


def load_board(path=None) -> BoardConfig:
    """Load a board YAML (default ``config/calibration/board.yaml``); ConfigError on a bad value."""
    path = Path(path) if path is not None else default_board_path()
    return from_mapping(BoardConfig, load_yaml(path), str(path))


def board_from_dict(d: dict, where: str = "board") -> BoardConfig:
    return from_mapping(BoardConfig, d, where)


@lru_cache(maxsize=8)
def cv_board(cfg: BoardConfig):
    """The ``cv2.aruco.CharucoBoard`` for ``cfg`` (cached)."""
    cv2 = _cv2()
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, cfg.dictionary))
    board = cv2.aruco.CharucoBoard((int(cfg.squares_x), int(cfg.squares_y)), float(cfg.square_length_m),
                                   float(cfg.marker_length_m), dictionary)
    board.setLegacyPattern(bool(cfg.legacy_pattern))
    return board


@lru_cache(maxsize=8)
def _detector(cfg: BoardConfig):
    cv2 = _cv2()
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    charuco = cv2.aruco.CharucoParameters()
    charuco.minMarkers = 2
    charuco.tryRefineMarkers = True
    return cv2.aruco.CharucoDetector(cv_board(cfg), charuco, params)


def texture_px_per_m(cfg: BoardConfig, px_per_m: float) -> float:
    """``px_per_m`` rounded so one square is a whole number of pixels (OpenCV requires it)."""
    return max(1, int(round(cfg.square_length_m * px_per_m))) / cfg.square_length_m


def board_image(cfg: BoardConfig, px_per_m: float, with_margin: bool = True) -> tuple[np.ndarray, float, int]:
    """Render the board face as a grey uint8 image at about ``px_per_m`` pixels per metre.

    Returns:
        (image, exact pixels per metre used, margin in pixels). Pixel (col, row) covers
        [col, col+1) / px_per_m metres from the outer edge of the margin.
    """
    ppm = texture_px_per_m(cfg, px_per_m)
    sq = int(round(cfg.square_length_m * ppm))
    img = cv_board(cfg).generateImage((sq * cfg.squares_x, sq * cfg.squares_y), marginSize=0, borderBits=1)
    m = int(round(cfg.margin_m * ppm)) if with_margin else 0
    if m:
        img = np.pad(img, ((m, m), (m, m)), constant_values=255)
    return img, ppm, m


@dataclass(frozen=True, eq=False)
class BoardDetection:
    """ChArUco corners found in one image.

    Attributes:
        ids: (N,) int corner ids.
        image_points: (N, 2) float64 pixel positions (OpenCV convention, pixel centres at integers).
        object_points: (N, 3) float64 board-frame positions in metres.
        n_markers: how many ArUco markers were found.
    """

    ids: np.ndarray
    image_points: np.ndarray
    object_points: np.ndarray
    n_markers: int


@dataclass(frozen=True, eq=False)
class BoardPose:
    """Board pose from one image: T_camera_board (4, 4), reprojection RMS (px), the detection."""

    T_camera_board: np.ndarray
    rms_px: float
    detection: BoardDetection


def detect_board(cfg: BoardConfig, image: np.ndarray) -> Optional[BoardDetection]:
    """Find ChArUco corners in an RGB (H, W, 3) or grey (H, W) uint8 image; None when not found."""
    cv2 = _cv2()
    img = np.asarray(image)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    corners, ids, marker_corners, marker_ids = _detector(cfg).detectBoard(gray)
    if ids is None or len(ids) < 4:
        return None
    obj, img_pts = cv_board(cfg).matchImagePoints(corners, ids)
    return BoardDetection(np.asarray(ids).reshape(-1).astype(int), np.asarray(img_pts, np.float64).reshape(-1, 2),
                          np.asarray(obj, np.float64).reshape(-1, 3),
                          0 if marker_ids is None else len(marker_ids))


def estimate_pose(cfg: BoardConfig, image: np.ndarray, K: np.ndarray, dist=None,
                  min_corners: int = MIN_CORNERS) -> BoardPose:
    """Detect the board and solve its pose in the camera frame.

    Args:
        image: RGB (H, W, 3) uint8 image (undistorted unless ``dist`` is given).
        K: (3, 3) camera matrix of that image.
    Raises:
        CalibrationError: board not found or too few corners, saying what to change.
    """
    det = detect_board(cfg, image)
    if det is None:
        raise CalibrationError(
            "ChArUco board not found in the image: make sure the whole board is in view, lit evenly, "
            f"not blurred, and that config/calibration/board.yaml matches the print ({cfg.squares_x}x"
            f"{cfg.squares_y} squares, {cfg.dictionary}, legacy_pattern={cfg.legacy_pattern})")
    if len(det.ids) < min_corners:
        raise CalibrationError(f"only {len(det.ids)} ChArUco corners found (need >= {min_corners}); "
                               "bring the board closer or tilt it less")
    return pose_from_detection(det, K, dist)


def pose_from_detection(det: BoardDetection, K: np.ndarray, dist=None) -> BoardPose:
    """PnP on a detection: IPPE (planar) then Levenberg-Marquardt refinement."""
    cv2 = _cv2()
    K = np.asarray(K, dtype=np.float64)
    dist = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64)
    obj, img = det.object_points, det.image_points
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("solvePnP failed on the detected board corners; take another view of the board")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.reshape(3)
    return BoardPose(T, rms, det)


def _page_size_mm(cfg: BoardConfig, paper: str) -> tuple[float, float]:
    """Smallest page holding the board plus margin and a 20 mm label strip (landscape if needed)."""
    w, h = (v * 1000 + 2 * cfg.margin_m * 1000 for v in cfg.size_m)
    need = (w + 10, h + 25)
    if paper == "fit":
        return need
    if paper == "auto":
        for name in ("A4", "A3", "A2"):
            pw, ph = PAPER_SIZES_MM[name]
            for cand in ((pw, ph), (ph, pw)):
                if cand[0] >= need[0] and cand[1] >= need[1]:
                    return cand
        return need
    if paper not in PAPER_SIZES_MM:
        raise ConfigError(f"unknown paper {paper!r}; use auto, fit or one of {sorted(PAPER_SIZES_MM)}")
    pw, ph = PAPER_SIZES_MM[paper]
    for cand in ((pw, ph), (ph, pw)):
        if cand[0] >= need[0] and cand[1] >= need[1]:
            return cand
    raise ConfigError(f"the board ({w:.0f} x {h:.0f} mm with margin) does not fit on {paper}; "
                      "use --paper auto or a smaller square_length_m")


def write_printable(cfg: BoardConfig, out_stem, dpi: int = 300, paper: str = "auto") -> tuple[Path, Path]:
    """Write ``<stem>.png`` (board only, DPI tag set) and ``<stem>.pdf`` (page at true scale).

    Print the PDF at 100 % ("actual size", no "fit to page") and measure the 100 mm scale bar and
    one square; put the measured square length in board.yaml if it differs.

    Returns:
        (png_path, pdf_path).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image

    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    img, px_per_m, _ = board_image(cfg, dpi / 0.0254)
    png = out_stem.with_suffix(".png")
    true_dpi = px_per_m * 0.0254  # a whole number of pixels per square: the tag keeps the scale exact
    Image.fromarray(img).save(png, dpi=(true_dpi, true_dpi))

    page_w, page_h = _page_size_mm(cfg, paper)
    bw, bh = img.shape[1] / px_per_m * 1000, img.shape[0] / px_per_m * 1000  # board + margin, mm
    fig = plt.figure(figsize=(page_w / 25.4, page_h / 25.4), dpi=dpi)
    left, bottom = (page_w - bw) / 2, page_h - 4 - bh
    ax = fig.add_axes([left / page_w, bottom / page_h, bw / page_w, bh / page_h])
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    # 100 mm scale bar under the board, to check the printer did not rescale
    bar = fig.add_axes([left / page_w, (bottom - 8) / page_h, 100 / page_w, 2 / page_h])
    bar.set_facecolor("black")
    bar.set_xticks([])
    bar.set_yticks([])
    fig.text(left / page_w, (bottom - 16) / page_h,
             f"ChArUco {cfg.squares_x}x{cfg.squares_y}, square {cfg.square_length_m * 1000:.1f} mm, marker "
             f"{cfg.marker_length_m * 1000:.1f} mm, {cfg.dictionary}{', legacy' if cfg.legacy_pattern else ''}. "
             "Print at 100 % (actual size); the bar above must measure 100 mm.", fontsize=7)
    pdf = out_stem.with_suffix(".pdf")
    fig.savefig(pdf, dpi=dpi)
    plt.close(fig)
    return png, pdf
