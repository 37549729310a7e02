"""Task objects of the twin, built from primitive shapes, and the simulator's colour table.

Colours are GenSim's ``COLORS`` table (``cliport/utils/utils.py``), as RGB 0-255 so that a
heightmap pixel can be compared with them directly. Object kinds and default sizes follow the
GenSim assets used by the 9 real-world tasks: 4 cm blocks, 12 cm bowls, 12 cm flat zones,
4 cm spheres and cylinders, 1 cm wide lines and an L-shaped corner.

Flat markings (zone, line, corner) are visual only, 1 mm high: objects rest on the table
through them, as on tape on a real table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.errors import ConfigError

COLORS = {
    "blue": (78, 121, 167), "red": (255, 87, 89), "green": (89, 169, 78), "orange": (242, 142, 43),
    "yellow": (237, 201, 72), "purple": (176, 122, 161), "pink": (255, 157, 167), "cyan": (118, 183, 178),
    "brown": (156, 117, 95), "white": (255, 255, 255), "gray": (186, 176, 172), "indigo": (75, 0, 130),
    "violet": (143, 0, 255), "black": (0, 0, 0), "silver": (192, 192, 192), "gold": (255, 215, 0),
}
"""GenSim's colour table, name -> RGB 0-255."""

TRAIN_COLORS = ("blue", "red", "green", "yellow", "brown", "gray", "cyan")
"""GenSim's ``TRAIN_COLORS``: the colours its tasks sample from."""

KINDS = ("block", "bowl", "zone", "sphere", "cylinder", "line", "corner")

DEFAULT_SIZE = {
    "block": (0.04, 0.04, 0.04), "bowl": (0.12, 0.12, 0.04), "zone": (0.12, 0.12, 0.001),
    "sphere": (0.04, 0.04, 0.04), "cylinder": (0.04, 0.04, 0.04), "line": (0.3, 0.01, 0.001),
    "corner": (0.055, 0.055, 0.001),
}
"""Size (x, y, z) in metres of each kind; a bowl's z is its wall height."""

DEFAULT_SYMMETRY = {"block": np.pi / 2, "sphere": 0.0, "cylinder": 0.0, "bowl": 0.0,
                    "zone": np.pi / 2, "line": np.pi, "corner": 2 * np.pi}
"""Yaw symmetry of each kind in radians (0 = rotation never matters)."""

MARKINGS = ("zone", "line", "corner")
"""Kinds that are flat markings: never picked, not colliding."""


def rgba(color: str, alpha: float = 1.0) -> list[float]:
    """RGBA 0-1 of a colour name of :data:`COLORS`; ConfigError naming the valid ones otherwise."""
    if color not in COLORS:
        raise ConfigError(f"colour {color!r} is not in the simulator's colour table; use one of {sorted(COLORS)}")
    return [c / 255.0 for c in COLORS[color]] + [alpha]


@dataclass(frozen=True)
class ObjectSpec:
    """One object to put in the scene.

    Attributes:
        kind: one of :data:`KINDS`.
        color: a name of :data:`COLORS`.
        size: (x, y, z) metres.
        fixed: static (mass 0) when True.
        mass: kg for movable objects.
    """

    kind: str
    color: str
    size: tuple = (0.04, 0.04, 0.04)
    fixed: bool = False
    mass: float = 0.05


def create_object(client, spec: ObjectSpec, position, yaw: float) -> int:
    """Create ``spec`` at ``position`` with yaw ``yaw`` (rad) and return its PyBullet body id.

    ``position`` is the body's centre of mass position in metres: the geometric centre for solids,
    the base centre for bowls and markings (their origin is on the table).
    """
    p = client
    sx, sy, sz = (float(v) for v in spec.size)
    color = rgba(spec.color)
    quat = p.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
    mass = 0.0 if spec.fixed else float(spec.mass)
    kind = spec.kind
    if kind == "block":
        half = (sx / 2, sy / 2, sz / 2)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=color)
    elif kind == "sphere":
        col = p.createCollisionShape(p.GEOM_SPHERE, radius=sx / 2)
        vis = p.createVisualShape(p.GEOM_SPHERE, radius=sx / 2, rgbaColor=color)
    elif kind == "cylinder":
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=sx / 2, height=sz)
        vis = p.createVisualShape(p.GEOM_CYLINDER, radius=sx / 2, length=sz, rgbaColor=color)
    elif kind == "bowl":
        return _create_bowl(p, spec, position, quat, color, mass)
    elif kind in MARKINGS:
        return _create_marking(p, spec, position, quat, color)
    else:
        raise ConfigError(f"object kind {kind!r} is unknown; use one of {KINDS}")
    body = p.createMultiBody(mass, col, vis, basePosition=list(position), baseOrientation=quat)
    _set_dynamics(p, body, kind)
    return body


def _set_dynamics(p, body: int, kind: str) -> None:
    # Rolling and spinning friction keep released spheres and cylinders where they were put,
    # as the real objects on a rubber mat do.
    rolling = 0.002 if kind in ("sphere", "cylinder") else 0.0
    p.changeDynamics(body, -1, lateralFriction=0.8, rollingFriction=rolling, spinningFriction=0.002,
                     restitution=0.0, linearDamping=0.1, angularDamping=0.3)


def _create_bowl(p, spec: ObjectSpec, position, quat, color, mass: float) -> int:
    """A bowl: a thin octagonal base and 12 wall boxes on a circle, one compound body."""
    radius, wall = spec.size[0] / 2, spec.size[2]
    n, thick = 12, 0.006  # pybullet 3.2.7 crashes on visual shape arrays of more than 16 shapes
    # Base: two squares at 0 and 45 degrees make an octagon (createCollisionShapeArray crashes
    # with cylinders in pybullet 3.2.7, so the bowl is built from boxes only).
    apothem = radius - thick
    types = [p.GEOM_BOX, p.GEOM_BOX]
    halves = [[apothem, apothem, 0.003], [apothem, apothem, 0.003]]
    positions = [[0, 0, 0.003], [0, 0, 0.003]]
    orients = [[0, 0, 0, 1], list(p.getQuaternionFromEuler((0, 0, np.pi / 4)))]
    seg = 2 * radius * np.tan(np.pi / n) + 0.002
    for k in range(n):
        a = 2 * np.pi * k / n
        types.append(p.GEOM_BOX)
        halves.append([thick / 2, seg / 2, wall / 2])
        positions.append([(radius - thick / 2) * np.cos(a), (radius - thick / 2) * np.sin(a), wall / 2])
        orients.append(list(p.getQuaternionFromEuler((0, 0, a))))
    col = p.createCollisionShapeArray(types, halfExtents=halves, collisionFramePositions=positions,
                                      collisionFrameOrientations=orients)
    vis = p.createVisualShapeArray(types, halfExtents=halves, rgbaColors=[color] * len(types),
                                   visualFramePositions=positions,
                                   visualFrameOrientations=orients)
    body = p.createMultiBody(mass if mass == 0 else 0.1, col, vis, basePosition=list(position), baseOrientation=quat)
    _set_dynamics(p, body, "bowl")
    return body


def _create_marking(p, spec: ObjectSpec, position, quat, color) -> int:
    """A flat zone, line or L-shaped corner: visual only, lying on the table."""
    sx, sy, sz = spec.size
    if spec.kind in ("zone", "line"):
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[sx / 2, sy / 2, sz / 2], rgbaColor=color,
                                  visualFramePosition=[0, 0, sz / 2])
    else:  # corner: two 5 mm wide arms meeting at the body origin, along +x and +y
        w = 0.005
        vis = p.createVisualShapeArray(
            [p.GEOM_BOX, p.GEOM_BOX], halfExtents=[[sx / 2, w / 2, sz / 2], [w / 2, sy / 2, sz / 2]],
            rgbaColors=[color, color], visualFramePositions=[[sx / 2 - w / 2, 0, sz / 2], [0, sy / 2 - w / 2, sz / 2]],
            visualFrameOrientations=[[0, 0, 0, 1], [0, 0, 0, 1]])
    return p.createMultiBody(0.0, -1, vis, basePosition=list(position), baseOrientation=quat)


def footprint_radius(spec: ObjectSpec) -> float:
    """Radius in metres of the circle an object covers on the table (for collision-free sampling)."""
    return float(np.hypot(spec.size[0], spec.size[1]) / 2)


def rest_z(spec: ObjectSpec) -> float:
    """Height of the body origin when the object rests on the table (z = 0)."""
    return 0.0 if spec.kind in ("bowl",) + MARKINGS else float(spec.size[2]) / 2
