"""Table plane (RANSAC on depth), workspace frame, check image and heightmap statistics."""
from __future__ import annotations

import numpy as np
import pytest

from sim2real.calibration.check import heightmap_stats, save_check_image
from sim2real.calibration.synthetic import SyntheticRig
from sim2real.calibration.board import BoardConfig
from sim2real.calibration.table import fit_table, reach_check, workspace_frame
from sim2real.errors import CalibrationError
from sim2real.heightmap import HeightmapObservation, project_frame
from sim2real.workspace import GENSIM_WORKSPACE

BOXES = [(0.45, 0.1, 0.06, 0.06, 0.04), (0.6, -0.2, 0.1, 0.05, 0.08), (0.35, -0.05, 0.05, 0.05, 0.02)]


def _rig(**kw):
    kw.setdefault("table_z", -0.012)
    kw.setdefault("table_tilt_deg", 1.5)
    return SyntheticRig(BoardConfig(), show_board=False, boxes=BOXES, depth_noise_m=0.0015, **kw)


def _max_plane_error_mm(plane, rig):
    """Largest height difference between fitted and true plane over the workspace corners and centre."""
    T = rig.T_base_table()
    n_true = T[:3, 2]
    d_true = -n_true @ T[:3, 3]
    errs = []
    b = GENSIM_WORKSPACE.bounds
    for x in (*b[0], b[0].mean()):
        for y in (*b[1], b[1].mean()):
            z_true = -(d_true + n_true[0] * x + n_true[1] * y) / n_true[2]
            errs.append(abs(plane.z_at(x, y) - z_true))
    return 1000 * max(errs)


def test_table_plane_within_1mm_with_objects_and_noise():
    rig = _rig()
    frame = rig.read()
    fit = fit_table(frame.depth, frame.K, rig.T_base_camera)
    assert _max_plane_error_mm(fit.plane, rig) < 1.0
    assert fit.plane.tilt_deg == pytest.approx(1.5, abs=0.05)
    assert 0.7 < fit.inlier_fraction < 1.0      # the boxes are outliers
    assert fit.rms_mm < 2.5


def test_workspace_frame_puts_table_at_zero_and_boxes_at_their_height():
    rig = _rig()
    frame = rig.read()
    fit = fit_table(frame.depth, frame.K, rig.T_base_camera)
    T_bw = workspace_frame(fit.plane)
    T_wc = np.linalg.inv(T_bw) @ rig.T_base_camera
    color = np.full((480, 640, 3), 50, np.uint8)
    height, hm_color, _ = project_frame(color, frame.depth, frame.K, T_wc, GENSIM_WORKSPACE)
    obs = HeightmapObservation(hm_color, height, GENSIM_WORKSPACE)
    table = height[hm_color.any(-1)]
    # table at z = 0: each cell keeps its highest point, so 1.5 mm depth noise biases it up ~1 sigma
    assert np.median(table) < 0.0025
    assert np.percentile(table, 5) < 0.001
    u, v = GENSIM_WORKSPACE.xyz_to_pix((0.6, -0.2, 0))
    assert height[u, v] == pytest.approx(0.08, abs=0.004)
    # without the workspace frame the tilted, lowered table is invisible (z < 0) or slanted
    raw, _, _ = project_frame(color, frame.depth, frame.K, rig.T_base_camera, GENSIM_WORKSPACE)
    assert np.count_nonzero(raw > 0) < np.count_nonzero(height > 0)
    stats = heightmap_stats(obs, empty_table=False)
    assert abs(stats.color_z) < 1.5


def test_table_not_visible_is_a_clear_error():
    rig = _rig()
    frame = rig.read()
    T_wrong = rig.T_base_camera.copy()
    T_wrong[:3, 3] += (3.0, 0, 0)     # camera "calibrated" 3 m away: no point falls over the workspace
    with pytest.raises(CalibrationError, match="calibrate handeye"):
        fit_table(frame.depth, frame.K, T_wrong)


def test_check_stats_warn_on_bright_table_and_offset(tmp_path):
    rows, cols = GENSIM_WORKSPACE.shape
    dark = HeightmapObservation(np.full((rows, cols, 3), 48, np.uint8), np.zeros((rows, cols), np.float32))
    assert heightmap_stats(dark).warnings == []
    bright = HeightmapObservation(np.full((rows, cols, 3), 230, np.uint8), np.full((rows, cols), 0.03, np.float32))
    s = heightmap_stats(bright)
    assert s.color_z > 5
    text = " ".join(s.warnings)
    assert "brighter" in text and "dark matte" in text and "calibrate table" in text
    path = save_check_image(bright, tmp_path / "check.png", s, title="test")
    assert path.stat().st_size > 10000


def test_reach_warning():
    T = np.eye(4)
    assert reach_check(GENSIM_WORKSPACE, T, 2.0) == []
    warn = reach_check(GENSIM_WORKSPACE, T, 0.85)
    assert len(warn) == 2 and "beyond its reach" in warn[0]
