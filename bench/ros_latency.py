"""One step's latency over DDS (separate nodes) vs in-process (pipeline node), and camera rates.

Runs on real rclpy + Fast DDS kept on loopback (sim2real.ros.runtime.loopback_env, a free domain
id). Both layouts come from :func:`sim2real.ros.launch_plan.deploy_plan` with ``robot:=sim``
(twin camera + twin oracle policy) and ``mode:=dry_run`` (the executor plans and checks the
safety envelope but never moves, so the figure is the software path, not the arm's motion):

* ``dds``: twin_node, heightmap_node, policy_node, executor_node (``pipeline:=false``);
* ``pipeline``: twin_node + pipeline_node (heightmap, policy, executor in one process).

A step = publish a goal (JSON with a step id, as the trials node does) -> the executor's step
result carrying that id. Also timed: goal -> the [pick, place] PoseArray. Camera rates: received
messages per second of camera_node ``source:=playback`` (640x480 recording, requested 30 Hz) and
``source:=twin`` (requested 10 Hz), with a reliable subscriber.

    .venv/bin/python bench/ros_latency.py [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent


def _argv(exe, params):
    import yaml

    argv = [str(BIN / exe), "--ros-args"]
    for k, v in params.items():
        argv += ["-p", f"{k}:={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return argv


def start(specs):
    return [subprocess.Popen(_argv(s.executable, s.params), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for s in specs]


def stop(procs):
    import signal

    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


class Client:
    def __init__(self):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        rclpy.init()
        self.node = rclpy.create_node("bench_client")
        self.ex = MultiThreadedExecutor()
        self.ex.add_node(self.node)
        threading.Thread(target=self.ex.spin, daemon=True).start()

    def call(self, srv, name, timeout=30.0):
        cli = self.node.create_client(srv, name)
        assert cli.wait_for_service(timeout_sec=timeout), name
        fut = cli.call_async(srv.Request())
        t0 = time.monotonic()
        while not fut.done() and time.monotonic() - t0 < timeout:
            time.sleep(0.01)
        return fut.result()

    def close(self):
        import rclpy

        rclpy.try_shutdown()


def plan_args(pipeline: bool) -> dict:
    return {"task": "stack block", "goal": "stack the blocks", "robot": "sim", "mode": "dry_run",
            "use_sim_robot": "false", "calibration": "", "checkpoint": "", "camera": "pyrealsense", "trials": "1",
            "max_steps": "0", "out": tempfile.mkdtemp(prefix="ros_bench_"), "device": "cpu", "rviz": "false",
            "pipeline": "true" if pipeline else "false", "start_policy": "true"}


def measure_steps(client, pipeline: bool, steps: int) -> dict:
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from sim2real.ros.launch_plan import deploy_plan
    from sim2real.ros.steps import STEP_TAG, encode_goal

    plan = deploy_plan(plan_args(pipeline))
    specs = [s for s in plan.nodes if s.name not in ("trials", "calibration_tf")]
    procs = start(specs)
    results, poses, maps = {}, {}, []
    [client.node.create_subscription(String, "/sim2real/step_result",
                                            lambda m: results.setdefault(json.loads(m.data).get("step_id"),
                                                                         (time.monotonic(), json.loads(m.data))), 50),
            client.node.create_subscription(PoseArray, "/sim2real/pick_place_poses",
                                            lambda m: poses.setdefault(m.header.frame_id.partition(STEP_TAG)[2],
                                                                       time.monotonic()), 50),
            client.node.create_subscription(Image, "/sim2real/heightmap", lambda m: maps.append(1), 1)]
    pub = client.node.create_publisher(String, "/sim2real/goal", 10)
    try:
        client.call(Trigger, "/twin/reset", timeout=120)
        t0 = time.monotonic()
        while len(maps) < 3 and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        names = {"executor", "pipeline"} & {s.name for s in specs}
        t0 = time.monotonic()
        while not names <= set(client.node.get_node_names()) or pub.get_subscription_count() == 0:
            assert time.monotonic() - t0 < 120, "nodes did not come up"
            time.sleep(0.1)
        time.sleep(2.0)
        e2e, to_poses, reasons = [], [], []
        for i in range(steps + 2):  # the first two warm up (imports, first IK)
            sid = f"bench-{i}"
            t = time.monotonic()
            pub.publish(String(data=encode_goal("stack the blocks", sid)))
            while sid not in results and time.monotonic() - t < 60:
                time.sleep(0.001)
            if sid not in results:
                raise RuntimeError(f"no step result for {sid}")
            done, res = results[sid]
            if i >= 2:
                reasons.append(res.get("reason"))
                if res.get("reason") == "dry_run":  # planned + checked; failures (e.g. stale) are faster
                    e2e.append(done - t)
                    if sid in poses:
                        to_poses.append(poses[sid] - t)
            time.sleep(0.3)
        return {"e2e": e2e, "to_poses": to_poses, "reasons": reasons}
    finally:
        # subscriptions stay (destroying them while the client spins races rclpy's executor)
        stop(procs)


def record(path, n=40, w=640, h=480):
    from sim2real.camera import CameraIntrinsics
    from sim2real.realsense import SoftwareCamera

    k = CameraIntrinsics(w, h, 615.0, 615.0, w / 2, h / 2)
    cam = SoftwareCamera(k, record_to=path)
    v, u = np.mgrid[0:h, 0:w]
    for i in range(n):
        cam.push(np.stack([(u + i) % 256, v % 256, (u + v) % 256], -1).astype(np.uint8),
                 (600 + v + i).astype(np.uint16))
    cam.close()


def measure_rate(client, params, seconds=6.0) -> float:
    from sensor_msgs.msg import Image

    from sim2real.ros.launch_plan import NodeSpec

    got = []
    client.node.create_subscription(Image, "/sim2real/camera/color/image_raw",
                                          lambda m: got.append(time.monotonic()), 10)
    procs = start([NodeSpec("camera_node", "camera", params)])
    try:
        t0 = time.monotonic()
        while len(got) < 3 and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        n0, t0 = len(got), time.monotonic()
        time.sleep(seconds)
        return (len(got) - n0) / (time.monotonic() - t0)
    finally:
        stop(procs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    from sim2real.ros.runtime import describe, free_domain_id, loopback_env, wheel_env

    os.environ.update(wheel_env(loopback_env(free_domain_id(), tempfile.mkdtemp(prefix="dds_"))))
    print(describe())
    client = Client()
    try:
        rows = {}
        for name, pipeline in (("dds (4 nodes)", False), ("pipeline (in-process)", True)):
            rows[name] = measure_steps(client, pipeline, args.steps)
        print(f"\none step, goal -> step result ({args.steps} steps, dry_run, twin camera + oracle):")
        print(f"{'layout':24s} {'median ms':>10s} {'p90 ms':>8s} {'goal->poses ms':>15s}  steps planned / failed")
        for name, r in rows.items():
            e, p = np.asarray(r["e2e"]) * 1e3, np.asarray(r["to_poses"]) * 1e3
            failed = {x: r["reasons"].count(x) for x in set(r["reasons"]) if x != "dry_run"}
            print(f"{name:24s} {np.median(e):10.1f} {np.percentile(e, 90):8.1f} "
                  f"{(np.median(p) if len(p) else float('nan')):15.1f}  {len(e)} / {failed or 0}")
        d, q = (statistics.median(rows[k]["e2e"]) for k in rows)
        print(f"ratio dds / pipeline (median): {d / q:.2f}x")
        with tempfile.TemporaryDirectory() as tmp:
            rec = Path(tmp) / "rec.db3"
            record(rec)
            pb = measure_rate(client, {"source": "playback", "playback": str(rec), "publish_rate_hz": 30.0})
            tw = measure_rate(client, {"source": "twin", "twin_task": "stack block", "publish_rate_hz": 10.0})
        print("\ncamera_node color messages received per second (reliable subscriber):")
        print(f"  playback 640x480, requested 30 Hz: {pb:.1f} Hz")
        print(f"  twin (TinyRenderer 640x480), requested 10 Hz: {tw:.1f} Hz")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
