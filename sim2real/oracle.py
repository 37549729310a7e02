"""The oracle policy: pick and place from the twin's ground truth (an upper bound, and a check
of the whole pipeline: camera, heightmap, safety, motion and success check all still run).

It follows GenSim's ``Task.oracle`` (``cliport/tasks/task.py``): objects already matching a target
are removed with their target from the matching matrix; among the rest, the object farthest from
its nearest allowed target is moved to that target. Differences, each for a deterministic and
physically careful twin: the pick point is the object's top centre (GenSim samples a pixel of the
eroded object mask), the place height is the surface under the target found by ray casts, and the
yaw change is the smallest one that aligns the object modulo its symmetry.
"""
from __future__ import annotations

import numpy as np

from sim2real.action import PickPlaceAction, PixelPose, quat_xyzw_from_theta
from sim2real.errors import PlanningError
from sim2real.twin.objects import DEFAULT_SYMMETRY
from sim2real.twin.taskenv import BOWL_BASE, Goal, TaskInstance, yaw_of


class OraclePolicy:
    """PolicyPort over a :class:`~sim2real.twin.taskenv.TaskInstance`'s ground truth."""

    name = "oracle"
    checkpoint_sha256 = None

    def __init__(self, instance: TaskInstance):
        self.instance = instance

    def act(self, obs, goal: str, **kw) -> PickPlaceAction:
        """Next pick and place for the current goal (``obs`` and ``goal`` are not needed)."""
        inst = self.instance
        if not inst.goals:
            raise PlanningError("oracle: the task is already complete; nothing to do")
        g = inst.goals[0]
        matches = g.matches.copy()
        occupied = self._occupied(g)
        for i, o in enumerate(g.objects):
            if g.spec.metric == "zone":  # inside the zone: done; its slot is freed by _occupied
                if self._in_zone(o, g):
                    matches[i, :] = 0
                continue
            for j in np.flatnonzero(matches[i]):
                if self.instance.is_match(o, g.targets[j], g):
                    matches[i, :] = 0
                    matches[:, j] = 0
                    break
        matches[:, occupied] = 0
        best, best_d, best_j = None, 0.0, -1
        for i, o in enumerate(g.objects):
            cand = np.flatnonzero(matches[i])
            if len(cand) == 0:
                continue
            pos = inst.scene.pose(o.body)[0]
            d = [np.linalg.norm(g.targets[j].xyz[:2] - pos[:2]) for j in cand]
            k = int(np.argmin(d))
            if d[k] > best_d:
                best, best_d, best_j = o, d[k], int(cand[k])
        if best is None:
            raise PlanningError("oracle: no unmatched object has a free target (the goal cannot progress)")
        return self._action(best, g.targets[best_j], g, obs)

    def _in_zone(self, obj, goal) -> bool:
        single = Goal(goal.spec, [obj], goal.targets, goal.matches[:1], goal.zone, 1.0)
        return self.instance.zone_fraction(single) >= 1.0

    def _occupied(self, goal) -> list:
        """Targets with some goal object already within 2 cm (x-y): a zone slot that is taken."""
        if goal.spec.metric != "zone":
            return []
        taken = []
        for j, t in enumerate(goal.targets):
            for o in goal.objects:
                if np.linalg.norm(self.instance.scene.pose(o.body)[0][:2] - t.xyz[:2]) < 0.02:
                    taken.append(j)
                    break
        return taken

    def _action(self, obj, target, goal, obs) -> PickPlaceAction:
        inst = self.instance
        pos, quat = inst.scene.pose(obj.body)
        lo, hi = inst.scene.client.getAABB(obj.body)
        pick_z = (pos[2] + BOWL_BASE) if obj.spec.kind == "bowl" else hi[2]  # bowl: its base, inside
        pick_xyz = np.array([pos[0], pos[1], pick_z])
        delta = 0.0
        if goal.spec.rotations:
            sym = DEFAULT_SYMMETRY[obj.spec.kind]
            delta = target.yaw - yaw_of(quat)
            if sym > 0:
                delta = (delta + sym / 2) % sym - sym / 2
            else:
                delta = 0.0
        place_xyz = np.array([target.xyz[0], target.xyz[1], self._surface(target.xyz, obj.body)])
        workspace = obs.workspace if obs is not None else None
        pick = PixelPose(self._pix(pick_xyz, workspace), 0.0, pick_xyz, quat_xyzw_from_theta(0.0))
        theta = -delta  # CLIPort: the place quaternion is Euler (0, 0, -theta)
        place = PixelPose(self._pix(place_xyz, workspace), float(theta), place_xyz, quat_xyzw_from_theta(theta))
        from sim2real.twin.segmentation import object_ids

        return PickPlaceAction(pick, place, info={"object": obj.name, "group": obj.group,
                                                  "pick_object": object_ids(inst.scene).get(obj.body, 0),
                                                  "target_xyz": [float(v) for v in target.xyz]})

    def _surface(self, xyz, exclude: int) -> float:
        """Height of the highest surface under ``xyz`` (5 rays, 1.2 cm apart), ignoring the
        object being moved and the robot."""
        c, s = self.instance.scene.client, self.instance.scene
        offsets = [(0, 0), (0.012, 0), (-0.012, 0), (0, 0.012), (0, -0.012)]
        starts = [(xyz[0] + dx, xyz[1] + dy, 0.6) for dx, dy in offsets]
        ends = [(xyz[0] + dx, xyz[1] + dy, -0.01) for dx, dy in offsets]
        best = 0.0
        for hit in c.rayTestBatch(starts, ends):
            body, z = hit[0], hit[3][2]
            if body in (-1, exclude, s.robot):
                continue
            best = max(best, z)
        return best

    @staticmethod
    def _pix(xyz, workspace):
        if workspace is None:
            return (0, 0)
        u, v = workspace.xyz_to_pix(xyz)
        rows, cols = workspace.shape
        return (int(np.clip(u, 0, rows - 1)), int(np.clip(v, 0, cols - 1)))
