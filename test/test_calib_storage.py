"""Calibration YAML: round trip and clear errors for corrupt files."""
from __future__ import annotations

import numpy as np
import pytest

from sim2real.calibration.storage import Calibration, TablePlane, load_calibration, save_calibration
from sim2real.calibration.synthetic import GENSIM_INTRINSICS, gensim_front_camera_pose
from sim2real.errors import CalibrationError
from sim2real.workspace import GENSIM_WORKSPACE


def _cal():
    T_bw = np.eye(4)
    T_bw[2, 3] = -0.01
    return Calibration("demo", gensim_front_camera_pose(), GENSIM_INTRINSICS, GENSIM_WORKSPACE, T_bw,
                       TablePlane([0, 0, 1], 0.01, -0.01, 0.0), {"squares_x": 6}, "PARK+refine",
                       {"summary": {"trans_rms_mm": np.float64(0.4)}}, robot_id="sim", camera_id="front")


def test_roundtrip(tmp_path):
    cal = _cal()
    path = save_calibration(cal, tmp_path / "demo.yaml")
    back = load_calibration(path)
    assert np.allclose(back.T_base_camera, cal.T_base_camera, atol=1e-12)
    assert back.intrinsics == cal.intrinsics and back.workspace == GENSIM_WORKSPACE
    assert back.method == "PARK+refine" and back.residuals["summary"]["trans_rms_mm"] == 0.4
    assert np.allclose(back.T_workspace_camera(), np.linalg.inv(cal.T_base_workspace) @ cal.T_base_camera)
    assert back.table.height == -0.01 and back.date == cal.date


@pytest.mark.parametrize("text, match", [
    ("T_base_camera: [[1, 0]\n  bad: : yaml", "corrupt calibration YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("name: x\nintrinsics: {width: 640, height: 480, fx: 1, fy: 1, cx: 1, cy: 1}\n", r"missing key\(s\) \['T_base_camera'\]"),
    ("T_base_camera: [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\n"
     "intrinsics: {width: 640, height: 480, fx: 1, fy: 1, cx: 1, cy: 1}\n", "not rigid"),
    ("T_base_camera: [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\nintrinsics: {width: 640, fx: 1}\n",
     r"intrinsics lack \['height'"),
])
def test_corrupt_yaml_says_what_to_do(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(CalibrationError, match=match) as e:
        load_calibration(p)
    assert "bad.yaml" in str(e.value)
    assert "calibrate" in str(e.value) or "fix" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found.*sim2real calibrate handeye"):
        load_calibration(tmp_path / "nope.yaml")
