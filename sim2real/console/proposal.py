"""A clicked demonstration step -> the plan the arm would run -> the safety verdict. Pure.

A click draft becomes a :class:`~sim2real.action.PickPlaceAction` exactly as a policy's output
does (``PixelPose.from_pixel``: cell corner, z from the heightmap, quaternion of Euler
(0, 0, -theta)); the pick keeps rotation 0 and the place gets the chosen bin, as CLIPort's
transporter ``act()``. It is then planned by ``motion.plan_from_action`` with the held height of
``motion.estimate_held_height`` and checked by ``safety.check_plan``, the same three calls
``episode._one_step`` makes for a policy action. :func:`approved_plan` is the only way the console
obtains something to execute: it re-checks the plan and raises ``SafetyError`` when refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.console.clicks import ClickDraft, rotation_marker
from sim2real.errors import InputError, SafetyError
from sim2real.motion import MotionConfig, estimate_held_height, plan_from_action
from sim2real.safety import SafetyEnvelope, SafetyVerdict, check_plan


@dataclass(frozen=True)
class Proposal:
    """A planned, checked pick and place.

    Attributes:
        action: the PickPlaceAction (poses in the workspace/base frame, metres).
        plan: list of :class:`~sim2real.motion.Waypoint`.
        verdict: the safety envelope's verdict on ``plan``.
        held_height: estimated height of the picked object, metres.
        frame_seq: the observation the action was computed on.
    """

    action: PickPlaceAction
    plan: list
    verdict: SafetyVerdict
    held_height: float
    frame_seq: int
    info: dict = field(default_factory=dict)

    def to_dict(self, workspace) -> dict:
        """JSON for the page: action, waypoints (metres and fractional heightmap pixels), verdict."""
        waypoints = []
        for wp in self.plan:
            d = wp.to_dict()
            d["pixel"] = xyz_to_fractional_pixel(wp.xyz, workspace)
            waypoints.append(d)
        return {"action": self.action.to_dict(), "waypoints": waypoints, "verdict": self.verdict.to_dict(),
                "held_height": self.held_height, "frame_seq": self.frame_seq,
                "marker": rotation_marker(self.action.place.pixel, _bin_of(self.action.place.theta))}


def _bin_of(theta: float) -> int:
    return int(round(theta / theta_from_bin(1))) % 36


def xyz_to_fractional_pixel(xyz, workspace) -> list:
    """[row, col] as floats (cell units, not rounded) of a position in metres, for drawing."""
    b, s = workspace.bounds, workspace.pixel_size
    return [float((xyz[1] - b[1, 0]) / s), float((xyz[0] - b[0, 0]) / s)]


def action_from_draft(draft: ClickDraft, height: np.ndarray, workspace) -> PickPlaceAction:
    """The PickPlaceAction of a complete draft on heightmap ``height`` (rows, cols) metres.

    Raises:
        InputError: the draft lacks a pick or a place, or a pixel is off the grid.
    """
    if not draft.complete:
        raise InputError(f"click the {draft.expecting} point first (a step needs a pick and a place)")
    rows, cols = workspace.shape
    for name, (r, c) in (("pick", draft.pick), ("place", draft.place)):
        if not (0 <= r < rows and 0 <= c < cols):
            raise InputError(f"{name} pixel ({r}, {c}) is outside the {rows} x {cols} heightmap")
    pick = PixelPose.from_pixel(draft.pick, 0.0, height, workspace)
    place = PixelPose.from_pixel(draft.place, theta_from_bin(draft.rotation), height, workspace)
    return PickPlaceAction(pick, place, info={"source": "console", "rotation_bin": draft.rotation})


def propose(draft: ClickDraft, height: np.ndarray, workspace, motion: MotionConfig, envelope: SafetyEnvelope,
            reachable: Optional[Callable] = None, frame_seq: Optional[int] = None) -> Proposal:
    """Plan and check the draft on heightmap ``height`` (the policy path: see module doc)."""
    action = action_from_draft(draft, height, workspace)
    return propose_action(action, height, workspace, motion, envelope, reachable,
                          draft.frame_seq if frame_seq is None else frame_seq)


def propose_action(action: PickPlaceAction, height: np.ndarray, workspace, motion: MotionConfig,
                   envelope: SafetyEnvelope, reachable: Optional[Callable] = None, frame_seq: int = -1) -> Proposal:
    """Plan and check any PickPlaceAction (a clicked one or a policy's suggestion)."""
    held = estimate_held_height(height, action.pick.pixel, workspace.pixel_size)
    plan = plan_from_action(action, motion, held)
    verdict = check_plan(plan, envelope.with_workspace(workspace), reachable)
    return Proposal(action, plan, verdict, held, int(frame_seq))


def approved_plan(proposal: Proposal, envelope: SafetyEnvelope, workspace,
                  reachable: Optional[Callable] = None) -> list:
    """The plan to execute, re-checked now; the one gate between a console proposal and the arm.

    Raises:
        SafetyError: the envelope refuses the plan (the arm must not move).
    """
    verdict = check_plan(proposal.plan, envelope.with_workspace(workspace), reachable)
    if not (verdict.ok and proposal.verdict.ok):
        reasons = verdict.reasons or proposal.verdict.reasons
        raise SafetyError("unsafe plan refused, the arm did not move: " + "; ".join(reasons))
    return list(proposal.plan)


def plans_agree(a: Proposal, b: Proposal, tol_m: float = 0.02) -> bool:
    """True when every waypoint of ``b`` is within ``tol_m`` of the same waypoint of ``a``.

    Used after re-observing at confirmation: when the scene changed under the clicked points the
    operator must look at the new plan before it runs.
    """
    if len(a.plan) != len(b.plan):
        return False
    return all(float(np.linalg.norm(np.asarray(p.xyz) - np.asarray(q.xyz))) <= tol_m for p, q in zip(a.plan, b.plan))
