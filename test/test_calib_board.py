"""ChArUco board: config validation, printable true-scale output, detection accuracy, legacy flag."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import (BoardConfig, board_from_dict, detect_board, estimate_pose, load_board,
                                        write_printable)
from sim2real.calibration.render import render_board
from sim2real.errors import CalibrationError, ConfigError

K = np.array([[450.0, 0, 320], [0, 450, 240], [0, 0, 1]])


def _pose(rx=20, ry=-15, rz=5, t=(-0.15, -0.12, 0.75)):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", (rx, ry, rz), degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def test_default_board_config_loads():
    cfg = load_board()
    assert cfg == BoardConfig()
    assert cfg.corners().shape == ((cfg.squares_x - 1) * (cfg.squares_y - 1), 3)


@pytest.mark.parametrize("bad, match", [
    ({"squares_x": 2}, ">= 3"),
    ({"marker_length_m": 0.06}, "marker_length_m < square_length_m"),
    ({"dictionary": "DICT_9X9_1"}, "unknown ArUco dictionary"),
    ({"squares_x": 12, "squares_y": 12, "dictionary": "DICT_4X4_50"}, "pick a larger dictionary"),
    ({"square_size": 0.05}, "unknown key"),
])
def test_bad_board_config_is_named(bad, match):
    d = BoardConfig().to_dict()
    d.update(bad)
    with pytest.raises(ConfigError, match=match):
        board_from_dict(d)


def test_pose_from_rendered_view_is_accurate():
    cfg = BoardConfig()
    rng = np.random.default_rng(0)
    T = _pose()
    img = render_board(cfg, K, (640, 480), T, noise_sigma=2.0, rng=rng)
    pose = estimate_pose(cfg, img, K)
    assert len(pose.detection.ids) == 20 and pose.rms_px < 0.3
    dt = np.linalg.norm(pose.T_camera_board[:3, 3] - T[:3, 3])
    dr = np.degrees(Rotation.from_matrix(pose.T_camera_board[:3, :3].T @ T[:3, :3]).magnitude())
    assert dt < 0.003 and dr < 0.3
    # detected corners sit where the geometry puts them (exact rendering)
    P = pose.detection.object_points @ T[:3, :3].T + T[:3, 3]
    uv = (P[:, :2] / P[:, 2:]) * [450, 450] + [320, 240]
    assert np.abs(uv - pose.detection.image_points).max() < 0.5


def test_board_not_found_message_says_what_to_check():
    cfg = BoardConfig()
    blank = np.full((480, 640, 3), 120, np.uint8)
    assert detect_board(cfg, blank) is None
    with pytest.raises(CalibrationError, match=r"board not found.*whole board is in view.*board.yaml"):
        estimate_pose(cfg, blank, K)


def test_legacy_pattern_flag():
    # an even number of rows is where the legacy layout differs
    legacy = BoardConfig(squares_x=6, squares_y=4, legacy_pattern=True)
    modern = BoardConfig(squares_x=6, squares_y=4, legacy_pattern=False)
    img = render_board(legacy, K, (640, 480), _pose(10, 5, 0, (-0.15, -0.1, 0.7)))
    found = detect_board(legacy, img)
    assert found is not None and len(found.ids) == 15
    wrong = detect_board(modern, img)
    assert wrong is None or len(wrong.ids) < len(found.ids)


def test_printable_png_and_pdf_are_true_scale(tmp_path):
    cfg = BoardConfig()
    png, pdf = write_printable(cfg, tmp_path / "board", dpi=200)
    im = Image.open(png)
    dpi = im.info["dpi"][0]
    width_mm = im.size[0] / dpi * 25.4
    assert width_mm == pytest.approx((cfg.size_m[0] + 2 * cfg.margin_m) * 1000, abs=0.3)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    box = [float(v) for v in re.search(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", data).group(1).split()]
    page_mm = ((box[2] - box[0]) / 72 * 25.4, (box[3] - box[1]) / 72 * 25.4)
    # A3 landscape holds the 320 x 270 mm board with its label
    assert page_mm == pytest.approx((420.0, 297.0), abs=0.5)
    # the embedded board image is drawn at its physical size: find the image placement matrix (points)
    m = re.search(rb"q\s+([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm\s+/I", data)
    if m is None:  # compressed content stream: decompress and search again
        import zlib
        streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S)
        text = b"".join(zlib.decompress(s) for s in streams if s[:1] == b"x")
        m = re.search(rb"([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm\s*/I", text)
    assert m is not None
    w_pt = float(m.group(1))
    assert w_pt / 72 * 25.4 == pytest.approx((cfg.size_m[0] + 2 * cfg.margin_m) * 1000, abs=0.5)


def test_board_too_big_for_paper_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not fit on A4"):
        write_printable(BoardConfig(), tmp_path / "b", paper="A4")
