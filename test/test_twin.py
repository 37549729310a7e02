"""The PyBullet twin: robot descriptions, camera -> heightmap path, oracle success, determinism,
safety refusals and IK failures (integration tests; about a minute on 2 cores)."""
import warnings

import numpy as np
import pytest

pytest.importorskip("pybullet")

from sim2real.action import PickPlaceAction, PixelPose, quat_xyzw_from_theta  # noqa: E402
from sim2real.errors import PlanningError  # noqa: E402
from sim2real.heightmap import project_frames  # noqa: E402
from sim2real.tasks import REAL_WORLD_TASKS, load_all  # noqa: E402
from sim2real.twin import Twin  # noqa: E402
from sim2real.twin.camera import DepthNoise, gensim_views, render_view  # noqa: E402
from sim2real.twin.objects import COLORS, ObjectSpec  # noqa: E402
from sim2real.twin.urdf import UR5_DH  # noqa: E402
from sim2real.workspace import GENSIM_WORKSPACE  # noqa: E402

TASKS = load_all()


@pytest.fixture(scope="module")
def twin():
    t = Twin.from_config()
    yield t
    t.close()


def _dh_fk(q):
    T = np.eye(4)
    for i in range(6):
        a, d, al = UR5_DH["a"][i], UR5_DH["d"][i], UR5_DH["alpha"][i]
        ct, st, ca, sa = np.cos(q[i]), np.sin(q[i]), np.cos(al), np.sin(al)
        T = T @ np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st], [0, sa, ca, d], [0, 0, 0, 1]])
    return T


def test_generated_ur5_matches_its_dh_parameters(twin):
    kin = twin.robot.kin
    c = kin.client
    flange = [j for j in range(c.getNumJoints(kin.body)) if c.getJointInfo(kin.body, j)[12] == b"flange"][0]
    for q in np.random.default_rng(0).uniform(-3, 3, (5, 6)):
        for j, v in zip(kin.arm, q):
            c.resetJointState(kin.body, j, v)
        pos = c.getLinkState(kin.body, flange, computeForwardKinematics=True)[4]
        np.testing.assert_allclose(pos, _dh_fk(q)[:3, 3], atol=1e-5)


def test_home_pose_keeps_the_arm_out_of_the_cameras_view(twin):
    twin.scene.reset()
    twin.robot.reset()
    c = twin.scene.client
    max_x = max(c.getAABB(twin.scene.robot, link)[1][0] for link in range(-1, c.getNumJoints(twin.scene.robot)))
    assert max_x < GENSIM_WORKSPACE.bounds[0, 0]


def _block_scene(twin, xy=(0.55, 0.12)):
    twin.scene.reset()
    twin.robot.reset()
    twin.scene.add_object(ObjectSpec("block", "red", (0.04, 0.04, 0.04)), (xy[0], xy[1], 0.02), 0.3)
    twin.scene.settle()


def test_twin_camera_frames_project_to_a_metric_heightmap(twin):
    _block_scene(twin)
    obs = project_frames([twin.camera.read()], GENSIM_WORKSPACE)
    u, v = GENSIM_WORKSPACE.xyz_to_pix((0.55, 0.12, 0.0))
    assert obs.height[u, v] == pytest.approx(0.04, abs=0.003)
    np.testing.assert_allclose(obs.color[u, v].astype(float), COLORS["red"], atol=60)
    u2, v2 = GENSIM_WORKSPACE.xyz_to_pix((0.35, -0.3, 0.0))
    assert obs.height[u2, v2] == pytest.approx(0.0, abs=0.002)


def test_simulators_three_camera_view_sees_the_same_block(twin):
    _block_scene(twin)
    frames = [render_view(twin.scene.conn, v) for v in gensim_views()]
    obs = project_frames(frames, GENSIM_WORKSPACE)
    u, v = GENSIM_WORKSPACE.xyz_to_pix((0.55, 0.12, 0.0))
    assert obs.height[u, v] == pytest.approx(0.04, abs=0.003)


def test_depth_noise_and_holes():
    depth = np.full((200, 200), 1.0, np.float32)
    out = DepthNoise(sigma_m=0.002, hole_fraction=0.1).apply(depth, np.random.default_rng(0))
    assert 0.08 < np.mean(out == 0) < 0.12
    assert 0.0015 < out[out > 0].std() < 0.0025
    edges = np.ones((20, 20), np.float32)
    edges[:, 10:] = 0.9
    assert (DepthNoise(edge_holes=True).apply(edges, np.random.default_rng(0))[:, 10] == 0).all()


@pytest.mark.parametrize("task", REAL_WORLD_TASKS)
def test_oracle_solves_each_task(twin, task):
    for seed in (100, 101):
        res = twin.run_trial(TASKS[task], seed, "oracle")
        assert res.success, (task, seed, res)
        assert res.reward == pytest.approx(1.0, abs=0.02)


def test_same_seed_same_trial(twin):
    runs = []
    for _ in range(2):
        steps = []
        res = twin.run_trial(TASKS["pair-blocks-on-line"], 7, "oracle", on_step=steps.append)
        poses = [twin.scene.pose(o.body)[0] for o in twin.scene.objects]
        runs.append((res.steps, res.reward, res.info["colors"], poses, [s.observation.height for s in steps]))
    assert runs[0][:3] == runs[1][:3]
    np.testing.assert_array_equal(np.array(runs[0][3]), np.array(runs[1][3]))
    for a, b in zip(runs[0][4], runs[1][4]):
        np.testing.assert_array_equal(a, b)


class _UnsafePolicy:
    name = "unsafe"

    def act(self, obs, goal, **kw):
        pp = lambda xyz: PixelPose((0, 0), 0.0, np.array(xyz), quat_xyzw_from_theta(0.0))
        return PickPlaceAction(pp((0.5, 0.0, 0.02)), pp((0.95, 0.0, 0.0)))


def test_unsafe_action_is_refused_and_the_arm_does_not_move(twin):
    twin.start_trial(TASKS["stack-block"], 3)
    twin.scene.step(360)  # the arm settles under gravity at its capture pose
    q0 = twin.robot.joints()
    steps = []
    res = twin.run_trial(TASKS["stack-block"], 3, _UnsafePolicy(), on_step=steps.append)
    assert res.reason == "safety_stop" and res.success is False and res.steps == 1
    np.testing.assert_allclose(twin.robot.joints(), q0, atol=1e-3)
    assert not steps[0].safety["ok"] and steps[0].executed == []


def test_unreachable_target_raises_before_moving(twin):
    twin.start_trial(TASKS["stack-block"], 4)
    q0 = twin.robot.joints()
    with pytest.raises(PlanningError, match="ik_failed"):
        twin.robot.move_to((np.array([1.4, 0.0, 0.05]), np.array([0, 0, 0, 1.0])), 0.5)
    np.testing.assert_allclose(twin.robot.joints(), q0, atol=1e-6)
    assert not twin.reachable((np.array([1.4, 0.0, 0.05]), np.array([0, 0, 0, 1.0])))


def test_suction_holds_only_what_it_touches(twin):
    twin.start_trial(TASKS["align-block-zone"], 5)
    block = twin.instance.groups["block"][0]
    pos = twin.scene.pose(block.body)[0]
    r = twin.robot
    r.move_to((pos + [0, 0, 0.1], np.array([0, 0, 0, 1.0])), 0.8)
    r.set_suction(True)
    assert r.state().holding is False  # 8 cm above the block: nothing to hold
    r.move_to((pos + [0, 0, 0.02], np.array([0, 0, 0, 1.0])), 0.2, linear=True)
    r.set_suction(True)
    r.move_to((pos + [0, 0, 0.15], np.array([0, 0, 0, 1.0])), 0.3, linear=True)
    assert r.state().holding and twin.scene.pose(block.body)[0][2] > 0.1
    r.set_suction(False)
    twin.scene.settle()
    assert twin.scene.pose(block.body)[0][2] == pytest.approx(0.02, abs=0.005)


@pytest.mark.parametrize("arm, tool, task", [("ur5", "gripper", "stack-block"), ("xarm6", "suction", "align-block-zone")])
def test_other_arm_and_tool(arm, tool, task):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Twin.from_config(robot=arm, tool=tool)
    try:
        res = t.run_trial(TASKS[task], 11, "oracle")
        assert res.success, res
    finally:
        t.close()


def test_every_object_kind_is_built_and_seen_at_its_height(twin):
    twin.scene.reset()
    twin.robot.reset()
    layout = [("block", (0.4, -0.3), 0.04), ("sphere", (0.4, -0.1), 0.04), ("cylinder", (0.4, 0.1), 0.04),
              ("bowl", (0.6, -0.25), 0.04), ("zone", (0.6, 0.05), 0.001), ("line", (0.6, 0.3), 0.001)]
    for kind, (x, y), _ in layout:
        spec = ObjectSpec(kind, "blue", {"bowl": (0.12, 0.12, 0.04), "zone": (0.12, 0.12, 0.001),
                                         "line": (0.2, 0.01, 0.001)}.get(kind, (0.04, 0.04, 0.04)), kind in ("zone", "line"))
        twin.scene.add_object(spec, (x, y, 0.0 if kind in ("bowl", "zone", "line") else 0.02), 0.0)
    twin.scene.settle()
    obs = project_frames([twin.camera.read()], GENSIM_WORKSPACE)
    for kind, (x, y), h in layout:
        u, v = GENSIM_WORKSPACE.xyz_to_pix((x + (0.057 if kind == "bowl" else 0.0), y, 0.0))
        window = obs.height[u - 2:u + 3, v - 2:v + 3]
        assert window.max() == pytest.approx(h, abs=0.004), kind
        blue = np.abs(obs.color[u, v].astype(float) - COLORS["blue"]).max()
        assert blue < 80, (kind, obs.color[u, v])


def test_tiny_renderer_gives_the_same_heightmap(twin):
    from sim2real.twin.renderer import connect

    _block_scene(twin)
    egl = project_frames([twin.camera.read()], GENSIM_WORKSPACE)
    tiny_conn = connect(renderer="tiny")
    try:
        assert tiny_conn.renderer == "tiny"
        # same scene in the tiny client: the block at the same pose on a flat table
        import pybullet as p

        c = tiny_conn.client
        col = c.createCollisionShape(p.GEOM_BOX, halfExtents=[0.75, 0.8, 0.025])
        c.createMultiBody(0, col, c.createVisualShape(p.GEOM_BOX, halfExtents=[0.75, 0.8, 0.025]), [0.35, 0, -0.025])
        pos, quat = twin.scene.pose(twin.scene.objects[0].body)
        c.createMultiBody(0, -1, c.createVisualShape(p.GEOM_BOX, halfExtents=[0.02] * 3), pos, quat)
        tiny = project_frames([render_view(tiny_conn, twin.camera.view)], GENSIM_WORKSPACE)
    finally:
        tiny_conn.close()
    u, v = GENSIM_WORKSPACE.xyz_to_pix((0.55, 0.12, 0.0))
    assert tiny.height[u, v] == pytest.approx(egl.height[u, v], abs=0.002)
    assert np.mean(np.abs(tiny.height - egl.height) < 0.002) > 0.97


def test_renderer_falls_back_to_tiny_when_egl_is_missing(monkeypatch):
    import pkgutil

    from sim2real.errors import HardwareError
    from sim2real.twin import renderer

    monkeypatch.setattr(pkgutil, "get_loader", lambda name: None)
    monkeypatch.setattr(renderer, "_EGL", {"active": 0, "idle": []})  # no kept EGL server to reuse
    conn = renderer.connect()
    try:
        assert conn.renderer == "tiny"
    finally:
        conn.close()
    with pytest.raises(HardwareError, match="SIM2REAL_RENDERER=tiny"):
        renderer.connect(renderer="egl")


def test_twin_config_errors_name_the_fix(tmp_path):
    from sim2real.errors import ConfigError
    from sim2real.twin import load_twin_config

    with pytest.raises(ConfigError, match="has no entry under 'arms'"):
        load_twin_config(robot="ur10")
    from sim2real.config import config_dir

    bad = tmp_path / "sim.yaml"
    bad.write_text((config_dir() / "robots" / "sim.yaml").read_text().replace("max_tilt_deg: 10.0", "max_tilt_deg: 120"))
    with pytest.raises(ConfigError, match="max_tilt_deg"):
        load_twin_config(bad)


def test_gui_without_a_display_is_a_clear_error(monkeypatch):
    import sys

    from sim2real.errors import HardwareError
    from sim2real.twin.renderer import connect

    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is Linux-only")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(HardwareError, match="needs a display"):
        connect(gui=True)


def test_closing_another_egl_server_keeps_this_one_rendering(twin):
    from sim2real.twin.renderer import connect

    _block_scene(twin)
    other = connect()
    other.close()  # with EGL, a plain disconnect here used to crash the next frame of `twin`
    obs = project_frames([twin.camera.read()], GENSIM_WORKSPACE)
    u, v = GENSIM_WORKSPACE.xyz_to_pix((0.55, 0.12, 0.0))
    assert obs.height[u, v] == pytest.approx(0.04, abs=0.003)
    again = connect()  # reuses the kept server, emptied
    try:
        assert again.client.getNumBodies() == 0
    finally:
        again.close()
