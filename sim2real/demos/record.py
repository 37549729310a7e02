"""Oracle demonstrations in the twin, recorded as GenSim's ``cliport/demos.py`` records them.

GenSim's loop, reproduced: seeds step by 2 from the split's start (train 0, 2, 4, ...; val 1, 3, ...;
test 10001, 10003, ...), resuming after the folder's largest seed; each seed is one attempt whether
or not it succeeds; at most 3 x N attempts; an episode is the list of (obs, act, reward, info)
before each action plus the final (obs, None, reward, info); ``reward`` is the step's reward (the
change of the task's cumulative reward; 0 on the first entry); only episodes whose total reward
exceeds 0.99 are saved; the collection stops when the folder holds N episodes.

The twin differs from GenSim's environment in how it acts, not in what is stored: the oracle
(:mod:`sim2real.oracle`) runs through the whole pipeline (our camera -> heightmap -> safety ->
motion -> success check) in :meth:`Twin.run_trial`; this module only watches it. Each time the
pipeline reads its camera, the observation of the chosen view is captured at the same instant:

* ``gensim``: the simulator's three D415 images (:func:`~sim2real.demos.dataset.gensim_cameras`,
  GenSim's ``RealSenseD415.CONFIG``), rendered as GenSim's ``_get_obs`` / ``render_camera``
  (:func:`render_gensim_camera`: TinyRenderer, shadows, its projection and depth arithmetic);
* ``camera``: the frame(s) the pipeline read and the heightmap it made (:func:`camera_obs`).
"""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from sim2real.demos.dataset import (GENSIM_IMAGE_SIZE, VIEWS, DemoDataset, camera_obs, gensim_cameras,
                                    save_episode)
from sim2real.errors import DatasetError, InputError

SPLITS = ("train", "val", "test")
"""GenSim's dataset modes; a split folder is named ``{task}-{split}``."""

SEED_BEFORE_FIRST = {"train": -2, "val": -1, "test": -1 + 10000}
"""GenSim ``demos.py``: the seed before the first one (each attempt adds 2)."""

VAL_SEED_LIMIT = -1 + 10000
"""Val seeds must stay below the test seeds (GenSim raises past -1 + 10000)."""

MAX_SEED = 999_999
"""Seeds of 7+ digits could contain another episode's 6-digit id, which GenSim's loader matches."""

TASK_COMPLETED = "task completed."
"""GenSim ``Task.task_completed_desc``: the language goal once every goal is done."""

SUCCESS_REWARD = 0.99
"""GenSim saves an episode only if its total reward exceeds this."""


def split_of(out) -> Optional[str]:
    """The split a folder name ends with (``put-block-in-bowl-train`` -> ``train``), or None."""
    m = re.search(r"-(train|val|test)$", Path(out).name)
    return m.group(1) if m else None


def next_seed(split: str, max_seed: int, start: Optional[int] = None) -> int:
    """The first seed to try: after the folder's largest seed, else ``start``, else GenSim's start."""
    if split not in SPLITS:
        raise InputError(f"split {split!r} is not one of {SPLITS}")
    if max_seed >= 0:
        return max_seed + 2
    return start if start is not None else SEED_BEFORE_FIRST[split] + 2


def check_seed_range(split: str, first: int, attempts: int) -> None:
    """Refuse seeds GenSim would refuse (val overlapping test) or that break its file lookup."""
    last = first + 2 * (attempts - 1)
    if first < 0:
        raise InputError(f"seeds must be >= 0, got {first}")
    if split == "val" and last > VAL_SEED_LIMIT:
        raise InputError(f"val seeds up to {last} would overlap the test seeds (> {VAL_SEED_LIMIT}); "
                         "record fewer val episodes or use --split test")
    if last > MAX_SEED:
        raise InputError(f"seeds up to {last} exceed {MAX_SEED}: a 7-digit seed can contain another episode's "
                         "6-digit id, which GenSim's loader would match; use a smaller --seed")


# ----------------------------------------------------------------------------------------------
# Watching the pipeline's camera
# ----------------------------------------------------------------------------------------------

@dataclass
class Capture:
    """What was seen at one camera read: the pipeline's frame, the gensim images, the state."""

    frame: object
    gensim: Optional[tuple] = None   # (color (3, H, W, 3) uint8, depth (3, H, W) float32)
    info: dict = field(default_factory=dict)


def object_info(scene) -> dict:
    """GenSim's ``env.info`` minus the goal: {body id: (position, quaternion xyzw, dimensions)}.

    ``dimensions`` is ``getVisualShapeData(body)[0][3]``, as GenSim reads it.
    """
    c = scene.client
    out = {}
    for o in scene.objects:
        pos, rot = c.getBasePositionAndOrientation(o.body)
        out[int(o.body)] = (tuple(pos), tuple(rot), tuple(c.getVisualShapeData(o.body)[0][3]))
    return out


def lang_goal(instance) -> str:
    """The current language goal, or GenSim's 'task completed.' once no goal is left."""
    return instance.lang_goal() if instance.goals else TASK_COMPLETED


class RecordingCamera:
    """Wraps the twin's CameraPort; every ``read()`` also captures the demo view at that instant."""

    def __init__(self, twin, view: str):
        self.twin, self.inner, self.view = twin, twin.camera, view
        self.captures: list[Capture] = []
        self._configs = _gensim_configs() if view == "gensim" else None

    def read(self, timeout_s: float = 1.0):
        frame = self.inner.read(timeout_s)  # settles the scene first
        self.captures.append(self._capture(frame))
        return frame

    def _capture(self, frame) -> Capture:
        gensim = None
        if self._configs is not None:
            images = [render_gensim_camera(self.twin.scene.client, pos, quat, K) for pos, quat, K in self._configs]
            gensim = (np.uint8([c for c, _ in images]), np.float32([d for _, d in images]))
        info = object_info(self.twin.scene)
        info["lang_goal"] = lang_goal(self.twin.instance)
        return Capture(frame, gensim, info)

    def __getattr__(self, name):  # segmentation_for, reseed, close, last_frame, ... of the real camera
        return getattr(self.inner, name)


GENSIM_ZRANGE = (0.01, 10.0)
"""GenSim ``RealSenseD415.CONFIG[i]['zrange']``: near and far planes (m) of every simulator camera."""


def render_gensim_camera(client, position, quat_xyzw, K, size=GENSIM_IMAGE_SIZE, zrange=GENSIM_ZRANGE):
    """One D415 image as GenSim's ``Environment.render_camera`` makes it (noise off).

    Same calls and arithmetic: the float32 rotation matrix of the config's quaternion; look along
    its z, up = -y; ``computeViewMatrix``; ``computeProjectionMatrixFOV`` with the vertical field of
    view from fy; shadows on; PyBullet's TinyRenderer (GenSim asks for the OpenGL renderer in a DIRECT
    connection without the EGL plugin, which renders with TinyRenderer); depth linearised from the
    z-buffer as GenSim does (background reads ``zfar``).

    Returns:
        color (H, W, 3) uint8, depth (H, W) float64 metres.
    """
    import pybullet as p

    h, w = size
    znear, zfar = zrange
    rotm = np.float32(client.getMatrixFromQuaternion(quat_xyzw)).reshape(3, 3)
    lookdir = (rotm @ np.float32([0, 0, 1]).reshape(3, 1)).reshape(-1)
    updir = (rotm @ np.float32([0, -1, 0]).reshape(3, 1)).reshape(-1)
    lookat = np.asarray(position) + lookdir
    viewm = client.computeViewMatrix(position, lookat, updir)
    fovh = 180 * np.arctan((h / 2) / K[0, 0]) * 2 / np.pi
    projm = client.computeProjectionMatrixFOV(fovh, w / h, znear, zfar)
    _, _, color, depth, _ = client.getCameraImage(width=w, height=h, viewMatrix=viewm, projectionMatrix=projm,
                                                  shadow=1, flags=p.ER_NO_SEGMENTATION_MASK,
                                                  renderer=p.ER_TINY_RENDERER)
    color = np.array(color, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
    zbuffer = np.array(depth).reshape(h, w)
    depth = (2.0 * znear * zfar) / (zfar + znear - (2.0 * zbuffer - 1.0) * (zfar - znear))
    return color, depth


def _gensim_configs() -> list:
    """(position, quaternion xyzw, K) of the three D415 configs, from the one definition of them."""
    import pybullet as p

    from sim2real.twin.camera import _GENSIM_D415

    return [(pos, p.getQuaternionFromEuler(euler), K)
            for (_name, pos, euler), (K, _T) in zip(_GENSIM_D415, gensim_cameras())]


# ----------------------------------------------------------------------------------------------
# One episode
# ----------------------------------------------------------------------------------------------

@dataclass
class Attempt:
    """The outcome of one seed: the episode (None unless it is saved) and why."""

    seed: int
    success: bool
    reason: str
    total_reward: float
    steps: int
    episode: Optional[list] = None
    seconds: float = 0.0


def record_episode(twin, spec, seed: int, view: str, max_steps: Optional[int] = None) -> Attempt:
    """Run the oracle for one seed in ``twin`` and build GenSim's episode from what it saw."""
    from sim2real.heightmap import EmptyHeightmapWarning, project_frames

    if view not in VIEWS:
        raise InputError(f"view {view!r} is not one of {VIEWS}")
    t0 = time.monotonic()
    cam = RecordingCamera(twin, view)
    steps = []
    twin.camera = cam
    try:
        result = twin.run_trial(spec, seed, "oracle", on_step=steps.append, max_steps=max_steps)
        final = cam.read() if steps else None
    finally:
        twin.camera = cam.inner
    cumulative = [0.0] + [float(r.reward) if r.reward is not None else np.nan for r in steps]
    total = cumulative[-1]
    ok = bool(result.success) and len(steps) > 0 and all(r.action is not None for r in steps) and total > SUCCESS_REWARD
    attempt = Attempt(seed, ok, result.reason, float(total), len(steps), seconds=time.monotonic() - t0)
    if not ok:
        return attempt
    by_frame = {id(c.frame): c for c in cam.captures}
    episode = []
    for k, rec in enumerate(steps):
        cap = by_frame[id(rec.frames[0])]
        obs = _obs(cap, rec.frames, rec.observation, view)
        act = {"pose0": _pose(rec.action.pick), "pose1": _pose(rec.action.place)}
        episode.append((obs, act, cumulative[k] - (cumulative[k - 1] if k else 0.0), cap.info))
    cap = cam.captures[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyHeightmapWarning)
        final_obs = project_frames([final], twin.workspace) if view == "camera" else None
    episode.append((_obs(cap, [final], final_obs, view), None, cumulative[-1] - cumulative[-2], cap.info))
    attempt.episode = episode
    attempt.seconds = time.monotonic() - t0
    return attempt


def _pose(pixel_pose) -> tuple:
    """(xyz (3,), xyzw (4,)) float64 arrays, as GenSim's oracle returns a pose (``np.asarray``s)."""
    return (np.asarray(pixel_pose.xyz, np.float64).copy(), np.asarray(pixel_pose.quat_xyzw, np.float64).copy())


def _obs(cap: Capture, frames, observation, view: str) -> dict:
    if view == "gensim":
        return {"color": cap.gensim[0], "depth": cap.gensim[1]}
    return camera_obs(frames, observation)


# ----------------------------------------------------------------------------------------------
# A collection
# ----------------------------------------------------------------------------------------------

@dataclass
class Collection:
    """Summary of one ``record_demos`` call."""

    out: Path
    target: int
    had: int
    saved: list = field(default_factory=list)      # (index, seed)
    failed: list = field(default_factory=list)     # Attempt
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.had + len(self.saved)


def prepare(out, view: str, split: str, episodes: int, seed: Optional[int] = None,
            max_attempts: Optional[int] = None) -> tuple[int, int, int]:
    """Validate a collection before any slow work.

    Returns:
        (episodes already in ``out``, first seed to try, attempts allowed).

    Raises:
        InputError / DatasetError: bad arguments, a folder that is not a GenSim dataset, or one
        recorded with the other view.
    """
    if view not in VIEWS:
        raise InputError(f"--view must be one of {VIEWS}, got {view!r}")
    if split not in SPLITS:
        raise InputError(f"--split must be one of {SPLITS}, got {split!r}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise InputError(f"--episodes must be a positive integer (the number of episodes the folder should hold), "
                         f"got {episodes!r}")
    if max_attempts is not None and max_attempts < 1:
        raise InputError(f"--max-attempts must be >= 1, got {max_attempts}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder (e.g. data/put-block-in-bowl-train)")
    had, max_seed = 0, -1
    if out.is_dir() and any(out.iterdir()):
        ds = DemoDataset(out)
        had = ds.n_episodes
        max_seed = max((s for _, s in ds.episode_ids), default=-1)
        if ds.view is not None and ds.view != view:
            raise DatasetError(f"{out} holds {ds.view}-view episodes; record --view {view} into another folder")
    first = next_seed(split, max_seed, seed)
    attempts = max_attempts if max_attempts is not None else 3 * episodes  # GenSim: max_eps = 3 * n
    if had < episodes:
        check_seed_range(split, first, attempts)
    return had, first, attempts


def record_demos(twin, spec, out, episodes: int, view: str = "gensim", split: str = "train",
                 seed: Optional[int] = None, max_attempts: Optional[int] = None, max_steps: Optional[int] = None,
                 on_attempt: Optional[Callable[[Attempt, Collection], None]] = None) -> Collection:
    """Record oracle demonstrations of ``spec`` until ``out`` holds ``episodes`` of them.

    Args:
        twin: a :class:`~sim2real.twin.Twin`.
        spec: the TaskSpec.
        out: the split folder (created; resumed and appended to if it exists).
        episodes: the number of episodes the folder should hold (GenSim's ``n``).
        view: 'gensim' | 'camera'.
        split: 'train' | 'val' | 'test' (the seed convention).
        seed: first seed for a new folder (default: the split's, as GenSim).
        max_attempts: seeds to try in this call (default 3 x episodes, as GenSim).
        max_steps: override the task's step budget.
        on_attempt: called after every seed with the Attempt and the running Collection.
    """
    had, s, attempts = prepare(out, view, split, episodes, seed, max_attempts)
    col = Collection(Path(out), episodes, had)
    t0 = time.monotonic()
    tried = 0
    while col.total < episodes and tried < attempts:
        tried += 1
        try:
            attempt = record_episode(twin, spec, s, view, max_steps)
        except Exception as e:  # noqa: BLE001 - as GenSim: a failed rollout skips the seed
            attempt = Attempt(s, False, f"error: {type(e).__name__}: {e}", 0.0, 0)
        if attempt.success:
            index = save_episode(out, attempt.episode, s)
            col.saved.append((index, s))
            attempt.episode = None  # free the images
        else:
            col.failed.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt, col)
        s += 2
    col.seconds = time.monotonic() - t0
    return col
