"""A fake moveit_py for the adapter, robot, executor and calibration tests.

moveit_py is not installable from PyPI (it ships with ROS 2 / MoveIt 2 binaries), so its API is
faked here with the call shapes of the Humble backport and of Jazzy. The fake robot is a
"Cartesian arm": its 6 joints ARE the tip pose (x, y, z in metres, then extrinsic x-y-z Euler
angles in radians, unwrapped towards the current joints), so a test can write down exactly where
a planned trajectory goes; turning a downward tool about the vertical moves only the last joint. Plans interpolate
from the current joints to the goal in ``waypoints`` steps at ``joint_speed`` rad/s (or m/s);
``world.path_hook(start, goal) -> list of joint rows`` replaces the path (an excursion under
the table, a fast swing...). Executing a trajectory moves the current joints to its last row;
``world.block_execute`` makes ``execute()`` block until the trajectory execution manager's
``stop_execution`` is called (then it returns PREEMPTED), like a real controller mid-motion.
"""
from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import numpy as np
from scipy.spatial.transform import Rotation


class Msg(SimpleNamespace):
    """A default-constructible message (what rclpy classes are)."""


class FakePose(Msg):
    def __init__(self):
        super().__init__(position=Msg(x=0.0, y=0.0, z=0.0), orientation=Msg(x=0.0, y=0.0, z=0.0, w=1.0))


class FakeCollisionObject(Msg):
    ADD = 0

    def __init__(self):
        super().__init__(header=Msg(frame_id=""), id="", primitives=[], primitive_poses=[], operation=None)


class FakePrimitive(Msg):
    BOX = 1

    def __init__(self):
        super().__init__(type=None, dimensions=[])


class FakeConstraints(Msg):
    def __init__(self):
        super().__init__(name="", orientation_constraints=[], position_constraints=[], joint_constraints=[])


class FakeOrientationConstraint(Msg):
    def __init__(self):
        super().__init__(header=Msg(frame_id=""), link_name="", orientation=Msg(x=0.0, y=0.0, z=0.0, w=1.0),
                         absolute_x_axis_tolerance=0.0, absolute_y_axis_tolerance=0.0,
                         absolute_z_axis_tolerance=0.0, parameterization=0, weight=0.0)


SCENE_MSGS = SimpleNamespace(CollisionObject=FakeCollisionObject, SolidPrimitive=FakePrimitive, Pose=FakePose,
                             Constraints=FakeConstraints, OrientationConstraint=FakeOrientationConstraint)


class Status:
    """moveit_py ExecutionStatus: ``status`` text, truthy on success."""

    def __init__(self, status):
        self.status = status

    def __bool__(self):
        return self.status == "SUCCEEDED"


def tip_pose_of(q):
    """(xyz, quat_xyzw) of the fake Cartesian arm's tip for joints ``q``."""
    q = np.asarray(q, dtype=float)
    return q[:3], Rotation.from_euler("xyz", q[3:6]).as_quat()


def joints_of(xyz, quat_xyzw, near=None):
    """Joints that put the fake arm's tip at (xyz, quat); angles unwrapped towards ``near``."""
    angles = Rotation.from_quat(quat_xyzw).as_euler("xyz")
    if near is not None:
        ref = np.asarray(near, float)[3:6]
        angles = ref + (angles - ref + np.pi) % (2 * np.pi) - np.pi
    return np.concatenate([np.asarray(xyz, float), angles])


class FakeState:
    """A waypoint of a trajectory (moveit_py RobotState) or a scratch state for FK."""

    def __init__(self, model=None, q=None, qd=None):
        self.model, self.q, self.qd = model, None if q is None else np.asarray(q, float), qd

    def set_joint_group_positions(self, group, q):
        self.q = np.asarray(q, float)
        if self.model is not None and hasattr(self.model, "calls"):
            self.model.calls.append(("joints", group, list(np.asarray(q, float))))

    def get_joint_group_positions(self, group):
        return self.q

    def get_joint_group_velocities(self, group):
        return self.qd

    def update(self, force=False):
        pass

    def set_from_ik(self, group, pose, tip, timeout):
        self.model.calls.append(("ik", group, tip))
        return pose.position.z > 0

    def get_pose(self, link):
        xyz, quat = tip_pose_of(self.q)
        return Msg(position=Msg(x=xyz[0], y=xyz[1], z=xyz[2]),
                   orientation=Msg(x=quat[0], y=quat[1], z=quat[2], w=quat[3]))


class FakeTrajectory:
    """moveit_py RobotTrajectory: iterable RobotStates + get_waypoint_durations()."""

    def __init__(self, rows, durations, velocities=None):
        self.rows = [np.asarray(r, float) for r in rows]
        self.durations = list(durations)
        vel = velocities if velocities is not None else [np.zeros(len(self.rows[0]))] * len(self.rows)
        self.states = [FakeState(q=r, qd=v) for r, v in zip(self.rows, vel)]

    def __iter__(self):
        return iter(self.states)

    def __len__(self):
        return len(self.states)

    def get_waypoint_durations(self):
        return self.durations


def straight(start, goal, n):
    return [start + (goal - start) * k / (n - 1) for k in range(n)]


class PlanResult:
    def __init__(self, ok=True, code=1, trajectory=None):
        self.ok, self.error_code, self.trajectory = ok, SimpleNamespace(val=code), trajectory

    def __bool__(self):
        return self.ok


class FakeWorld:
    """Records every call the adapter makes into the moveit_py API (see the module doc)."""

    def __init__(self, flavour, plan_results=None, exec_results=None, exec_raises=None, start=None,
                 joint_speed=0.2, waypoints=8):
        self.flavour, self.calls = flavour, []
        self.plan_results = list(plan_results or [])
        self.exec_results = list(exec_results or [])
        self.exec_raises = exec_raises
        self.applied = []
        self.path_constraints = []
        self.executed = []
        self.joint_speed, self.waypoints = joint_speed, waypoints
        self.current = np.asarray(start if start is not None else joints_of([0.4, 0.0, 0.3], [1, 0, 0, 0]), float)
        self.goal = None
        self.path_hook = None
        self.block_execute = False
        self.executing = threading.Event()
        self._stopped = threading.Event()
        world = self

        class PlanRequestParameters:
            def __init__(self, robot, *ns):
                if world.flavour == "humble" and ns:
                    raise TypeError("humble: PlanRequestParameters(robot) only")
                if world.flavour == "jazzy" and len(ns) != 1:
                    raise TypeError("jazzy: PlanRequestParameters(robot, ns)")
                world.calls.append(("PlanRequestParameters", ns))
                self.planner_id = self.planning_pipeline = ""
                self.planning_time, self.planning_attempts = 1.0, 5
                self.max_velocity_scaling_factor = self.max_acceleration_scaling_factor = 1.0

        class Component:
            def set_start_state_to_current_state(self):
                world.calls.append(("start_state",))

            def set_goal_state(self, **kw):
                world.calls.append(("goal", kw))
                if "pose_stamped_msg" in kw:
                    p = kw["pose_stamped_msg"].pose
                    world.goal = joints_of((p.position.x, p.position.y, p.position.z),
                                           (p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w),
                                           near=world.current)
                else:
                    world.goal = np.asarray(kw["robot_state"].q, float)

            def set_path_constraints(self, path_constraints):
                world.calls.append(("path_constraints", path_constraints))
                world.path_constraints.append(path_constraints)

            def plan(self, **kw):
                key = {"humble": "parameters", "jazzy": "single_plan_parameters"}[world.flavour]
                if set(kw) != {key}:
                    raise TypeError(f"plan(): incompatible function arguments {sorted(kw)}")
                world.calls.append(("plan", kw[key]))
                result = world.plan_results.pop(0) if world.plan_results else PlanResult()
                if result.ok and result.trajectory is None:
                    result.trajectory = world.trajectory(world.current, world.goal)
                return result

        class Scene:
            current_state = SimpleNamespace(update=lambda: world.calls.append(("scene_update",)))

            def apply_collision_object(self, obj):
                world.applied.append(obj)

        class Monitor:
            @contextlib.contextmanager
            def read_write(self):
                yield Scene()

            @contextlib.contextmanager
            def read_only(self):
                yield SimpleNamespace(current_state=FakeState(q=world.current.copy()))

        class TEM:
            def stop_execution(self, clear=True):
                world.calls.append(("stop", clear))
                world._stopped.set()

        class MoveItPy:
            def __init__(self, node_name="moveit_py", config_dict=None):
                world.calls.append(("MoveItPy", node_name))
                world.config_dict = config_dict

            def get_planning_component(self, group):
                world.calls.append(("component", group))
                return Component()

            def get_planning_scene_monitor(self):
                return Monitor()

            def get_trajactory_execution_manager(self):  # upstream's spelling
                return TEM()

            def get_robot_model(self):
                return world

            def execute(self, *args, **kw):
                if world.flavour == "jazzy":
                    if len(args) != 1 or set(kw) != {"controllers"}:
                        raise TypeError("jazzy: execute(trajectory, controllers)")
                else:
                    if len(args) != 2 or kw != {"blocking": True}:
                        raise TypeError("humble: execute(group, trajectory, blocking=True)")
                world.calls.append(("execute", args, kw))
                traj = args[-1]
                world.executed.append(traj)
                if world.exec_raises:
                    raise world.exec_raises
                if world.block_execute:
                    world._stopped.clear()
                    world.executing.set()
                    stopped = world._stopped.wait(10.0)
                    world.executing.clear()
                    if stopped:
                        world.current = traj.rows[len(traj.rows) // 2].copy()
                        return Status("PREEMPTED")
                status = world.exec_results.pop(0) if world.exec_results else Status("SUCCEEDED")
                if status:
                    world.current = traj.rows[-1].copy()
                return status

        self.api = SimpleNamespace(MoveItPy=MoveItPy, PlanRequestParameters=PlanRequestParameters,
                                   RobotState=lambda model: FakeState(model))

    def trajectory(self, start, goal):
        rows = (self.path_hook or (lambda s, g: straight(s, g, self.waypoints)))(np.asarray(start, float),
                                                                             np.asarray(goal, float))
        rows = [np.asarray(r, float) for r in rows]
        step = max(float(np.abs(rows[k] - rows[k - 1]).max()) for k in range(1, len(rows))) if len(rows) > 1 else 0
        dt = max(step / self.joint_speed, 1e-3)
        durations = [0.0] + [dt] * (len(rows) - 1)
        vel = [np.zeros(6)] + [(rows[k] - rows[k - 1]) / dt for k in range(1, len(rows))]
        return FakeTrajectory(rows, durations, vel)

    def names(self):
        return [c[0] for c in self.calls]
