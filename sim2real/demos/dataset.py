"""Demonstrations on disk in GenSim's (CLIPort's, Ravens') dataset format, read safely.

API (stable; the fine-tuner and the operator console build on it)::

    FIELDS = ("action", "color", "depth", "info", "reward")
    VIEWS = ("gensim", "camera")
    class DatasetError(Sim2RealError)                      # sim2real.errors; names the file and the fix
    save_episode(root, episode, seed) -> int               # index of the episode written
    restricted_load(path)                                  # allow-list unpickler (sim2real.demos.pickling)
    DemoDataset(root)                                      # validates the layout
        .n_episodes: int, .episode_ids: list[(index, seed)], .view: "gensim" | "camera" | None (empty)
        .episode(i) -> list[(obs, act | None, reward, info)]
        .image(obs, info=None) -> (320, 160, 6) float32    # GenSim's RavensDataset.get_image
    camera_obs(frames, observation) -> dict                # obs of one --view camera step
    gensim_cameras() -> list[(K (3, 3), T_base_camera (4, 4))]   # RealSenseD415.CONFIG as GenSim builds it

Layout (GenSim ``cliport/dataset.py`` ``RavensDataset.add``): one folder per split, e.g.
``data/put-block-in-bowl-train/``, holding ``action/ color/ depth/ info/ reward/`` with one pickle per
episode in each, all named ``{index:06d}-{seed}.pkl``. For an episode of T steps (T pick-and-place
actions, T + 1 entries):

* ``color``: uint8 array (T + 1, n_cams, H, W, 3), RGB;
* ``depth``: float32 array (T + 1, n_cams, H, W), metres along the optical axis;
* ``action``: list of T + 1: ``{'pose0': (xyz (3,), xyzw (4,)), 'pose1': (...)}`` (pick, place, in the
  robot base frame, metres and quaternion x, y, z, w), and ``None`` for the final entry;
* ``reward``: list of T + 1 floats (the reward obtained by the previous action; 0 first);
* ``info``: list of T + 1 dicts, each with ``'lang_goal'`` (str) plus, as GenSim's ``env.info``,
  ``{object id: (position, quaternion xyzw, dimensions)}``.

Views. ``gensim``: the simulator's own three RealSense D415 views (n_cams = 3, 480 x 640), which GenSim's
``get_image`` fuses with its hard-coded camera configs, so GenSim reads the folder unchanged.
``camera``: what the real robot sees -- our calibrated camera(s) (n_cams = the number of frames, their
own H x W) -- plus, per step, each frame's intrinsics and camera pose and the heightmap our pipeline
made from them. Those extras are obs keys (see :func:`camera_obs`); on disk they travel inside that
step's ``info`` under :data:`OBS_EXTRA` (GenSim's loader only keeps ``color`` and ``depth`` of an obs)
and :meth:`DemoDataset.episode` moves them back into the obs, so save -> load round-trips.

Writing is crash-safe: each file goes to ``root/.incoming/`` and is renamed into place, ``action/``
last; GenSim counts and finds episodes through ``action/`` only, so an interrupted save is never
readable, and the next :func:`save_episode` removes its leftovers.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from sim2real.demos.pickling import dump, restricted_load
from sim2real.errors import DatasetError
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

__all__ = ["FIELDS", "VIEWS", "OBS_EXTRA", "DatasetError", "save_episode", "restricted_load", "DemoDataset",
           "camera_obs", "gensim_cameras", "episode_filename"]

FIELDS = ("action", "color", "depth", "info", "reward")
"""The five per-episode folders of GenSim's dataset (``RavensDataset.add``)."""

VIEWS = ("gensim", "camera")
"""``gensim``: the simulator's three D415 views; ``camera``: our calibrated camera(s) + stored heightmap."""

OBS_EXTRA = "sim2real_obs"
"""info key under which a step's obs entries other than color/depth are stored (camera view)."""

IN_SHAPE = (320, 160, 6)
"""GenSim's ``RavensDataset.in_shape``: the policy image (rows, cols, RGB + 3 x height)."""

_NAME = re.compile(r"^(\d{6})-(-?\d+)\.pkl$")
_INCOMING = ".incoming"


def episode_filename(index: int, seed: int) -> str:
    """``{index:06d}-{seed}.pkl``, GenSim's name of an episode's file in every field folder."""
    return f"{index:06d}-{seed}.pkl"


# ----------------------------------------------------------------------------------------------
# The simulator's cameras, exactly as GenSim builds them
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def gensim_cameras() -> tuple:
    """GenSim's ``RealSenseD415.CONFIG`` as ``reconstruct_heightmaps`` turns it into matrices.

    Returns:
        three (K (3, 3) float64, T_base_camera (4, 4) float64) pairs: front, left, right. K is
        fx = fy = 450, cx = 320, cy = 240 for 640 x 480 images; the rotation is
        ``pybullet.getMatrixFromQuaternion(pybullet.getQuaternionFromEuler(euler))``, the very
        calls GenSim makes (scipy's matrix differs in the last bit, which can move a point
        across a heightmap cell edge).
    """
    import pybullet as p

    from sim2real.twin.camera import _GENSIM_D415  # the twin's copy of the poses (one definition)

    K = np.array((450.0, 0, 320.0, 0, 450.0, 240.0, 0, 0, 1)).reshape(3, 3)
    out = []
    for _name, position, euler in _GENSIM_D415:
        R = np.array(p.getMatrixFromQuaternion(p.getQuaternionFromEuler(euler))).reshape(3, 3)
        T = np.eye(4)
        T[:3, :] = np.hstack((R, np.array(position, dtype=np.float64).reshape(3, 1)))
        out.append((K.copy(), T))
    return tuple(out)


GENSIM_IMAGE_SIZE = (480, 640)
"""(H, W) of the simulator's D415 images."""


# ----------------------------------------------------------------------------------------------
# Validation of an episode before it is written
# ----------------------------------------------------------------------------------------------

def _check_pose(pose, where: str) -> None:
    try:
        xyz, quat = pose
        xyz, quat = np.asarray(xyz, dtype=np.float64), np.asarray(quat, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where} must be (xyz, quaternion xyzw), got {pose!r:.80}") from None
    if xyz.shape != (3,) or quat.shape != (4,) or not (np.isfinite(xyz).all() and np.isfinite(quat).all()):
        raise DatasetError(f"{where} must be finite (xyz (3,), xyzw (4,)), got shapes {xyz.shape}, {quat.shape}")
    if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
        raise DatasetError(f"{where}: quaternion {quat.tolist()} is not unit length; normalise it")


def _check_episode(episode, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetError(f"seed must be an integer (it is part of the file name), got {seed!r}")
    if not isinstance(episode, (list, tuple)) or len(episode) < 2:
        raise DatasetError("an episode is a list of at least 2 (obs, act, reward, info) entries: the steps and "
                           "the final (obs, None, reward, info)")
    shape0 = None
    for t, entry in enumerate(episode):
        where = f"episode entry {t}"
        if not isinstance(entry, (list, tuple)) or len(entry) != 4:
            raise DatasetError(f"{where} must be a 4-tuple (obs, act, reward, info)")
        obs, act, reward, info = entry
        if not isinstance(obs, dict) or "color" not in obs or "depth" not in obs:
            raise DatasetError(f"{where}: obs must be a dict with 'color' and 'depth'")
        color, depth = _stack(obs["color"], f"{where} color"), _stack(obs["depth"], f"{where} depth")
        if color.dtype != np.uint8 or color.ndim != 4 or color.shape[-1] != 3:
            raise DatasetError(f"{where}: color must be uint8 (n_cams, H, W, 3), got {color.dtype} {color.shape}")
        if not np.issubdtype(depth.dtype, np.floating) or depth.shape != color.shape[:3]:
            raise DatasetError(f"{where}: depth must be float (n_cams, H, W) = {color.shape[:3]} metres, "
                               f"got {depth.dtype} {depth.shape}")
        if shape0 is None:
            shape0 = color.shape
        elif color.shape != shape0:
            raise DatasetError(f"{where}: image shape {color.shape} differs from entry 0's {shape0}; "
                               "every step of an episode must use the same cameras")
        last = t == len(episode) - 1
        if last and act is not None:
            raise DatasetError("the final entry's act must be None (GenSim's (obs, None, reward, info))")
        if not last:
            if not isinstance(act, dict) or "pose0" not in act or "pose1" not in act:
                raise DatasetError(f"{where}: act must be a dict with 'pose0' (pick) and 'pose1' (place)")
            _check_pose(act["pose0"], f"{where} act['pose0']")
            _check_pose(act["pose1"], f"{where} act['pose1']")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.number)) or not np.isfinite(reward):
            raise DatasetError(f"{where}: reward must be a finite number, got {reward!r}")
        if not isinstance(info, dict) or not isinstance(info.get("lang_goal"), str):
            raise DatasetError(f"{where}: info must be a dict with a 'lang_goal' string (GenSim's language goal)")
        if OBS_EXTRA in info:
            raise DatasetError(f"{where}: info key {OBS_EXTRA!r} is reserved; put extra observation data in obs")


def _stack(images, where: str) -> np.ndarray:
    try:
        return np.asarray(images)
    except ValueError:
        raise DatasetError(f"{where}: the cameras' images have different sizes; every camera of a step "
                           "must have the same resolution (record them as separate datasets)") from None


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(root: Path):
    """Exclusive lock on ``root/.lock`` so two recorders never take the same index."""
    import fcntl

    with open(root / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _atomic_dump(data, final: Path, incoming: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix="part-", suffix=".tmp", dir=incoming)
    try:
        with os.fdopen(fd, "wb") as f:
            dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; GenSim's open() honours the umask
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _episode_names(action_dir: Path) -> list[str]:
    """GenSim counts every name containing '.pkl' in action/ (``RavensDataset.__init__``)."""
    return sorted(n for n in os.listdir(action_dir) if ".pkl" in n) if action_dir.is_dir() else []


def _shadowed(name: str, index: int, names: Sequence[str]) -> Optional[str]:
    """The file GenSim's ``load(index)`` would read instead of ``name``, or None.

    ``load`` takes the first name in sorted order that *contains* ``{index:06d}``, so a seed
    holding another episode's 6-digit id can hide that episode.
    """
    key = f"{index:06d}"
    for other in sorted(names):
        if key in other:
            return None if other == name else other
    return None


def save_episode(root, episode, seed: int) -> int:
    """Write one episode as GenSim's ``RavensDataset.add(seed, episode)`` does.

    Args:
        root: the split folder (``.../{task}-{train|val|test}``); created if missing.
        episode: list of (obs, act, reward, info); the last entry is (obs, None, reward, info).
            ``obs['color']``: (n_cams, H, W, 3) uint8 (or a sequence of (H, W, 3)),
            ``obs['depth']``: (n_cams, H, W) float metres; other obs keys (camera view) are stored
            in that step's info under :data:`OBS_EXTRA`. ``info['lang_goal']`` is required.
        seed: the episode's seed (the file name's second part).

    Returns:
        the episode index: the number of episodes already in ``root`` (counted in ``action/``).

    Raises:
        DatasetError: a malformed episode, a name that would collide with or shadow another
        episode's in GenSim's loader, or a write failure.
    """
    _check_episode(episode, seed)
    seed = int(seed)
    color = np.uint8([np.asarray(obs["color"]) for obs, _, _, _ in episode])
    depth = np.float32([np.asarray(obs["depth"]) for obs, _, _, _ in episode])
    action = [act for _, act, _, _ in episode]
    reward = [r for _, _, r, _ in episode]
    info = []
    for obs, _, _, i in episode:
        extra = {k: v for k, v in obs.items() if k not in ("color", "depth")}
        info.append({**i, OBS_EXTRA: extra} if extra else i)
    data = {"color": color, "depth": depth, "action": action, "reward": reward, "info": info}

    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for field in FIELDS:
            (root / field).mkdir(exist_ok=True)
        incoming = root / _INCOMING
        incoming.mkdir(exist_ok=True)
    except OSError as e:
        raise DatasetError(f"{root}: cannot create the dataset folders ({e}); choose a writable --out") from None
    with _locked(root):
        names = _episode_names(root / "action")
        index = len(names)
        name = episode_filename(index, seed)
        _check_names(root, names + [name])
        _remove_leftovers(root, index)
        try:
            for field in ("color", "depth", "reward", "info", "action"):  # action/ last: it commits
                _atomic_dump(data[field], root / field / name, incoming)
        except OSError as e:
            raise DatasetError(f"{root}: writing episode {index} failed ({e}); free disk space and re-run "
                               "(the partial episode is not readable and will be replaced)") from None
    return index


def _check_names(root: Path, names: Sequence[str]) -> None:
    """Names in action/ must be ``{i:06d}-{seed}.pkl`` for i = 0..n-1, each found by GenSim's loader."""
    parsed = [_NAME.match(n) for n in names]
    bad = [n for n, m in zip(names, parsed) if m is None]
    if bad:
        raise DatasetError(f"{root / 'action'}: unexpected file(s) {bad[:3]}; GenSim counts every '.pkl' name "
                           "there as an episode. Remove them")
    taken = sorted(int(m.group(1)) for m in parsed)
    if taken != list(range(len(taken))):
        dupes = sorted({i for i in taken if taken.count(i) > 1})
        missing = sorted(set(range(len(taken))) - set(taken))
        raise DatasetError(f"{root / 'action'}: episode indices must be 0..{len(taken) - 1} once each "
                           f"(missing {missing[:5]}, repeated {dupes[:5]}); GenSim would read the wrong episodes. "
                           "Renumber or remove files")
    for m in parsed:
        other = _shadowed(m.group(0), int(m.group(1)), names)
        if other is not None:
            raise DatasetError(f"{root / 'action'}: GenSim's loader would read {other} for episode "
                               f"{int(m.group(1))} (its seed contains that 6-digit id); use seeds below 1000000")


def _remove_leftovers(root: Path, index: int) -> None:
    """Delete files of an interrupted save of episode ``index`` (never in action/) and stale temps."""
    key = f"{index:06d}-"
    for field in FIELDS[1:]:
        for n in os.listdir(root / field):
            if n.startswith(key):
                (root / field / n).unlink()
    for n in os.listdir(root / _INCOMING):
        with contextlib.suppress(OSError):
            (root / _INCOMING / n).unlink()


# ----------------------------------------------------------------------------------------------
# The camera view's observation
# ----------------------------------------------------------------------------------------------

def camera_obs(frames, observation) -> dict:
    """The obs of a ``--view camera`` step: what the real robot saw and what it made of it.

    Args:
        frames: the step's RGBDFrame(s) (each with ``T_base_camera``), all of one resolution.
        observation: the HeightmapObservation our pipeline projected from ``frames``.

    Returns:
        dict with
        ``color`` (n, H, W, 3) uint8, ``depth`` (n, H, W) float32 metres (0 or NaN = no reading),
        ``intrinsics`` (n, 3, 3) float64 K, ``image_size`` (n, 2) int64 (H, W),
        ``T_base_camera`` (n, 4, 4) float64 (camera optical frame -> robot base), ``frame_id`` tuple
        of n str, ``heightmap_color`` (rows, cols, 3) uint8, ``heightmap_height`` (rows, cols)
        float32 metres above the table, ``workspace`` {'bounds': 3x2 list, 'pixel_size': m}.
    """
    frames = list(frames) if isinstance(frames, (list, tuple)) else [frames]
    if not frames:
        raise DatasetError("camera_obs needs at least one frame")
    for k, f in enumerate(frames):
        if getattr(f, "T_base_camera", None) is None:
            raise DatasetError(f"frame {k} has no T_base_camera; calibrate the camera before recording demos")
    sizes = {f.color.shape for f in frames}
    if len(sizes) != 1:
        raise DatasetError(f"the frames of one step have different sizes {sorted(sizes)}; record cameras of "
                           "one resolution")
    ws = observation.workspace
    return {
        "color": np.stack([np.asarray(f.color, dtype=np.uint8) for f in frames]),
        "depth": np.stack([np.asarray(f.depth, dtype=np.float32) for f in frames]),
        "intrinsics": np.stack([np.asarray(f.K, dtype=np.float64) for f in frames]),
        "image_size": np.array([f.color.shape[:2] for f in frames], dtype=np.int64),
        "T_base_camera": np.stack([np.asarray(f.T_base_camera, dtype=np.float64) for f in frames]),
        "frame_id": tuple(str(f.frame_id) for f in frames),
        "heightmap_color": np.asarray(observation.color, dtype=np.uint8).copy(),
        "heightmap_height": np.asarray(observation.height, dtype=np.float32).copy(),
        "workspace": ws.to_dict(),
    }


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

class DemoDataset:
    """A GenSim-format split folder, validated on open and read without executing pickled code.

    Args:
        root: the split folder (with action/ color/ depth/ info/ reward/).

    Attributes:
        root: Path of the folder.
        n_episodes: number of complete episodes (files in action/, as GenSim counts them).
        episode_ids: [(index, seed)] sorted by index; indices are 0..n_episodes-1.
        view: 'gensim' (the simulator's 3 D415 views), 'camera' (our camera + stored heightmap),
            or None for an empty folder.
        workspace: the heightmap grid of :meth:`image` (GenSim's).

    Raises:
        DatasetError: a missing folder or field, unexpected or missing files, non-contiguous
        indices, a name GenSim's loader would confuse with another episode's.
    """

    def __init__(self, root):
        self.root = Path(root)
        self.workspace: Workspace = GENSIM_WORKSPACE
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder; record one with `sim2real demos --out DIR`")
        missing = [f for f in FIELDS if not (self.root / f).is_dir()]
        if missing:
            raise DatasetError(f"{self.root}: missing field folder(s) {missing}; a GenSim dataset folder holds "
                               f"{'/ '.join(FIELDS)}/ (pass the split folder, e.g. .../put-block-in-bowl-train)")
        names = _episode_names(self.root / "action")
        _check_names(self.root, names)
        ids = []
        for n in names:
            m = _NAME.match(n)
            ids.append((int(m.group(1)), int(m.group(2))))
            for field in FIELDS[1:]:
                if not (self.root / field / n).is_file():
                    raise DatasetError(f"{self.root / field / n}: missing (action/{n} exists); the episode is "
                                       f"incomplete: restore the file or delete {n} from every field folder")
        self.episode_ids = sorted(ids)
        self._names = {i: episode_filename(i, s) for i, s in self.episode_ids}
        self.n_episodes = len(self.episode_ids)
        self.view = self._detect_view() if self.n_episodes else None

    def __len__(self) -> int:
        return self.n_episodes

    def __repr__(self) -> str:
        return f"DemoDataset({str(self.root)!r}, n_episodes={self.n_episodes}, view={self.view!r})"

    def _detect_view(self) -> str:
        info = restricted_load(self.root / "info" / self._names[0])
        if not isinstance(info, list) or not info or not isinstance(info[0], dict):
            raise DatasetError(f"{self.root / 'info' / self._names[0]}: info must be a non-empty list of dicts")
        return "camera" if OBS_EXTRA in info[0] else "gensim"

    def seed(self, i: int) -> int:
        """Seed of episode ``i``."""
        return self.episode_ids[self._check_index(i)][1]

    def _check_index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < self.n_episodes:
            raise DatasetError(f"{self.root}: episode {i!r} does not exist (have 0..{self.n_episodes - 1})")
        return int(i)

    def episode(self, i: int) -> list:
        """Episode ``i`` as GenSim's ``load`` rebuilds it: [(obs, act, reward, info)], T + 1 entries.

        ``obs`` = {'color': (n_cams, H, W, 3) uint8, 'depth': (n_cams, H, W) float32} plus, for the
        camera view, the entries of :func:`camera_obs` (taken out of ``info[OBS_EXTRA]``).
        """
        name = self._names[self._check_index(i)]
        data = {f: restricted_load(self.root / f / name) for f in FIELDS}
        color, depth = data["color"], data["depth"]
        where = self.root / "color" / name
        if not (isinstance(color, np.ndarray) and color.dtype == np.uint8 and color.ndim == 5 and color.shape[-1] == 3):
            raise DatasetError(f"{where}: color must be a uint8 (T+1, n_cams, H, W, 3) array, got "
                               f"{getattr(color, 'dtype', type(color).__name__)} {getattr(color, 'shape', '')}")
        if not (isinstance(depth, np.ndarray) and depth.dtype == np.float32 and depth.shape == color.shape[:4]):
            raise DatasetError(f"{self.root / 'depth' / name}: depth must be float32 {color.shape[:4]}, got "
                               f"{getattr(depth, 'dtype', type(depth).__name__)} {getattr(depth, 'shape', '')}")
        n = len(color)
        for f in ("action", "reward", "info"):
            if not isinstance(data[f], list) or len(data[f]) != n:
                raise DatasetError(f"{self.root / f / name}: must be a list of {n} entries (one per color frame), "
                                   f"got {type(data[f]).__name__} of {len(data[f]) if hasattr(data[f], '__len__') else '?'}")
        out = []
        for t in range(n):
            obs = {"color": color[t], "depth": depth[t]}
            info = data["info"][t]
            if not isinstance(info, dict):
                raise DatasetError(f"{self.root / 'info' / name}: step {t} info must be a dict, got {type(info).__name__}")
            if (OBS_EXTRA in info) != (self.view == "camera"):
                raise DatasetError(f"{self.root / 'info' / name}: step {t} is not a {self.view}-view step; "
                                   "one folder must hold one view (record the views into separate folders)")
            if OBS_EXTRA in info:
                info = dict(info)
                extra = info.pop(OBS_EXTRA)
                if not isinstance(extra, dict):
                    raise DatasetError(f"{self.root / 'info' / name}: step {t} {OBS_EXTRA} must be a dict")
                obs.update(extra)
            out.append((obs, data["action"][t], data["reward"][t], info))
        return out

    def image(self, obs, info=None) -> np.ndarray:
        """The policy image of an obs, (320, 160, 6) float32: RGB 0-255 and the height (m) three times.

        * gensim view: GenSim's ``get_image`` -- the three D415 images fused through
          :mod:`sim2real.heightmap` with the simulator's camera configs (:func:`gensim_cameras`);
        * camera view: the heightmap stored with the step (what our pipeline gave the policy).
        """
        from sim2real.heightmap import HeightmapObservation, policy_input, project_frames

        extra = obs if "heightmap_height" in obs else (info or {}).get(OBS_EXTRA, {})
        if "heightmap_height" in extra:
            ws = Workspace.from_dict(extra["workspace"]) if "workspace" in extra else self.workspace
            if ws != self.workspace:
                raise DatasetError(f"{self.root}: stored heightmap is on workspace {ws.to_dict()}, not GenSim's "
                                   f"{self.workspace.to_dict()}; re-record with the GenSim workspace")
            hm = HeightmapObservation(extra["heightmap_color"], extra["heightmap_height"], ws)
        else:
            color, depth = np.asarray(obs["color"]), np.asarray(obs["depth"])
            cams = gensim_cameras()
            if color.shape != (len(cams), *GENSIM_IMAGE_SIZE, 3) or depth.shape != color.shape[:3]:
                raise DatasetError(f"{self.root}: a gensim-view obs has color (3, 480, 640, 3) and depth (3, 480, 640) "
                                   f"(the simulator's D415 views), got {color.shape} and {depth.shape}")
            frames = [(color[k], depth[k], K, T) for k, (K, T) in enumerate(cams)]
            import warnings

            from sim2real.heightmap import EmptyHeightmapWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyHeightmapWarning)
                hm = project_frames(frames, self.workspace)
        img = policy_input(hm).astype(np.float32, copy=False)
        if img.shape != IN_SHAPE:
            raise DatasetError(f"{self.root}: policy image {img.shape} is not GenSim's {IN_SHAPE}")
        return img
