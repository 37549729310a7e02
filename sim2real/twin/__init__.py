"""The digital twin: PyBullet scene, robot, camera and tasks behind the same ports as the real robot.

``Twin.from_config()`` builds everything from ``config/robots/sim.yaml``; ``twin.start_trial(task,
seed)`` resets the world for one seeded trial and returns the task instance; ``twin.run_trial``
runs the episode with a policy. PyBullet is imported lazily, inside the functions that need it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from sim2real.config import config_dir, from_mapping, load_yaml
from sim2real.errors import ConfigError
from sim2real.motion import MotionConfig
from sim2real.safety import SafetyEnvelope
from sim2real.workspace import GENSIM_WORKSPACE


@dataclass(frozen=True)
class TwinConfig:
    """config/robots/sim.yaml, validated."""

    robot: str
    tool: str
    home_joints: tuple
    reach_m: float
    tool_geometry: object
    control: object
    motion: MotionConfig
    safety: SafetyEnvelope
    calibration: Path
    camera_config: Path
    calibrated: Optional[Path] = None


def load_twin_config(path=None, robot: Optional[str] = None, tool: Optional[str] = None) -> TwinConfig:
    """Load the twin robot config; ``robot`` / ``tool`` override the file's choice."""
    from sim2real.twin.robot import TwinControl
    from sim2real.twin.urdf import ToolGeometry

    path = Path(path) if path else config_dir() / "robots" / "sim.yaml"
    d = load_yaml(path)
    where = str(path)
    robot = robot or d.get("robot", "ur5")
    tool = tool or d.get("tool", "suction")
    arms, tools = d.get("arms") or {}, d.get("tools") or {}
    if robot not in arms:
        raise ConfigError(f"{where}: robot {robot!r} has no entry under 'arms' (have {sorted(arms)})")
    if tool not in tools:
        raise ConfigError(f"{where}: tool {tool!r} has no entry under 'tools' (have {sorted(tools)})")
    arm = arms[robot]
    tool_geom = from_mapping(ToolGeometry, tools[tool], f"{where}.tools.{tool}")
    control = from_mapping(TwinControl, {**(d.get("control") or {}), "home_joints": tuple(arm["home_joints"])},
                           f"{where}.control")
    motion = from_mapping(MotionConfig, d.get("motion") or {}, f"{where}.motion")
    if tool == "gripper":
        motion = replace(motion, grasp_depth=float(d.get("gripper_grasp_depth", 0.02)))
    safety = from_mapping(SafetyEnvelope, d.get("safety") or {}, f"{where}.safety")
    reach = float(arm.get("reach_m", 0.85))
    safety = replace(safety, reach_max_m=min(safety.reach_max_m, reach))
    cam = d.get("camera") or {}
    root = config_dir().parent
    calib = Path(cam.get("calibration", "config/cameras/twin_calibration.yaml"))
    camcfg = Path(cam.get("config", "config/cameras/twin.yaml"))
    calib = calib if calib.is_absolute() else root / calib
    camcfg = camcfg if camcfg.is_absolute() else root / camcfg
    calibrated = cam.get("calibrated")
    if calibrated is not None:
        calibrated = Path(calibrated) if Path(calibrated).is_absolute() else root / calibrated
    return TwinConfig(robot, tool, tuple(arm["home_joints"]), reach, tool_geom, control, motion, safety, calib, camcfg,
                      calibrated)


class Twin:
    """Scene + robot + camera + safety of the digital twin, reused across trials.

    Args:
        config: a TwinConfig.
        gui: open the PyBullet window.
        calibration: a calibration YAML produced by ``sim2real calibrate``: its pose is stamped on the
            frames (the heightmap uses it); the camera still renders from the ground truth
            (``config.calibration``). Default ``config.calibrated`` (None = the ground truth).
        renderer: 'egl' | 'tiny' | None (auto).
    """

    def __init__(self, config: TwinConfig, gui: bool = False, calibration=None, renderer: Optional[str] = None):
        from sim2real.twin.camera import TwinCamera
        from sim2real.twin.robot import TwinRobot
        from sim2real.twin.scene import TwinScene

        self.config = config
        self.scene = TwinScene(config.robot, config.tool_geometry, gui=gui, renderer=renderer)
        self.robot = TwinRobot(self.scene, config.control)
        self.camera = TwinCamera.from_files(self.scene, config.calibration, config.camera_config,
                                            calibrated_path=calibration or config.calibrated)
        self.workspace = GENSIM_WORKSPACE
        self.envelope = config.safety.with_workspace(self.workspace)
        self.instance = None

    @classmethod
    def from_config(cls, path=None, robot=None, tool=None, **kw) -> "Twin":
        return cls(load_twin_config(path, robot, tool), **kw)

    @property
    def renderer(self) -> str:
        return self.scene.conn.renderer

    def reachable(self, pose) -> bool:
        """IK check for the safety envelope (from the capture pose)."""
        from sim2real.errors import PlanningError

        try:
            self.robot.kin.ik(pose, self.robot.home_q, rest_q=self.robot.home_q)
            return True
        except PlanningError:
            return False

    def start_trial(self, task_spec, seed: int):
        """Reset the world for one trial of ``task_spec`` with ``seed``; returns the TaskInstance."""
        from sim2real.twin.taskenv import TaskInstance

        self.instance = TaskInstance(task_spec, self.scene, reach_m=self.config.reach_m - 0.08)
        self.instance.reset(seed)
        self.robot.reset()
        self.camera.reseed(seed)
        self.instance.check()  # goals already satisfied by chance are popped, as GenSim's first reward()
        return self.instance

    def run_trial(self, task_spec, seed: int, policy, on_step=None, max_steps: Optional[int] = None):
        """One whole seeded trial with ``policy`` ('oracle' or a PolicyPort); returns EpisodeResult."""
        from sim2real.episode import run_episode
        from sim2real.oracle import OraclePolicy

        inst = self.start_trial(task_spec, seed)
        pol = OraclePolicy(inst) if policy == "oracle" else policy
        def annotated(rec):
            self.annotate_step(rec)
            on_step(rec)

        step_cb = annotated if on_step is not None else None
        result = run_episode(self.camera, pol, self.robot, inst, workspace=self.workspace, envelope=self.envelope,
                             max_steps=max_steps or inst.max_steps, motion=self.config.motion,
                             success_check=inst.check, on_step=step_cb, reachable=self.reachable)
        result.info.update(inst.describe())
        result.info["goals_left"] = len(inst.goals)
        return result

    def annotate_step(self, rec) -> None:
        """Add the twin's ground truth to a finished step's ``info`` (before it is logged).

        * ``segmentation``: (rows, cols) int32 object ids of the step's heightmap (projected from the
          mask rendered with the step's frame; :mod:`sim2real.twin.segmentation`), 0 = nothing/table;
        * ``pick_object``: id of the object the tool actually grasped this step (0 = none);
        * ``place_object``: id under the executed place pose in that map (0 = the table), i.e. what
          the object was put on or in.
        Ids are those of ``TaskInstance.describe()['objects'][i]['id']``.
        """
        from sim2real.twin.segmentation import object_ids

        frame = rec.frames[0] if rec.frames else None
        seg = self.camera.segmentation_for(frame, self.workspace)
        grasped, self.robot.grasped_body = self.robot.grasped_body, None
        if seg is None:
            return
        rec.info["segmentation"] = seg
        rec.info["pick_object"] = int(object_ids(self.scene).get(grasped, 0)) if grasped is not None else 0
        place = _executed_xyz(rec, "place")
        if place is not None:
            r, c = self.workspace.xyz_to_pix(place)
            if 0 <= r < seg.shape[0] and 0 <= c < seg.shape[1]:
                rec.info["place_object"] = int(seg[r, c])

    def close(self) -> None:
        self.robot.kin.close()
        self.scene.close()


def _executed_xyz(rec, segment: str):
    """xyz (3,) of the executed waypoint ``segment`` of a StepRecord (else the action's pose), or None."""
    for wp in rec.executed or []:
        if isinstance(wp, dict) and wp.get("segment") == segment and "xyz" in wp:
            return wp["xyz"]
    pose = getattr(rec.action, segment, None) if rec.action is not None and rec.executed else None
    return None if pose is None else pose.xyz
