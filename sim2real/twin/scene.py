"""The twin's PyBullet world: table, robot arm with its tool, and the task objects.

Frames: the world frame is the robot base frame. The geometry is GenSim's
(``cliport/environments/environment.py`` ``reset``): the visible table top (GenSim's
``ur5/workspace.urdf``, a visual-only plane at z = 0) is the workspace's z-min, and the surface
objects rest on (GenSim's ``plane/plane.urdf``, a collision box loaded at z = -0.001) lies
1 mm below it, so a resting object's bottom millimetre is hidden in the table top there as here.
How the heightmap reads that table (GenSim's views read it 1.6 mm high) is the camera's
business: :data:`sim2real.twin.camera.GENSIM_TABLE_READING`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim2real.errors import ConfigError
from sim2real.twin.objects import ObjectSpec, create_object
from sim2real.twin.renderer import Connection, connect
from sim2real.twin.urdf import ToolGeometry, ur5_urdf, write_cached, xarm6_urdf

ROBOTS = ("ur5", "xarm6")
TOOLS = ("suction", "gripper")
TIMESTEP = 1.0 / 240.0
"""Physics step in seconds (PyBullet's default; the simulator's environment uses the same)."""

TABLE_RGBA = (0.53, 0.50, 0.47, 1.0)
"""A neutral grey-brown table top, distinct from every task colour."""

TABLE_TOP_Z = 0.0
"""Visible table top (m): GenSim's workspace plane, loaded at z = 0."""

GROUND_Z = -0.001
"""Top of the collision surface objects rest on (m): GenSim loads ``plane.urdf`` (a box whose top
is its origin) at z = -0.001."""

TABLE_HALF_EXTENTS = (0.75, 0.8, 0.025)
"""Half sizes (m) of the table box, centred under the workspace and the arm's base."""


@dataclass
class SceneObject:
    """A body in the scene with what the task knows about it."""

    body: int
    spec: ObjectSpec
    group: str
    index: int
    name: str
    clear_radius: float = 0.0


@dataclass
class TwinScene:
    """One PyBullet world. ``reset()`` rebuilds it from scratch, so a trial never depends on the
    trials before it (determinism per seed).

    Attributes:
        robot_name: 'ur5' or 'xarm6'.
        tool: ToolGeometry of the end effector.
        conn: the PyBullet connection.
        robot: body id of the arm; table: body id of the table.
        objects: the task's objects, in creation order.
    """

    robot_name: str = "ur5"
    tool: ToolGeometry = field(default_factory=ToolGeometry)
    gui: bool = False
    renderer: Optional[str] = None
    base_position: tuple = (0.0, 0.0, 0.0)
    conn: Optional[Connection] = None
    robot: int = -1
    table: int = -1
    objects: list = field(default_factory=list)
    steps: int = 0

    def __post_init__(self):
        if self.robot_name not in ROBOTS:
            raise ConfigError(f"robot {self.robot_name!r} is not available in the twin; use one of {ROBOTS}")
        if self.tool.kind not in TOOLS:
            raise ConfigError(f"tool {self.tool.kind!r} is unknown; use one of {TOOLS}")
        self.urdf_path = write_cached(ur5_urdf(self.tool) if self.robot_name == "ur5" else xarm6_urdf(self.tool),
                                      f"{self.robot_name}_{self.tool.kind}")
        self.conn = connect(gui=self.gui, renderer=self.renderer)
        self.reset()

    @property
    def client(self):
        return self.conn.client

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the last reset."""
        return self.steps * TIMESTEP

    def reset(self) -> None:
        """Empty the world and rebuild table and robot."""
        import pybullet as p

        c = self.client
        c.resetSimulation()
        c.setPhysicsEngineParameter(fixedTimeStep=TIMESTEP, numSubSteps=0, deterministicOverlappingPairs=1)
        c.setGravity(0, 0, -9.8)
        if self.gui:
            c.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0)
        half = TABLE_HALF_EXTENTS
        # One body (so contact checks exclude a single id): collision top at GROUND_Z, visual top at TABLE_TOP_Z.
        col = c.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = c.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=TABLE_RGBA,
                                  visualFramePosition=(0.0, 0.0, TABLE_TOP_Z - GROUND_Z))
        self.table = c.createMultiBody(0, col, vis, basePosition=(0.35, 0.0, GROUND_Z - half[2]))
        c.changeDynamics(self.table, -1, lateralFriction=0.8)
        self.robot = c.loadURDF(str(self.urdf_path), basePosition=self.base_position, useFixedBase=True,
                                flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES)
        self.links = {c.getJointInfo(self.robot, j)[12].decode(): j for j in range(c.getNumJoints(self.robot))}
        self.joints = {c.getJointInfo(self.robot, j)[1].decode(): j for j in range(c.getNumJoints(self.robot))}
        self.objects = []
        self.steps = 0
        if self.gui:
            c.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1)

    def add_object(self, spec: ObjectSpec, position, yaw: float, group: str = "", index: int = 0) -> SceneObject:
        """Create an object and register it."""
        body = create_object(self.client, spec, position, yaw)
        obj = SceneObject(body, spec, group, index, f"{spec.color} {spec.kind}")
        self.objects.append(obj)
        return obj

    def step(self, n: int = 1) -> None:
        """Advance the physics ``n`` steps."""
        for _ in range(n):
            self.client.stepSimulation()
        self.steps += n

    def settle(self, max_steps: int = 240, tol: float = 1e-3) -> int:
        """Step until no movable object moves faster than ``tol`` m/s (or ``max_steps``); returns steps."""
        movable = [o.body for o in self.objects if not o.spec.fixed]
        for i in range(0, max_steps, 10):
            self.step(10)
            if all(np.linalg.norm(self.client.getBaseVelocity(b)[0]) < tol and
                   np.linalg.norm(self.client.getBaseVelocity(b)[1]) < 20 * tol for b in movable):
                return i + 10
        return max_steps

    def pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion xyzw (4,)) of a body's base."""
        pos, quat = self.client.getBasePositionAndOrientation(body)
        return np.asarray(pos), np.asarray(quat)

    def close(self) -> None:
        """Disconnect from the simulator."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
