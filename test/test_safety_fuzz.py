"""Issue 10 (Deliver 2): thousands of adversarial policy outputs through ``run_episode``.

Each episode is one step of a seeded adversarial action (NaN, +-inf, huge, subnormal, zero and
non-unit quaternions, off-grid pixels, tilted tools, positions outside the box, the floor and the
reach) on a recording robot (DryRunRobot, sometimes failing mid-plan or reporting grasp
feedback), under three calibrations (identity, a 0.25 m workspace offset, a rotated frame).
Checked, independently of sim2real.safety:

* nothing raises out of the loop, and the end reason is one of ``REASONS``;
* every pose that reaches the robot is finite, a unit quaternion, inside the box, above the floor,
  below the ceiling, tilted at most the limit, within reach of the REAL base, at a valid speed;
* every refusal / failure is recorded: the step (or the episode) carries an error message, a
  refused plan lists its reasons, and an obviously invalid action sends no motion at all.

The heightmap projection is not under test here: ``project_frames`` is replaced by a fixed
observation so the 10,000 episodes take seconds. A failure prints the episode index; rerun one
with ``_episode(i)``.
"""
import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import sim2real.episode as episode_mod
from sim2real.action import PickPlaceAction, PixelPose
from sim2real.episode import REASONS, run_episode
from sim2real.errors import HardwareError, MotionStopped, PlanningError, SafetyError
from sim2real.heightmap import HeightmapObservation
from sim2real.motion import MotionConfig
from sim2real.robot import DryRunRobot
from sim2real.safety import SafetyEnvelope
from sim2real.workspace import GENSIM_WORKSPACE

SEED = 20261206
N_EPISODES = 10_000
WS = GENSIM_WORKSPACE
ROWS, COLS = WS.shape
MOTION = MotionConfig()


def _frame(yaw_deg, dx, dy):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:2, 3] = (dx, dy)
    return T


# (T_base_workspace or None, envelope): plans are in the workspace frame, reach is the real base's
CALIBRATIONS = [None, _frame(0.0, 0.25, 0.0), _frame(20.0, 0.1, -0.15)]
BASE_ENVELOPE = SafetyEnvelope(reach_max_m=0.8)  # a UR5's configured reach
ENVELOPES = [BASE_ENVELOPE.in_frame(T).with_workspace(WS) for T in CALIBRATIONS]


def _observation():
    rng = np.random.default_rng(SEED)
    height = np.zeros((ROWS, COLS), np.float32)
    for _ in range(6):  # a few blocks so the held-height estimate varies
        r, c = rng.integers(10, ROWS - 10), rng.integers(10, COLS - 10)
        height[r - 8:r + 8, c - 8:c + 8] = rng.uniform(0.02, 0.12)
    return HeightmapObservation(np.full((ROWS, COLS, 3), 128, np.uint8), height, WS)


OBS = _observation()
SPECIAL = [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e20, 5e-324, -5e-324, 1e-310, 0.0, -0.0]


LO, HI = np.array([0.25, -0.5, 0.0]), np.array([0.75, 0.5, 0.15])  # plausible targets (x, y, z)


def _bad_coordinate(rng, lo, hi):
    if rng.random() < 0.4:
        return float(rng.uniform(lo - 0.6, hi + 0.6))  # outside the box / reach / below the floor
    return float(SPECIAL[rng.integers(len(SPECIAL))])


def _bad_quaternion(rng, unit):
    k = rng.integers(10)
    if k == 0:  # tilted a lot
        return (Rotation.from_rotvec([rng.uniform(0.2, 3.0), 0, 0]) * Rotation.from_quat(unit)).as_quat()
    if k == 1:
        return np.zeros(4)
    if k == 2:  # finite, but the squared norm underflows
        return unit * 1e-200
    if k == 3:
        return unit * 5e-324
    if k == 4:
        return unit * rng.choice([2.0, 0.5, 1e300, 1.01])
    if k == 5:
        q = unit.copy()
        q[rng.integers(4)] = SPECIAL[rng.integers(3)]  # NaN / inf
        return q
    if k == 6:
        return unit[:3]  # wrong length
    if k == 7:  # tilted just past the limit
        return (Rotation.from_rotvec([0, np.radians(rng.uniform(10.01, 15)), 0]) * Rotation.from_quat(unit)).as_quat()
    return rng.normal(size=4) * 10 ** rng.uniform(-3, 3)  # anything


def _plausible_quaternion(rng):
    unit = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_quat()
    k = rng.integers(5)
    if k == 0:  # tilted a little (within the 10 deg limit)
        return (Rotation.from_rotvec(np.append(rng.uniform(-1, 1, 2), 0) * np.radians(6)) * Rotation.from_quat(unit)).as_quat()
    if k == 1:
        return unit * (1 + 1e-5)  # float32-like round-off: accepted, renormalised
    return unit


def _bad_pixel(rng):
    if rng.random() < 0.7:
        return (int(rng.choice([-1, ROWS, -10 ** 12, 10 ** 12])), int(rng.integers(-COLS, 2 * COLS)))
    return (float(rng.choice([math.nan, math.inf, -math.inf])), 3)


def _action(rng):
    """A plausible action with 0, 1 or more adversarial fields (or not an action at all)."""
    k = rng.integers(100)
    if k < 3:
        return None
    if k < 5:
        return "put the red block in the bowl"
    if k < 7:
        return ValueError("policy crashed")
    poses = []
    for _ in range(2):
        poses.append({"pixel": (int(rng.integers(ROWS)), int(rng.integers(COLS))),
                      "xyz": rng.uniform(LO, HI), "quat": _plausible_quaternion(rng)})
    n_bad = int(rng.choice([0, 1, 1, 2, 3], p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    for _ in range(n_bad):
        pose, field = poses[rng.integers(2)], rng.integers(6)
        if field == 0:
            pose["pixel"] = _bad_pixel(rng)
        elif field <= 3:
            pose["xyz"][field - 1] = _bad_coordinate(rng, LO[field - 1], HI[field - 1])
        else:
            pose["quat"] = _bad_quaternion(rng, Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_quat())
    pick, place = (PixelPose(p["pixel"], 0.0, np.asarray(p["xyz"], dtype=np.float64),
                             np.asarray(p["quat"], dtype=np.float64)) for p in poses)
    return PickPlaceAction(pick, place)


class FuzzPolicy:
    name = "fuzz"

    def __init__(self, action):
        self.action = action

    def act(self, obs, goal, **kw):
        if isinstance(self.action, Exception):
            raise self.action
        return self.action


class NullCamera:
    def read(self, timeout_s=1.0):
        return "frame"

    def close(self):
        pass


class FaultyRobot(DryRunRobot):
    """Fails its ``fail_at``-th move half-way there, with ``error``."""

    def __init__(self, fail_at, error, **kw):
        super().__init__(**kw)
        self.fail_at, self.error, self.moves = fail_at, error, 0

    def move_to(self, pose, speed, linear=False):
        k, self.moves = self.moves, self.moves + 1
        if k == self.fail_at:
            super().move_to(pose, speed, linear)  # recorded: it reached the robot
            self._xyz = (self._xyz + np.asarray(pose[0], dtype=np.float64)) / 2
            raise self.error
        super().move_to(pose, speed, linear)


ERRORS = [lambda: PlanningError("motion_failed: fuzz"), lambda: SafetyError("robot limit"),
          lambda: HardwareError("driver lost"), lambda: RuntimeError("rclpy gone"),
          lambda: MotionStopped("move_to interrupted by stop()")]


def _robot(rng):
    holding = [None, True, False][rng.integers(3)]
    if rng.random() < 0.3:
        return FaultyRobot(int(rng.integers(7)), ERRORS[rng.integers(len(ERRORS))](), holding=holding)
    return DryRunRobot(holding=holding)


def _obviously_invalid(action) -> bool:
    """An action no motion may come from, judged without sim2real.safety."""
    if not isinstance(action, PickPlaceAction):
        return True
    for pose in (action.pick, action.place):
        q = np.asarray(pose.quat_xyzw, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or not np.all(np.isfinite(pose.xyz)):
            return True
        if not abs(math.hypot(*q.tolist()) - 1) <= 1e-3:
            return True
    r, c = action.pick.pixel
    return not (np.isfinite(r) and 0 <= r < ROWS and np.isfinite(c) and 0 <= c < COLS)


def _command_violations(cmd, env: SafetyEnvelope, T) -> list[str]:
    """Independent envelope check of one move_to that reached the robot."""
    xyz, q, speed = np.asarray(cmd["xyz"]), np.asarray(cmd["quat_xyzw"]), cmd["speed"]
    bad = []
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
        return [f"non-finite position {xyz}"]
    if q.shape != (4,) or not np.all(np.isfinite(q)) or abs(np.linalg.norm(q) - 1) > 1e-9:
        return [f"not a unit quaternion {q}"]
    b, m = WS.bounds, env.margin_m
    if not (b[0, 0] - m - 1e-12 <= xyz[0] <= b[0, 1] + m + 1e-12 and b[1, 0] - m - 1e-12 <= xyz[1] <= b[1, 1] + m + 1e-12):
        bad.append(f"outside the box {xyz}")
    h = xyz[2] - b[2, 0]
    if not env.min_height_m - 1e-12 <= h <= env.max_height_m + 1e-12:
        bad.append(f"height {h}")
    down = Rotation.from_quat(q).apply([0, 0, 1])[2]
    if np.degrees(np.arccos(np.clip(down, -1, 1))) > env.max_tilt_deg + 1e-9:
        bad.append(f"tilted {q}")
    p = xyz if T is None else T[:3, :3] @ xyz + T[:3, 3]
    if not env.reach_min_m - 1e-12 <= np.hypot(p[0], p[1]) <= env.reach_max_m + 1e-12:
        bad.append(f"out of reach of the real base: {np.hypot(p[0], p[1]):.3f} m")
    if not (math.isfinite(speed) and 0 < speed <= env.max_speed):
        bad.append(f"speed {speed}")
    return bad


def _episode(i: int) -> dict:
    """Run adversarial episode ``i``; return what the checks need (raises AssertionError on a violation)."""
    rng = np.random.default_rng((SEED, i))
    action, robot = _action(rng), _robot(rng)
    which = i % len(ENVELOPES)
    env, T = ENVELOPES[which], CALIBRATIONS[which]
    steps = []
    res = run_episode(NullCamera(), FuzzPolicy(action), robot, "fuzz", workspace=WS, envelope=env, max_steps=1,
                      motion=MOTION, on_step=steps.append)
    assert res.reason in REASONS, (i, res.reason)
    moves = [c for c in robot.commands if c["cmd"] == "move_to"]
    for cmd in moves:
        bad = _command_violations(cmd, env, T)
        assert not bad, f"episode {i}: unsafe command reached the robot: {bad} ({cmd})"
    if _obviously_invalid(action):
        assert moves == [], f"episode {i}: an invalid action moved the arm: {action}"
    ended_badly = res.reason not in ("done", "max_steps", "success")
    if res.steps == 0:
        assert ended_badly and res.info.get("error"), i
    else:
        rec = steps[0]
        if ended_badly:
            assert isinstance(rec.error, str) and rec.error, f"episode {i}: {res.reason} without a recorded error"
        else:
            assert rec.error is None and rec.safety["ok"], i
        if not rec.safety["ok"]:
            assert res.reason == "safety_stop" and rec.safety["reasons"] and moves == [], i
        if i % 50 == 0:
            json.dumps(rec.to_dict())  # every record stays loggable
    return {"reason": res.reason, "moves": len(moves)}


@pytest.fixture()
def fixed_observation(monkeypatch):
    monkeypatch.setattr(episode_mod, "project_frames", lambda frames, workspace: OBS)


def test_thousands_of_adversarial_actions_never_raise_and_never_reach_the_robot_unsafe(fixed_observation):
    reasons = {}
    moved = 0
    for i in range(N_EPISODES):
        out = _episode(i)
        reasons[out["reason"]] = reasons.get(out["reason"], 0) + 1
        moved += out["moves"] > 0
    # not vacuous: every kind of outcome happened, and plenty of plans did execute
    for reason in ("done", "safety_stop", "planning_failed", "policy_error", "stopped", "robot_error"):
        assert reasons.get(reason, 0) > 0, reasons
    assert reasons["done"] > N_EPISODES // 20 and reasons["safety_stop"] > N_EPISODES // 20, reasons
    assert moved > N_EPISODES // 20, moved


def test_the_fuzz_is_reproducible(fixed_observation):
    assert [_episode(i) for i in range(200)] == [_episode(i) for i in range(200)]
