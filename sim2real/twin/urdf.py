"""Robot descriptions for the twin, written by the project (no downloaded meshes for the UR5).

* ``ur5_urdf``: the UR5 built from Universal Robots' published Denavit-Hartenberg parameters, one
  revolute joint per DH row, every link made of primitive cylinders laid along the DH offsets.
* ``xarm6_urdf``: the xArm6 description shipped in ``pybullet_data``, with absolute mesh paths so
  it loads from any directory.
* ``attach_tool``: appends a suction cup or a parallel gripper (primitive shapes) to the flange,
  ending in a ``tcp`` link whose frame is the tool point. The tcp frame's z axis points out of the
  tool, so "tool pointing down" is a rotation of pi about x; the twin robot hides that convention.

The URDF text is pure (no simulator import); ``write_cached`` stores it under a content hash.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UR5_DH = {
    # Universal Robots, "DH parameters for calculations of kinematics and dynamics" (UR5 / CB3):
    # a (m), d (m), alpha (rad) per joint; theta is the joint variable.
    "a": (0.0, -0.425, -0.39225, 0.0, 0.0, 0.0),
    "d": (0.089159, 0.0, 0.0, 0.10915, 0.09465, 0.0823),
    "alpha": (np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0),
    "mass": (3.7, 8.393, 2.275, 1.219, 1.219, 0.1879),
    # Joint limits of the UR5: +-2 pi on every joint, 3.15 rad/s, torques 150/150/150/28/28/28 Nm.
    "effort": (150.0, 150.0, 150.0, 28.0, 28.0, 28.0),
}
"""The UR5's published kinematic and inertial parameters."""

_LINK_RADIUS = (0.06, 0.054, 0.045, 0.04, 0.04, 0.035)
"""Radii (m) of the primitive cylinders of each link: approximations of the real arm's girth."""


@dataclass(frozen=True)
class ToolGeometry:
    """Size of an end effector in metres.

    Attributes:
        kind: 'suction' or 'gripper'.
        length: flange to tool point (tcp) along the tool axis.
        radius: suction cup radius, or half the gripper palm width.
        finger_length, finger_width, max_opening: gripper fingers (ignored for suction).
    """

    kind: str = "suction"
    length: float = 0.1
    radius: float = 0.012
    finger_length: float = 0.05
    finger_width: float = 0.012
    max_opening: float = 0.085


def _origin(xyz, rpy=(0.0, 0.0, 0.0)) -> str:
    return '<origin xyz="{:.6g} {:.6g} {:.6g}" rpy="{:.6g} {:.6g} {:.6g}"/>'.format(*xyz, *rpy)


def _inertial(mass: float, radius: float, length: float, xyz=(0.0, 0.0, 0.0)) -> str:
    # Solid cylinder inertia about its centre; good enough for position-controlled joints.
    ixx = mass * (3 * radius ** 2 + length ** 2) / 12.0
    izz = mass * radius ** 2 / 2.0
    return (f'<inertial>{_origin(xyz)}<mass value="{mass:.6g}"/>'
            f'<inertia ixx="{ixx:.6g}" iyy="{ixx:.6g}" izz="{izz:.6g}" ixy="0" ixz="0" iyz="0"/></inertial>')


def _cylinder(radius: float, length: float, xyz, rpy, rgba: str) -> str:
    geom = f'<geometry><cylinder radius="{radius:.6g}" length="{length:.6g}"/></geometry>'
    return (f'<visual>{_origin(xyz, rpy)}{geom}<material name="m"><color rgba="{rgba}"/></material></visual>'
            f'<collision>{_origin(xyz, rpy)}{geom}</collision>')


def _box(size, xyz, rgba: str, rpy=(0.0, 0.0, 0.0)) -> str:
    geom = '<geometry><box size="{:.6g} {:.6g} {:.6g}"/></geometry>'.format(*size)
    return (f'<visual>{_origin(xyz, rpy)}{geom}<material name="m"><color rgba="{rgba}"/></material></visual>'
            f'<collision>{_origin(xyz, rpy)}{geom}</collision>')


def ur5_urdf(tool: ToolGeometry = ToolGeometry()) -> str:
    """URDF text of a UR5 from :data:`UR5_DH`, with ``tool`` attached to the flange.

    Joint i rotates about the z axis of DH frame i-1; joint i+1 sits at Trans_z(d_i) Trans_x(a_i)
    Rot_x(alpha_i) in link i's frame. Each link is a cylinder along its d offset, one along its a
    offset, and a joint housing, so the collision geometry follows the kinematics exactly.
    """
    dh = UR5_DH
    grey, blue = "0.75 0.75 0.78 1", "0.35 0.55 0.75 1"
    parts = ['<?xml version="1.0"?>', '<robot name="ur5_dh">',
             '<link name="base_link">' + _cylinder(0.075, 0.06, (0, 0, 0.03), (0, 0, 0), grey)
             + _inertial(4.0, 0.075, 0.06, (0, 0, 0.03)) + "</link>"]
    parent = "base_link"
    joint_origin = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    for i in range(6):
        a, d, alpha, r = dh["a"][i], dh["d"][i], dh["alpha"][i], _LINK_RADIUS[i]
        name = f"link{i + 1}"
        body = [_cylinder(r, 2 * r, (0, 0, 0), (0, 0, 0), blue)]  # housing around joint i's axis
        if abs(d) > 1e-9:
            body.append(_cylinder(r * 0.9, abs(d), (0, 0, d / 2), (0, 0, 0), grey))
        if abs(a) > 1e-9:
            body.append(_cylinder(r * 0.9, abs(a), (a / 2, 0, d), (0, np.pi / 2, 0), grey))
        length = max(abs(a), abs(d), 2 * r)
        parts.append(f'<link name="{name}">' + "".join(body)
                     + _inertial(dh["mass"][i], r, length, (a / 2, 0, d / 2)) + "</link>")
        parts.append(
            f'<joint name="joint{i + 1}" type="revolute"><parent link="{parent}"/><child link="{name}"/>'
            f'{_origin(*joint_origin)}<axis xyz="0 0 1"/>'
            f'<limit lower="{-2 * np.pi:.6f}" upper="{2 * np.pi:.6f}" effort="{dh["effort"][i]}" velocity="3.15"/>'
            '<dynamics damping="0.0" friction="0.0"/></joint>')
        parent = name
        # The next joint's frame: Trans_z(d) Trans_x(a) Rot_x(alpha), expressed as a URDF origin.
        joint_origin = ((a, 0.0, d), (alpha, 0.0, 0.0))
    # Flange frame = DH frame 6 (after the last row's offsets).
    parts.append('<link name="flange"><inertial><mass value="0.001"/>'
                 '<inertia ixx="1e-6" iyy="1e-6" izz="1e-6" ixy="0" ixz="0" iyz="0"/></inertial></link>')
    parts.append(f'<joint name="flange_joint" type="fixed"><parent link="{parent}"/><child link="flange"/>'
                 f'{_origin(*joint_origin)}</joint>')
    parts.append(_tool_xml("flange", tool))
    parts.append("</robot>")
    return "\n".join(parts)


def _tool_xml(parent: str, tool: ToolGeometry) -> str:
    """Links and joints of ``tool`` hanging off ``parent`` along its +z axis, ending in ``tcp``."""
    dark, orange = "0.2 0.2 0.2 1", "0.95 0.55 0.2 1"
    L = tool.length
    if tool.kind == "suction":
        body = (_cylinder(0.02, L - 0.01, (0, 0, (L - 0.01) / 2), (0, 0, 0), dark)
                + _cylinder(tool.radius, 0.01, (0, 0, L - 0.005), (0, 0, 0), orange))
        xml = [f'<link name="tool">{body}{_inertial(0.1, 0.02, L, (0, 0, L / 2))}</link>',
               f'<joint name="tool_joint" type="fixed"><parent link="{parent}"/><child link="tool"/>'
               f'{_origin((0, 0, 0))}</joint>']
    elif tool.kind == "gripper":
        palm = L - tool.finger_length
        body = (_cylinder(0.02, palm - 0.01, (0, 0, (palm - 0.01) / 2), (0, 0, 0), dark)
                + _box((0.02, tool.max_opening + 2 * tool.finger_width, 0.01), (0, 0, palm - 0.005), dark))
        xml = [f'<link name="tool">{body}{_inertial(0.3, 0.03, palm, (0, 0, palm / 2))}</link>',
               f'<joint name="tool_joint" type="fixed"><parent link="{parent}"/><child link="tool"/>'
               f'{_origin((0, 0, 0))}</joint>']
        half = tool.max_opening / 2
        for side, sign in (("left", 1.0), ("right", -1.0)):
            # Each finger slides along y: 0 = fully open, max_opening / 2 = closed at the centre.
            finger = _box((0.02, tool.finger_width, tool.finger_length),
                          (0, -sign * tool.finger_width / 2, tool.finger_length / 2), orange)
            xml.append(f'<link name="finger_{side}">{finger}'
                       f'{_inertial(0.05, 0.01, tool.finger_length, (0, 0, tool.finger_length / 2))}</link>')
            xml.append(f'<joint name="finger_{side}_joint" type="prismatic"><parent link="tool"/>'
                       f'<child link="finger_{side}"/>{_origin((0, sign * (half + tool.finger_width), palm))}'
                       f'<axis xyz="0 {-sign:g} 0"/><limit lower="0" upper="{half:.6g}" effort="40" velocity="0.5"/>'
                       '</joint>')
    else:
        raise ValueError(f"unknown tool kind {tool.kind!r}; use 'suction' or 'gripper'")
    xml.append('<link name="tcp"><inertial><mass value="0.001"/>'
               '<inertia ixx="1e-6" iyy="1e-6" izz="1e-6" ixy="0" ixz="0" iyz="0"/></inertial></link>')
    xml.append(f'<joint name="tcp_joint" type="fixed"><parent link="tool"/><child link="tcp"/>'
               f'{_origin((0, 0, L))}</joint>')
    return "\n".join(xml)


def xarm6_urdf(tool: ToolGeometry = ToolGeometry()) -> str:
    """The xArm6 URDF of ``pybullet_data`` with absolute mesh paths and ``tool`` on ``link6``."""
    import pybullet_data  # the only simulator-side import here: data files, no C extension

    root = Path(pybullet_data.getDataPath()) / "xarm"
    text = (root / "xarm6_robot.urdf").read_text()
    text = text.replace("package://xarm_description", str(root / "xarm_description"))
    text = re.sub(r"</robot>\s*$", "", text.rstrip())
    return text + "\n" + _tool_xml("link6", tool) + "\n</robot>\n"


def write_cached(text: str, stem: str, cache_dir=None) -> Path:
    """Write URDF ``text`` to ``cache_dir/<stem>-<sha256[:12]>.urdf`` (once) and return the path.

    The cache defaults to ``$SIM2REAL_CACHE`` or ``~/.cache/sim2real``; the file name carries the
    content hash, so a changed description never reuses a stale file.
    """
    cache = Path(cache_dir or os.environ.get("SIM2REAL_CACHE") or Path.home() / ".cache" / "sim2real") / "urdf"
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache / f"{stem}-{digest}.urdf"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
