"""Calibration accuracy benchmark: our hand-eye pipeline vs easy_handeye2's default (OpenCV Tsai alone).

Same samples for both, in the same process: the exact synthetic rig (GenSim front camera, board on
a bracket, image noise + blur, two samples per run reported 1.5-2 cm off as if the arm were still
moving), over several seeds; then the PyBullet twin round trip, the table fit and the capture
playback throughput. Prints absolute figures and the ratio baseline / ours.

    python bench/calibration.py [--seeds 8] [--no-twin]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import BoardConfig
from sim2real.calibration.collect import collect_generated
from sim2real.calibration.handeye import solve_handeye
from sim2real.calibration.synthetic import SyntheticRig
from sim2real.calibration.table import fit_table
from sim2real.calibration.twin_rig import bracket, tool_poses_facing_camera

BOARD = BoardConfig()


def err(T, truth):
    return (np.linalg.norm(T[:3, 3] - truth[:3, 3]) * 1000.0,
            np.degrees(Rotation.from_matrix(T[:3, :3].T @ truth[:3, :3]).magnitude()))


def handeye_runs(seeds: int):
    rows = []
    for seed in range(seeds):
        T_tb = bracket(BOARD)
        rig = SyntheticRig(BOARD, T_flange_board=T_tb, noise_sigma=3.0, seed=seed,
                           pose_error={3: (0.015, -0.01, 0.0), 9: (0.0, 0.02, 0.005)})
        guess = rig.T_base_camera.copy()
        guess[:3, 3] = np.round(guess[:3, 3], 1)
        poses = tool_poses_facing_camera(guess, (0.42, 0.0, 0.25), 16, T_tb, BOARD, seed=seed)
        log = collect_generated(rig, rig, BOARD, poses, settle_s=0.0, progress=False)
        K = rig.intrinsics.K
        t0 = time.perf_counter()
        base = solve_handeye(log.samples, "eye_to_hand", K=K, methods=("TSAI",), do_refine=False,
                             reject_outliers=False)
        t1 = time.perf_counter()
        ours = solve_handeye(log.samples, "eye_to_hand", K=K, board_center=BOARD.center)
        t2 = time.perf_counter()
        rows.append((*err(base.X, rig.T_base_camera), *err(ours.X, rig.T_base_camera), t1 - t0, t2 - t1,
                     ours.method, len(ours.rejected)))
    return rows


def twin_run():
    from sim2real.calibration.twin_rig import BoardCarryingRobot, TwinBoard
    from sim2real.twin import Twin

    twin = Twin.from_config()
    try:
        truth = np.asarray(twin.camera.view.T_base_camera, float)
        T_tb = bracket(BOARD)
        board = TwinBoard.create(twin.scene, BOARD, T_tool_board=T_tb)
        robot = BoardCarryingRobot(twin.robot, board)
        guess = truth.copy()
        guess[:3, 3] = np.round(guess[:3, 3], 1)
        poses = tool_poses_facing_camera(guess, (0.38, 0.0, 0.25), 16, T_tb, BOARD)
        t0 = time.perf_counter()
        log = collect_generated(robot, twin.camera, BOARD, poses, settle_s=0.0, progress=False)
        t1 = time.perf_counter()
        K = twin.camera.view.intrinsics.K
        base = solve_handeye(log.samples, "eye_to_hand", K=K, methods=("TSAI",), do_refine=False,
                             reject_outliers=False)
        ours = solve_handeye(log.samples, "eye_to_hand", K=K, board_center=BOARD.center)
        return err(base.X, truth), err(ours.X, truth), t1 - t0, len(log.samples), twin.renderer, ours.method
    finally:
        twin.close()


def table_runs(seeds: int):
    out = []
    for seed in range(seeds):
        rig = SyntheticRig(BOARD, show_board=False, table_z=-0.01 + 0.002 * seed, table_tilt_deg=0.3 * seed,
                           boxes=[(0.5, 0.1, 0.06, 0.06, 0.05), (0.6, -0.2, 0.1, 0.05, 0.08)],
                           depth_noise_m=0.002, seed=seed)
        f = rig.read()
        t0 = time.perf_counter()
        fit = fit_table(f.depth, f.K, rig.T_base_camera)
        dt = time.perf_counter() - t0
        T = rig.T_base_table()
        n = T[:3, 2]
        d = -n @ T[:3, 3]
        worst = max(abs(fit.plane.z_at(x, y) + (d + n[0] * x + n[1] * y) / n[2])
                    for x in (0.25, 0.75) for y in (-0.5, 0.5))
        out.append((worst * 1000, dt))
    return out


def playback_rate(n: int = 60):
    from sim2real.camera import CameraIntrinsics
    from sim2real.realsense import EndOfRecording, PlaybackCamera, SoftwareCamera

    k = CameraIntrinsics(640, 480, 615.0, 615.0, 320.0, 240.0)
    v, u = np.mgrid[0:480, 0:640]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.db3"
        cam = SoftwareCamera(k, record_to=path)
        for i in range(n):
            cam.push(np.stack([u % 256, v % 256, (u + i) % 256], -1).astype(np.uint8),
                     (700 + v + i).astype(np.uint16))
        cam.close()
        pb = PlaybackCamera(path)
        t0 = time.perf_counter()
        got = 0
        try:
            while True:
                pb.read()
                got += 1
        except EndOfRecording:
            pass
        dt = time.perf_counter() - t0
        pb.close()
    return got, got / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--no-twin", action="store_true")
    a = ap.parse_args()
    rows = handeye_runs(a.seeds)
    r = np.array([row[:6] for row in rows], float)
    print(f"hand-eye, synthetic rig, {a.seeds} seeds x 16 poses, noise 3 grey levels, 2 bad samples per run")
    print("                       trans err mm (mean / max)   rot err deg (mean / max)   solve time s")
    print(f"  baseline TSAI only    {r[:, 0].mean():8.3f} / {r[:, 0].max():8.3f}        "
          f"{r[:, 1].mean():7.4f} / {r[:, 1].max():7.4f}        {r[:, 4].mean():.4f}")
    print(f"  ours (5 methods+refine+outliers) {r[:, 2].mean():6.3f} / {r[:, 2].max():6.3f}  "
          f"{r[:, 3].mean():7.4f} / {r[:, 3].max():7.4f}        {r[:, 5].mean():.4f}")
    print(f"  ratio baseline/ours:  trans {r[:, 0].mean() / r[:, 2].mean():.1f}x, rot {r[:, 1].mean() / r[:, 3].mean():.1f}x; "
          f"methods chosen: {sorted(set(row[6] for row in rows))}; rejected per run: {[row[7] for row in rows]}")
    if not a.no_twin:
        (bt, br), (ot, orr), t, n, renderer, method = twin_run()
        print(f"twin round trip ({renderer}, {n} samples, collection {t:.1f} s): baseline TSAI {bt:.3f} mm / {br:.4f} deg, "
              f"ours ({method}) {ot:.3f} mm / {orr:.4f} deg")
    tr = np.array(table_runs(a.seeds))
    print(f"table plane (2 mm depth noise, boxes, tilt 0-{0.3 * (a.seeds - 1):.1f} deg): worst error over the workspace "
          f"corners mean {tr[:, 0].mean():.3f} mm, max {tr[:, 0].max():.3f} mm; fit {tr[:, 1].mean() * 1000:.0f} ms")
    got, fps = playback_rate()
    print(f"capture playback 640x480 (.db3 -> aligned RGBDFrame): {got} frames, {fps:.0f} frames/s")


if __name__ == "__main__":
    main()
