"""Hand-eye calibration on exactly rendered ChArUco views with noise and bad samples."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import BoardConfig, estimate_pose
from sim2real.calibration.collect import collect_generated, generate_board_poses
from sim2real.calibration.handeye import (METHOD_NAMES, HandEyeSample, check_samples, solve_handeye)
from sim2real.calibration.synthetic import SyntheticRig, board_mount, gensim_front_camera_pose
from sim2real.errors import CalibrationError

BOARD = BoardConfig()
TOL_MM, TOL_DEG = 2.0, 0.2


def _err(T_est, T_true):
    dt = np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]) * 1000.0
    dr = np.degrees(Rotation.from_matrix(T_est[:3, :3].T @ T_true[:3, :3]).magnitude())
    return dt, dr


def _rig(**kw):
    return SyntheticRig(BOARD, **kw)


def _eye_to_hand_samples(rig, n=16, seed=3):
    # the pose generator only knows a rough camera pose (3 cm, 3 deg off), as on a real cell
    guess = rig.T_base_camera.copy()
    guess[:3, 3] += (0.03, -0.02, 0.01)
    guess[:3, :3] = Rotation.from_euler("xyz", (3, -2, 1), degrees=True).as_matrix() @ guess[:3, :3]
    poses = generate_board_poses(guess, (0.5, 0.0, 0.3), n, board_mount(BOARD, 0.02), BOARD.center, seed=seed)
    return collect_generated(rig, rig, BOARD, poses, settle_s=0.0, progress=False)


def test_eye_to_hand_recovers_camera_with_noise_and_bad_samples():
    # two samples report a pose 2 cm off (robot still moving when sampled), image noise + blur
    rig = _rig(pose_error={4: (0.02, -0.01, 0.0), 9: (-0.015, 0.0, 0.01)}, noise_sigma=3.0, seed=1)
    log = _eye_to_hand_samples(rig)
    assert len(log.samples) >= 14, log.skipped
    res = solve_handeye(log.samples, "eye_to_hand", K=rig.intrinsics.K, board_center=BOARD.center)
    dt, dr = _err(res.X, rig.T_base_camera)
    assert dt < TOL_MM and dr < TOL_DEG, (dt, dr, res.method)
    # the mount (Y) is recovered too
    dty, dry = _err(res.Y, rig.T_flange_board)
    assert dty < TOL_MM and dry < TOL_DEG
    # both bad samples are rejected, and only they
    bad = {s.label for s in log.samples if s.label in ("pose 4", "pose 9")}
    rejected = {log.samples[i].label for i, _ in res.rejected}
    assert rejected == bad
    # all five OpenCV methods were tried and scored
    assert set(res.candidates) == set(METHOD_NAMES)
    assert res.method.endswith("+refine")
    s = res.summary()
    assert s["n_used"] == len(log.samples) - 2 and s["trans_rms_mm"] < 2.0 and s["reproj_rms_px"] < 0.5
    per = res.to_dict()["per_sample"]
    assert len(per) == len(log.samples) and all("trans_mm" in p and "rot_deg" in p for p in per)


def test_without_rejection_bad_samples_spoil_the_result():
    """The outlier rejection matters: keeping the bad samples gives a visibly worse residual."""
    rig = _rig(pose_error={2: (0.03, 0.0, 0.0), 5: (0.0, 0.03, 0.0), 8: (0.0, 0.0, 0.03)}, seed=2)
    log = _eye_to_hand_samples(rig, n=14)
    kept = solve_handeye(log.samples, "eye_to_hand", K=rig.intrinsics.K, reject_outliers=False, do_refine=False)
    clean = solve_handeye(log.samples, "eye_to_hand", K=rig.intrinsics.K)
    assert kept.summary()["trans_rms_mm"] > 5 * clean.summary()["trans_rms_mm"]
    assert _err(clean.X, rig.T_base_camera)[0] < TOL_MM
    assert _err(kept.X, rig.T_base_camera)[0] > _err(clean.X, rig.T_base_camera)[0]


def _eye_in_hand_case():
    """Camera on the flange looking down at a board on the table; solve and check; returns the samples."""
    T_fc = np.eye(4)
    T_fc[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T_fc[:3, 3] = (0.05, -0.03, 0.08)
    T_bb = np.eye(4)  # board lying face up: its z axis (into the board) points down
    T_bb[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T_bb[:3, 3] = (0.45, 0.12, 0.0)
    rig = _rig(mode="eye_in_hand", T_flange_camera=T_fc, T_base_board=T_bb, seed=4)
    # camera above the board looking down, tilted about different axes
    rng = np.random.default_rng(0)
    samples = []
    for k in range(14):
        target = T_bb[:3, :3] @ BOARD.center + T_bb[:3, 3] + rng.uniform(-0.05, 0.05, 3) * (1, 1, 0)
        cam_pos = target + np.array([0, 0, 0.55]) + rng.uniform(-0.08, 0.08, 3)
        from sim2real.calibration.collect import look_at_rotation
        R = look_at_rotation(target - cam_pos, (1, 0, 0))
        R = Rotation.from_rotvec(rng.normal(0, 0.15, 3)).as_matrix() @ R
        T_bc = np.eye(4)
        T_bc[:3, :3], T_bc[:3, 3] = R, cam_pos
        F = T_bc @ np.linalg.inv(T_fc)
        rig.move_to((F[:3, 3], Rotation.from_matrix(F[:3, :3]).as_quat()))
        frame = rig.read()
        pose = estimate_pose(BOARD, frame.color, frame.K)
        d = pose.detection
        samples.append(HandEyeSample(F, pose.T_camera_board, d.image_points, d.object_points, pose.rms_px, str(k)))
    res = solve_handeye(samples, "eye_in_hand", K=rig.intrinsics.K)
    dt, dr = _err(res.X, T_fc)
    assert dt < TOL_MM and dr < TOL_DEG, (dt, dr)
    assert _err(res.Y, T_bb)[0] < TOL_MM
    return samples, T_fc


def test_eye_in_hand_recovers_flange_camera():
    _eye_in_hand_case()


def test_eye_in_hand_cli_from_samples_saves_flange_camera_and_view_pose(tmp_path):
    import json

    from sim2real.calibration.storage import load_calibration
    from sim2real.cli import main

    samples, T_fc = _eye_in_hand_case()
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"intrinsics": {"width": 640, "height": 480, "fx": 450.0, "fy": 450.0, "cx": 320.0,
                                               "cy": 240.0}, "robot_id": "syn", "camera_id": "wrist",
                                "samples": [s.to_dict() for s in samples]}))
    out = tmp_path / "wrist.yaml"
    # without the capture pose the camera's place in the base frame is unknown: a clear error
    assert main(["calibrate", "handeye", "--from-samples", str(path), "--mode", "eye_in_hand", "--out", str(out)]) == 2
    view = "0.3,0.0,0.5,1,0,0,0"      # tool pose the arm observes the table from (x, y, z, qx, qy, qz, qw)
    assert main(["calibrate", "handeye", "--from-samples", str(path), "--mode", "eye_in_hand", "--view-pose", view,
                 "--out", str(out)]) == 0
    cal = load_calibration(out)
    assert cal.mode == "eye_in_hand" and cal.robot_id == "syn"
    assert _err(cal.T_flange_camera, T_fc)[0] < TOL_MM
    F = np.eye(4)
    F[:3, :3] = Rotation.from_quat([1, 0, 0, 0]).as_matrix()
    F[:3, 3] = (0.3, 0.0, 0.5)
    assert np.allclose(cal.T_base_camera, F @ cal.T_flange_camera, atol=1e-9)


def _samples_from_rotations(rotvecs):
    Tbc = gensim_front_camera_pose()
    Tfb = board_mount(BOARD)
    out = []
    for k, rv in enumerate(rotvecs):
        F = np.eye(4)
        F[:3, :3] = Rotation.from_rotvec(rv).as_matrix()
        F[:3, 3] = (0.5 + 0.01 * k, 0.02 * k, 0.3)
        B = np.linalg.inv(Tbc) @ F @ Tfb
        out.append(HandEyeSample(F, B, label=str(k)))
    return out


def test_too_few_samples_says_collect_more():
    with pytest.raises(CalibrationError, match=r"only 2 usable hand-eye sample.*need at least 3.*collect more"):
        solve_handeye(_samples_from_rotations([(0, 0, 0), (0.3, 0, 0)]), "eye_to_hand")


def test_no_rotation_is_degenerate():
    with pytest.raises(CalibrationError, match=r"degenerate robot motion.*at most .* deg.*Tilt"):
        check_samples(_samples_from_rotations([(0, 0, 0)] * 6), "eye_to_hand")


def test_rotations_about_one_axis_are_degenerate():
    rv = [(0, 0, a) for a in np.linspace(0, 0.8, 6)]
    with pytest.raises(CalibrationError, match=r"about \(nearly\) one axis.*second, different axis"):
        solve_handeye(_samples_from_rotations(rv), "eye_to_hand")


def test_diverse_rotations_pass_the_check_and_solve_exactly():
    rv = [(0, 0, 0), (0.4, 0, 0), (0, 0.4, 0), (0.2, 0.2, 0.3), (-0.3, 0.1, 0.2)]
    samples = _samples_from_rotations(rv)
    res = solve_handeye(samples, "eye_to_hand")
    dt, dr = _err(res.X, gensim_front_camera_pose())
    assert dt < 1e-6 and dr < 1e-6


def test_unknown_mode_and_method_are_clear():
    s = _samples_from_rotations([(0, 0, 0), (0.4, 0, 0), (0, 0.4, 0)])
    with pytest.raises(CalibrationError, match="eye_to_hand"):
        solve_handeye(s, "eye_on_hand")
    with pytest.raises(CalibrationError, match="unknown hand-eye method"):
        solve_handeye(s, "eye_to_hand", methods=("FOO",))


def test_board_not_found_is_skipped_with_reason_then_too_few():
    rig = _rig(show_board=False)
    log = _eye_to_hand_samples(rig, n=4)
    assert not log.samples and len(log.skipped) == 4
    assert all("not found" in why for _, why in log.skipped)
    with pytest.raises(CalibrationError, match="only 0 usable"):
        solve_handeye(log.samples, "eye_to_hand")


def test_unreachable_pose_is_skipped_not_fatal():
    rig = _rig()
    poses = generate_board_poses(rig.T_base_camera, (0.5, 0, 0.3), 3, board_mount(BOARD, 0.02), BOARD.center)
    far = poses[0].copy()
    far[:3, 3] = (3.0, 0, 0.3)
    log = collect_generated(rig, rig, BOARD, [far] + poses, settle_s=0.0, progress=False)
    assert log.skipped[0][0] == 0 and "unreachable" in log.skipped[0][1]
    assert len(log.samples) == 3


def test_sample_roundtrip_dict():
    s = _samples_from_rotations([(0.1, 0.2, 0.3)])[0]
    s2 = HandEyeSample.from_dict(s.to_dict())
    assert np.allclose(s2.T_base_flange, s.T_base_flange) and np.allclose(s2.T_camera_board, s.T_camera_board)


def test_freedrive_collection_with_enter(capsys):
    """Free-drive: the operator moves the arm (here: the prompt moves the rig) and presses Enter."""
    from sim2real.calibration.collect import collect_freedrive, pose_to_xyz_quat

    rig = _rig(seed=6)
    poses = generate_board_poses(rig.T_base_camera, (0.5, 0.0, 0.3), 8, board_mount(BOARD, 0.02), BOARD.center,
                                 seed=5)
    script = iter([""] * len(poses) + ["q"])
    moves = iter(poses)

    def prompt(text):
        answer = next(script)
        if answer == "":
            rig.move_to(pose_to_xyz_quat(next(moves)))
        return answer

    log = collect_freedrive(rig, rig, BOARD, prompt=prompt)
    assert len(log.samples) == 8
    out = capsys.readouterr().out
    assert "sample 8: 20 corners" in out and "consistency" in out
    res = solve_handeye(log.samples, "eye_to_hand", K=rig.intrinsics.K)
    assert _err(res.X, rig.T_base_camera)[0] < TOL_MM
