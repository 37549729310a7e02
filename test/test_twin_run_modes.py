"""`sim2real run` beyond the twin default: campaign YAML + overrides, the CLI operator, dry runs with a
twin or recorded camera, and the clean failure of a real arm without ROS."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")

from sim2real.cli import main  # noqa: E402
from sim2real.trials.log import load_steps, load_trials  # noqa: E402

REPO_CAL = "calibration/twin_default.yaml"


def _records(out):
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


class _Terminal(io.StringIO):
    """A terminal on which ``text`` is typed (the CLI operator refuses stdin that is not a terminal)."""

    def isatty(self):
        return True


def _stdin(monkeypatch, text):
    monkeypatch.setattr(sys, "stdin", _Terminal(text))


def test_campaign_yaml_with_cli_overrides(tmp_path):
    camp = tmp_path / "c.yaml"
    camp.write_text("name: smoke\ntasks: [stack block, align-block-zone]\ntrials: 5\norder: randomised\nseed: 7\n")
    out = tmp_path / "run"
    assert main(["run", "--campaign", str(camp), "--trials", "1", "--out", str(out), "--no-progress"]) == 0
    recs = _records(out)
    assert sorted((r["task"], r["trial"], r["seed"]) for r in recs) == [("align-block-zone", 0, 7),
                                                                        ("stack-block", 0, 7)]
    import yaml

    saved = yaml.safe_load((out / "campaign.yaml").read_text())
    saved = saved.get("campaign", saved)
    assert saved["trials"] == 1 and saved["order"] == "randomised" and saved["name"] == "smoke"
    # --task overrides the campaign's tasks
    out2 = tmp_path / "run2"
    assert main(["run", "--campaign", str(camp), "--task", "stack-block", "--trials", "1", "--seed", "2",
                 "--out", str(out2), "--no-progress"]) == 0
    assert [(r["task"], r["seed"]) for r in _records(out2)] == [("stack-block", 2)]


def test_bad_campaign_and_flag_combinations_exit_2(tmp_path, capsys):
    out = str(tmp_path / "x")
    cases = [
        (["run", "--out", out], "--task"),
        (["run", "--campaign", str(tmp_path / "none.yaml"), "--out", out], "no such file"),
        (["run", "--task", "stack-block", "--camera", "realsense", "--out", out], "drop --camera"),
        (["run", "--task", "stack-block", "--robot", "dry-run", "--operator", "auto", "--out", out], "--operator cli"),
        (["run", "--task", "stack-block", "--robot", "dry-run", "--camera", "playback", "--out", out], "FILE.db3"),
        (["run", "--task", "stack-block", "--robot", "dry-run", "--camera", "playback", "x.db3", "--out", out],
         "--calibration"),
        (["run", "--task", "stack-block", "--robot", "dry-run", "--camera", "playback", "x.db3", "--calibration",
          REPO_CAL, "--out", out], "oracle"),
        (["run", "--task", "stack-block", "--robot", "ur5", "--camera", "twin", "--out", out], "--camera realsense"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [stack-block]\ntrials: 0\n")
    cases.append((["run", "--campaign", str(bad), "--out", out], "trials"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err, argv


def test_cli_operator_labels_twin_trials_from_stdin(tmp_path, monkeypatch):
    out = tmp_path / "run"
    # reset -> Enter; outcome: Enter keeps the automatic verdict (success); note
    _stdin(monkeypatch, "\n\nlooked fine\n")
    assert main(["run", "--task", "stack-block", "--trials", "1", "--operator", "cli", "--operator-name", "ana",
                 "--out", str(out), "--no-progress"]) == 0
    (rec,) = _records(out)
    assert rec["success"] is True and rec["label"]["by"] == "ana" and rec["label"]["note"] == "looked fine"
    assert rec["provenance"]["operator"] == "ana"


def test_dry_run_with_the_twin_camera_and_cli_operator(tmp_path, monkeypatch):
    out = tmp_path / "dry"
    # reset -> Enter; outcome failure; category 4 (place); note
    _stdin(monkeypatch, "\nf\n4\narm never moved\n")
    assert main(["run", "--task", "stack-block", "--robot", "dry-run", "--trials", "1", "--max-steps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    (rec,) = _records(out)
    assert rec["success"] is False and rec["steps"] == 2 and rec["reason"] == "done"
    assert rec["label"] == {**rec["label"], "outcome": "failure", "category": "place", "note": "arm never moved"}
    assert rec["auto_success"] is None
    steps = load_steps(out / rec["artefacts"])
    assert len(steps) == 2
    # nothing moved: both steps saw the same scene and the oracle asked for the same pick
    assert steps[0].meta["action"]["pick"]["pixel"] == steps[1].meta["action"]["pick"]["pixel"]
    executed = steps[0].meta["executed"]  # the dry-run robot was sent the whole plan
    assert set(executed) >= {"pick", "place"} and len(executed["pick"]["xyz"]) == 3
    assert "segmentation" in steps[0].arrays


def test_end_of_input_stops_the_campaign_cleanly(tmp_path, monkeypatch):
    out = tmp_path / "dry"
    _stdin(monkeypatch, "")
    assert main(["run", "--task", "stack-block", "--robot", "dry-run", "--trials", "2", "--max-steps", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert not (out / "trials.jsonl").exists() or _records(out) == []


class _HighestCellPolicy:
    """Stands in for a checkpoint Policy: picks the highest cell, places at a fixed spot."""

    name = "fake-ckpt"
    checkpoint_sha256 = "ef" * 32

    @classmethod
    def from_checkpoint(cls, path, device="cpu", **kw):
        return cls()

    def act(self, obs, goal, **kw):
        from sim2real.action import PickPlaceAction, PixelPose

        self.goal = goal
        pick = np.unravel_index(int(np.argmax(obs.height)), obs.height.shape)
        place = obs.workspace.xyz_to_pix((0.5, 0.0, 0.0))
        return PickPlaceAction(PixelPose.from_pixel(pick, 0.0, obs.height, obs.workspace),
                               PixelPose.from_pixel(place, 0.0, obs.height, obs.workspace))


@pytest.fixture
def twin_recording(tmp_path):
    """A RealSense .db3 recording (software device) of twin frames of a stack-block scene."""
    rs = pytest.importorskip("sim2real.realsense")
    from sim2real.errors import HardwareError

    try:
        rs.rs_module()
    except HardwareError as e:
        pytest.skip(f"pyrealsense2 unavailable: {e}")
    from sim2real.tasks import load_all, resolve
    from sim2real.twin import Twin

    twin = Twin.from_config()
    try:
        twin.start_trial(resolve("stack-block", load_all()), 0)
        frame = twin.camera.read()
    finally:
        twin.close()
    path = tmp_path / "twin.db3"
    cam = rs.SoftwareCamera(frame.intrinsics, record_to=path)
    try:
        for _ in range(4):
            cam.push(frame.color, rs.depth_to_z16(frame.depth))
    finally:
        cam.close()
    return path


def test_dry_run_with_a_recorded_camera(tmp_path, monkeypatch, twin_recording):
    import sim2real.policy as policy_pkg

    monkeypatch.setattr(policy_pkg, "Policy", _HighestCellPolicy, raising=False)
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"w")
    out = tmp_path / "dry"
    # trial 1: reset; instruction typed (the template names colours); outcome s; note
    _stdin(monkeypatch, "\nstack the red block on the blue block\ns\n\n")
    assert main(["run", "--task", "stack-block", "--robot", "dry-run", "--robot-config", "ur5", "--camera", "playback",
                 str(twin_recording), "--calibration", REPO_CAL, "--policy", str(ckpt), "--trials", "1",
                 "--max-steps", "2", "--out", str(out), "--no-progress"]) == 0
    (rec,) = load_trials(out)
    assert rec["success"] is True and rec["goal"] == "stack the red block on the blue block"
    assert rec["policy"] == "fake-ckpt" and rec["provenance"]["checkpoint"]["sha256"] == "ef" * 32
    steps = load_steps(out / rec["artefacts"])
    assert len(steps) == 2
    obs = steps[0].observation()
    assert obs.height.max() == pytest.approx(0.04, abs=0.004)  # the recorded blocks, projected with the calibration
    assert "segmentation" not in steps[0].arrays                # no ground truth off the twin


def test_real_arm_without_ros_fails_cleanly(tmp_path, capsys):
    pytest.importorskip("sim2real.ros")
    try:
        import rclpy  # noqa: F401

        pytest.skip("ROS 2 is installed here")
    except ImportError:
        pass
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"w")
    out = tmp_path / "ur5"
    assert main(["run", "--task", "stack-block", "--robot", "ur5", "--calibration", REPO_CAL, "--policy", str(ckpt),
                 "--goal", "stack the red block on the blue block", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "rclpy" in err and "ros2 launch sim2real deploy.launch.py" in err and "apt install" in err
    assert not out.exists()
