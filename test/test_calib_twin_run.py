"""`sim2real run` on the twin projects with the calibration made by `sim2real calibrate`, not the ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

REPO = Path(__file__).resolve().parents[1]


def test_twin_frames_carry_the_calibration_not_the_truth(tmp_path):
    from sim2real.calibration.storage import load_calibration, save_calibration
    from sim2real.twin import Twin, load_twin_config
    from sim2real.twin.camera import lifted

    config = load_twin_config()
    assert config.calibrated is not None and config.calibrated.name == "twin_default.yaml"
    cal = load_calibration(config.calibrated)
    truth = load_calibration(config.calibration).T_base_camera
    twin = Twin(config)
    try:
        frame = twin.camera.read()
        assert np.array_equal(frame.T_base_camera, lifted(cal.T_workspace_camera()))  # lifted: test_twin_heightmap
        assert not np.allclose(frame.T_base_camera, truth, atol=1e-9)          # not the ground truth...
        assert np.array_equal(twin.camera.view.T_base_camera, truth)            # ...which still renders
    finally:
        twin.close()
    # a deliberately wrong calibration changes the projection, not the rendering
    wrong = cal.replace(T_base_camera=cal.T_base_camera @ np.diag([1.0, 1.0, 1.0, 1.0]))
    T = wrong.T_base_camera.copy()
    T[0, 3] += 0.05
    path = save_calibration(wrong.replace(T_base_camera=T), tmp_path / "wrong.yaml")
    twin = Twin(config, calibration=path)
    try:
        frame = twin.camera.read()
        assert frame.T_base_camera[0, 3] == pytest.approx(cal.T_workspace_camera()[0, 3] + 0.05, abs=1e-3)
        assert np.array_equal(twin.camera.view.T_base_camera, truth)
    finally:
        twin.close()


def test_run_cli_uses_the_calibration(tmp_path):
    import json

    from sim2real.cli import main

    assert main(["run", "--task", "build wheel", "--robot", "sim", "--trials", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "r" / "trials.jsonl").read_text().splitlines() if x.strip()]
    assert lines and "twin_default.yaml" in json.dumps(lines[0].get("provenance", {}))
