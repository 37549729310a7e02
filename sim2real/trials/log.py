"""Crash-safe, resumable trial storage.

On-disk layout of one campaign directory ``DIR`` (the ``--out`` of ``sim2real run``)::

    DIR/trials.jsonl                one JSON object per *finished* trial, append-only,
                                    each line written with one write() then fsync()
    DIR/inflight/<task>__<k>.json   begin marker of a trial in progress (fsynced, atomic rename);
                                    removed after its record is committed
    DIR/trials/<task>/<k:04d>/      the trial's artefact directory (steps, trial.json, bag/)
    DIR/trials/.tmp/...             artefact directories being written (renamed when complete)
    DIR/trials.jsonl.torn-<n>       bytes of a torn last line cut off by a repair (kept, never lost)
    DIR/.lock                       flock held by the one process writing the directory

Commit protocol of :meth:`TrialWriter.finish` (each step durable before the next):

1. write ``trial.json`` (the full record) and the optional rosbag into the temp artefact dir,
   fsync every file and the dir;
2. rename the temp dir to ``trials/<task>/<k>`` and fsync the parent (the *commit point*);
3. append the record to ``trials.jsonl`` and fsync;
4. remove the in-flight marker.

A ``kill -9`` before 2 leaves a marker and a temp dir: the trial is redone (``retry: true``).
A kill between 2 and 3 is rolled forward on the next open: the renamed dir's ``trial.json`` carries
the attempt id of the marker, so its record is appended then. A kill during 3 can tear the last
line; the next open moves the torn bytes to ``trials.jsonl.torn-<n>`` and truncates to the last
complete line (every complete record is kept), after which the roll-forward of 2 re-commits it.
A kill between 3 and 4 leaves a stale marker next to a committed record; the record wins.

So a labelled trial is never lost, corrupted or duplicated, and ``trials.jsonl`` holds exactly one
object per trial. Readers use :func:`load_trials`, which validates every line and reports bad or
partial lines by number instead of dropping them.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import fcntl
import json
import math
import os
import re
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from sim2real.errors import InputError
from sim2real.trials.labels import Label

TRIALS_FILE = "trials.jsonl"
INFLIGHT_DIR = "inflight"
ARTEFACT_DIR = "trials"
TMP_DIR = ".tmp"
STALE_DIR = ".stale"
TRIAL_JSON = "trial.json"
SCHEMA_VERSION = 1

REQUIRED_KEYS = {"task": str, "trial": int, "seed": int, "success": bool, "steps": int, "reason": str,
                 "policy": str}
"""Keys (and types) every trial record must have, whoever wrote it (campaign loop or ``sim2real run``)."""

LOGIT_MODES = ("none", "maps", "full")


class TrialLogError(InputError):
    """The trial log is unreadable, inconsistent, or used wrongly (e.g. a trial logged twice)."""


class TornRecordWarning(UserWarning):
    """The last line of trials.jsonl is incomplete (the writer was killed mid-write)."""


# ----------------------------------------------------------------------------------------------
# Low-level durable file operations (module functions so fault-injection tests can wrap them)
# ----------------------------------------------------------------------------------------------

def _fsync_fd(fd: int) -> None:
    os.fsync(fd)


def _fsync_path(path: Path) -> None:
    """fsync a file or directory by path (directories: makes renames / creations durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _rename(src: Path, dst: Path) -> None:
    os.rename(src, dst)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename + fsync(dir): all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        _fsync_fd(fd)
    finally:
        os.close(fd)
    _rename(tmp, path)
    _fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def task_slug(task: str) -> str:
    """File-system-safe form of a task name: ``"build wheel"`` -> ``"build-wheel"``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", str(task).strip().lower()).strip("-.")
    if not slug:
        raise InputError(f"task name {task!r} has no letters or digits; name tasks like 'build-wheel'")
    return slug


def trial_key_name(task: str, trial: int) -> str:
    """Name of a trial's marker / artefact entries: ``build-wheel__0003``."""
    return f"{task_slug(task)}__{int(trial):04d}"


def artefact_relpath(task: str, trial: int) -> str:
    """Artefact directory of a trial relative to DIR: ``trials/build-wheel/0003``."""
    return f"{ARTEFACT_DIR}/{task_slug(task)}/{int(trial):04d}"


# ----------------------------------------------------------------------------------------------
# JSON helpers
# ----------------------------------------------------------------------------------------------

def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars / arrays, tuples, paths and dataclasses into plain JSON types.

    NaN and inf become None (JSON has no literal for them). Unknown objects raise TrialLogError:
    silently writing ``repr()`` would make records unreadable later.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    raise TrialLogError(f"cannot store a {type(value).__name__} in the trial log; convert it to "
                        "numbers, strings, lists or dicts first")


def _dumps(record: dict) -> str:
    return json.dumps(to_jsonable(record), sort_keys=False, separators=(",", ":"), allow_nan=False)


# ----------------------------------------------------------------------------------------------
# Record validation and loading
# ----------------------------------------------------------------------------------------------

def validate_record(record: Any) -> dict:
    """Check one trial record; return it. Raises TrialLogError saying which key is wrong."""
    if not isinstance(record, dict):
        raise TrialLogError(f"a trial record must be a JSON object, got {type(record).__name__}")
    kind = record.get("kind", "trial")
    if kind != "trial":
        raise TrialLogError(f"record kind is {kind!r}; trials.jsonl holds only finished trials (kind 'trial')")
    for key, typ in REQUIRED_KEYS.items():
        if key not in record:
            raise TrialLogError(f"record lacks required key {key!r} (needs {sorted(REQUIRED_KEYS)})")
        value = record[key]
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            raise TrialLogError(f"record key {key!r} must be {typ.__name__}, got {value!r}")
    if record["trial"] < 0 or record["steps"] < 0:
        raise TrialLogError(f"trial index and steps must be >= 0, got trial={record['trial']} steps={record['steps']}")
    if not record["task"]:
        raise TrialLogError("record task is empty")
    label = record.get("label")
    if label is not None:
        try:
            lab = Label.from_dict(label)
        except InputError as e:
            raise TrialLogError(f"record label is invalid: {e}") from None
        if lab.success != record["success"]:
            raise TrialLogError(f"record success={record['success']} contradicts label outcome {lab.outcome!r}")
    return record


def record_label(record: dict) -> Label:
    """The record's label; records without one (e.g. foreign writers) get one from ``success``."""
    if record.get("label") is not None:
        return Label.from_dict(record["label"])
    return Label("success" if record["success"] else "failure", None if record["success"] else "other",
                 "", "auto")


@dataclass(frozen=True)
class LineIssue:
    """A bad line of trials.jsonl.

    Attributes:
        line: 1-based line number.
        kind: ``torn`` (incomplete last line), ``json`` (not JSON), ``invalid`` (JSON but not a
            valid record), ``duplicate`` (a second record for the same (task, trial)).
        message: what is wrong and what to do.
        text: the start of the offending line (up to 120 characters).
    """

    line: int
    kind: str
    message: str
    text: str = ""

    def __str__(self) -> str:
        return f"line {self.line} ({self.kind}): {self.message}"


@dataclass
class TrialScan:
    """Everything read from a trials.jsonl: the valid records and every problem, by line.

    Attributes:
        path: the file read.
        records: valid trial records in file order (first occurrence of each (task, trial)).
        lines: record line number of each entry of ``records``.
        issues: the bad lines (never silently dropped).
        valid_bytes: byte length of the prefix made of complete lines (used by the torn-tail repair).
        size: file size in bytes.
    """

    path: Path
    records: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    issues: list = field(default_factory=list)
    valid_bytes: int = 0
    size: int = 0

    @property
    def torn(self) -> Optional[LineIssue]:
        """The torn-last-line issue, if any."""
        return next((i for i in self.issues if i.kind == "torn"), None)

    @property
    def corrupt(self) -> list:
        """Issues other than a torn last line: real corruption that needs a person."""
        return [i for i in self.issues if i.kind != "torn"]


def scan_trials(out_dir) -> TrialScan:
    """Read and validate every line of ``out_dir/trials.jsonl`` without raising on bad lines.

    A last line without a trailing newline that does not parse as a valid record is ``torn``
    (the writer died mid-append). Raises TrialLogError only if the file is missing.
    """
    path = Path(out_dir) / TRIALS_FILE
    if not path.is_file():
        raise TrialLogError(f"{path} not found; pass the --out directory of a campaign or `sim2real run`")
    data = path.read_bytes()
    scan = TrialScan(path=path, size=len(data))
    seen: dict = {}
    pos = 0
    lineno = 0
    while pos < len(data):
        lineno += 1
        end = data.find(b"\n", pos)
        complete = end >= 0
        raw = data[pos:end] if complete else data[pos:]
        next_pos = end + 1 if complete else len(data)
        snippet = raw[:120].decode("utf-8", "replace")
        issue = None
        record = None
        if raw.strip() == b"":
            issue = None if complete else LineIssue(lineno, "torn", "incomplete empty last line", snippet)
        else:
            try:
                record = validate_record(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                kind = "json" if complete else "torn"
                msg = (f"not valid JSON ({e}); the file was edited or damaged" if complete else
                       "incomplete last line (the writer was killed mid-write); reopening the log "
                       "with TrialLog repairs it and the trial is redone")
                issue = LineIssue(lineno, kind, msg, snippet)
            except TrialLogError as e:
                kind = "invalid" if complete else "torn"
                issue = LineIssue(lineno, kind, str(e), snippet)
        if record is not None:
            key = (record["task"], record["trial"])
            if key in seen:
                issue = LineIssue(lineno, "duplicate", f"second record for task {key[0]!r} trial {key[1]} "
                                  f"(first on line {seen[key]}); remove one of them", snippet)
            else:
                seen[key] = lineno
                scan.records.append(record)
                scan.lines.append(lineno)
        if issue is not None:
            scan.issues.append(issue)
        if complete:
            scan.valid_bytes = next_pos
        elif record is not None:
            scan.valid_bytes = next_pos  # a complete record that only lacks its newline
        pos = next_pos
    return scan


def load_trials(out_dir, *, strict: bool = True) -> list:
    """The finished trials of a campaign directory: one validated dict per (task, trial).

    Args:
        out_dir: the campaign directory (containing trials.jsonl).
        strict: raise TrialLogError when any line other than a torn last line is bad. With
            ``strict=False`` bad lines are reported with a warning instead.

    A torn last line (a kill during the append) is always reported with a
    :class:`TornRecordWarning` naming its line number; that trial is not finished and is redone
    when the campaign resumes.
    """
    scan = scan_trials(out_dir)
    if scan.corrupt:
        listing = "; ".join(str(i) for i in scan.corrupt)
        msg = f"{scan.path}: {len(scan.corrupt)} bad line(s): {listing}"
        if strict:
            raise TrialLogError(msg + ". Fix or remove those lines (a backup first), then retry")
        warnings.warn(msg, UserWarning, stacklevel=2)
    if scan.torn is not None:
        warnings.warn(f"{scan.path}: {scan.torn}", TornRecordWarning, stacklevel=2)
    return list(scan.records)


# ----------------------------------------------------------------------------------------------
# Step serialisation
# ----------------------------------------------------------------------------------------------

def _get(obj, name: str, default=None):
    """Field ``name`` of a dict-like or attribute-style step record."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _logit_summary(logits: np.ndarray, top_k: int = 5) -> dict:
    """Max, softmax entropy (nats) and top-k cells of a logit map (any shape; softmax over all)."""
    flat = np.asarray(logits, dtype=np.float64).ravel()
    finite = np.isfinite(flat)
    if not finite.any():
        return {"shape": list(np.shape(logits)), "max": None, "entropy": None, "top": []}
    x = np.where(finite, flat, -np.inf)
    x = x - x.max()
    p = np.exp(x)
    p /= p.sum()
    nz = p[p > 0]
    k = min(top_k, p.size)
    best = np.argpartition(-p, k - 1)[:k]  # O(n): a full argsort of 36x320x160 costs ~0.2 s
    order = best[np.argsort(-p[best], kind="stable")]
    top = [{"index": [int(i) for i in np.unravel_index(int(j), np.shape(logits))],
            "logit": float(flat[j]), "p": float(p[j])} for j in order]
    return {"shape": list(np.shape(logits)), "max": float(np.nanmax(np.where(finite, flat, np.nan))),
            "entropy": float(-(nz * np.log(nz)).sum()), "top": top}


def _pose_dict(pose) -> Optional[dict]:
    """Normalise a pose (PixelPose, {xyz, quat_xyzw}, (xyz, quat) tuple) into a JSON dict."""
    if pose is None:
        return None
    if hasattr(pose, "to_dict"):
        return to_jsonable(pose.to_dict())
    if isinstance(pose, Mapping):
        return to_jsonable(dict(pose))
    if isinstance(pose, (list, tuple)) and len(pose) == 2:
        xyz, quat = pose
        return {"xyz": to_jsonable(np.asarray(xyz, dtype=float)),
                "quat_xyzw": to_jsonable(np.asarray(quat, dtype=float))}
    raise TrialLogError(f"cannot read an executed pose from a {type(pose).__name__}; "
                        "use {'xyz': [3], 'quat_xyzw': [4]} or (xyz, quat_xyzw)")


def _executed_dict(executed) -> Optional[dict]:
    """Normalise what the robot executed into {'pick': pose|None, 'place': pose|None, ...}.

    Accepts a dict with 'pick' / 'place' poses, or the list of executed waypoint dicts of
    ``sim2real.motion.execute_plan`` (segments approach, descend, grasp, lift, transit, place,
    release, retreat): the pick is the 'grasp' waypoint, the place the 'place' motion (absent when
    the place was skipped, e.g. nothing was grasped); the waypoints are kept under 'waypoints'.
    """
    if executed is None:
        return None
    if isinstance(executed, Mapping):
        out = {}
        for k, v in executed.items():
            out[str(k)] = _pose_dict(v) if k in ("pick", "place") else to_jsonable(v)
        return out
    waypoints = to_jsonable(list(executed))
    if not waypoints:
        return None
    by_segment = {w.get("segment"): w for w in waypoints if isinstance(w, dict)}
    pick = by_segment.get("grasp") or by_segment.get("descend")
    place = by_segment.get("place")
    pose = (lambda w: None if w is None else {"xyz": w["xyz"], "quat_xyzw": w["quat_xyzw"]})
    return {"pick": pose(pick), "place": pose(place), "waypoints": waypoints}


BIG_ARRAY = 64
"""Arrays in a step's ``info`` with more elements than this go to the npz, not the JSON."""


def serialise_step(step, index: int, logits: str = "maps") -> tuple:
    """Split a StepRecord into (arrays for npz, JSON metadata).

    ``step`` is dict-like or attribute-style with: frames (list of RGBDFrame), observation
    (HeightmapObservation), goal (str), action (PickPlaceAction or None), safety ({ok, reasons}),
    timings (dict of seconds), executed ({'pick': pose, 'place': pose} or None), error (str or
    None), and optionally plan (waypoint dicts), reward / done (twin success check), segmentation
    ((rows, cols) int object ids on the heightmap grid; also taken from info['segmentation']) and
    info (dict; big arrays in it are stored in the npz as info_<key>).
    ``logits``: 'none' | 'maps' (pick map + place max over rotations, float16) | 'full' (place
    logits for all rotations too).
    """
    if logits not in LOGIT_MODES:
        raise InputError(f"logits must be one of {LOGIT_MODES}, got {logits!r}")
    arrays: dict = {}
    meta: dict = {"index": int(index), "t": _now_iso(), "goal": _get(step, "goal")}
    frames_meta = []
    for i, frame in enumerate(_get(step, "frames") or []):
        arrays[f"frame{i}_color"] = np.asarray(frame.color, dtype=np.uint8)
        arrays[f"frame{i}_depth"] = np.asarray(frame.depth, dtype=np.float32)
        arrays[f"frame{i}_K"] = np.asarray(frame.intrinsics.K, dtype=np.float64)
        if frame.T_base_camera is not None:
            arrays[f"frame{i}_T_base_camera"] = np.asarray(frame.T_base_camera, dtype=np.float64)
        frames_meta.append({"frame_id": frame.frame_id, "stamp": float(frame.stamp),
                            "host_stamp": frame.host_stamp, "intrinsics": frame.intrinsics.to_dict(),
                            "calibrated": frame.T_base_camera is not None})
    meta["frames"] = frames_meta
    obs = _get(step, "observation")
    if obs is not None:
        arrays["hm_color"] = np.asarray(obs.color, dtype=np.uint8)
        arrays["hm_height"] = np.asarray(obs.height, dtype=np.float32)
        meta["observation"] = {"workspace": obs.workspace.to_dict(), "stamp": float(obs.stamp)}
    action = _get(step, "action")
    if action is not None:
        meta["action"] = to_jsonable(action.to_dict())
        meta["action_info"] = to_jsonable(getattr(action, "info", {}) or {})
        if action.pick_logits is not None:
            pick = np.asarray(action.pick_logits)
            meta["pick_logits"] = _logit_summary(pick)
            if logits != "none":
                arrays["pick_logits"] = pick.astype(np.float16)
        if action.place_logits is not None:
            place = np.asarray(action.place_logits)
            meta["place_logits"] = _logit_summary(place)
            if logits != "none":
                pl = place.reshape((-1,) + place.shape[-2:])
                arrays["place_logits_max"] = pl.max(axis=0).astype(np.float16)
                arrays["place_logits_rot"] = pl.argmax(axis=0).astype(np.uint8)
            if logits == "full":
                arrays["place_logits"] = place.astype(np.float16)
    info = dict(_get(step, "info") or {})
    seg = _get(step, "segmentation")
    if seg is None and isinstance(info.get("segmentation"), np.ndarray):
        seg = info.pop("segmentation")
    if seg is not None:
        arrays["segmentation"] = np.asarray(seg).astype(np.int32)
    for key in [k for k, v in info.items() if isinstance(v, np.ndarray) and v.size > BIG_ARRAY]:
        arrays[f"info_{key}"] = info.pop(key)
    meta["safety"] = to_jsonable(_get(step, "safety"))
    meta["timings"] = to_jsonable(_get(step, "timings") or {})
    meta["executed"] = _executed_dict(_get(step, "executed"))
    plan = _get(step, "plan")
    if plan:
        meta["plan"] = to_jsonable([w.to_dict() if hasattr(w, "to_dict") else w for w in plan])
    for key in ("reward", "done"):
        if _get(step, key) is not None:
            meta[key] = to_jsonable(_get(step, key))
    err = _get(step, "error")
    meta["error"] = None if err is None else str(err)
    if info:
        meta["info"] = to_jsonable(info)
    return arrays, meta


@dataclass
class StoredStep:
    """One step read back from an artefact directory.

    Attributes:
        index: step number (0-based).
        meta: the step's JSON metadata (goal, action, safety, timings, executed, ...).
        arrays: name -> numpy array (frame{i}_color/depth/K/T_base_camera, hm_color, hm_height,
            pick_logits, place_logits_max, place_logits_rot, segmentation, ...).
    """

    index: int
    meta: dict
    arrays: dict

    def observation(self):
        """The recorded HeightmapObservation (raises TrialLogError if the step has none)."""
        from sim2real.heightmap import HeightmapObservation
        from sim2real.workspace import Workspace

        if "hm_color" not in self.arrays or "observation" not in self.meta:
            raise TrialLogError(f"step {self.index} has no recorded heightmap observation")
        ws = Workspace.from_dict(self.meta["observation"]["workspace"])
        return HeightmapObservation(self.arrays["hm_color"], self.arrays["hm_height"], ws,
                                    float(self.meta["observation"].get("stamp", 0.0)))

    def frames(self) -> list:
        """The recorded RGBDFrames."""
        from sim2real.camera import CameraIntrinsics, RGBDFrame

        out = []
        for i, fm in enumerate(self.meta.get("frames", [])):
            out.append(RGBDFrame(self.arrays[f"frame{i}_color"], self.arrays[f"frame{i}_depth"],
                                 CameraIntrinsics(**fm["intrinsics"]), fm["frame_id"], fm["stamp"],
                                 self.arrays.get(f"frame{i}_T_base_camera"), fm.get("host_stamp")))
        return out


def load_steps(trial_dir) -> list:
    """Read every step of an artefact directory, in order -> list[StoredStep]."""
    trial_dir = Path(trial_dir)
    if not trial_dir.is_dir():
        raise TrialLogError(f"artefact directory {trial_dir} not found; was the trial committed?")
    steps = []
    for meta_path in sorted(trial_dir.glob("step_*.json")):
        meta = json.loads(meta_path.read_text())
        npz = meta_path.with_suffix(".npz")
        arrays = {}
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        steps.append(StoredStep(int(meta["index"]), meta, arrays))
    return steps


# ----------------------------------------------------------------------------------------------
# The log and its per-trial writer
# ----------------------------------------------------------------------------------------------

class TrialWriter:
    """Writes one trial's artefacts into a temp directory; :meth:`finish` commits it.

    Use as a context manager: leaving the block by an exception calls :meth:`abort` (the trial
    stays in flight and is redone on resume).
    """

    def __init__(self, log: "TrialLog", task: str, trial: int, seed: int, meta: dict,
                 attempt: int, attempt_id: str, retry: bool, tmp_dir: Path):
        self.log, self.task, self.trial, self.seed = log, task, int(trial), int(seed)
        self.meta, self.attempt, self.attempt_id, self.retry = dict(meta), attempt, attempt_id, retry
        self.tmp_dir = tmp_dir
        self.started = _now_iso()
        self.n_steps = 0
        self.goal: Optional[str] = None
        self.closed = False

    def __enter__(self) -> "TrialWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.closed:
            self.abort(f"{exc_type.__name__}: {exc}" if exc_type else "writer closed without finish()")

    def add_step(self, step) -> None:
        """Store one StepRecord (see :func:`serialise_step`) as step_NNN.npz + step_NNN.json."""
        if self.closed:
            raise TrialLogError(f"trial {self.task!r} #{self.trial} is already finished; begin a new trial")
        arrays, meta = serialise_step(step, self.n_steps, self.log.logits)
        self.goal = meta.get("goal") or self.goal
        stem = self.tmp_dir / f"step_{self.n_steps:03d}"
        if arrays:
            with open(stem.with_suffix(".npz"), "wb") as f:
                (np.savez_compressed if self.log.compress else np.savez)(f, **arrays)
        stem.with_suffix(".json").write_text(json.dumps(meta, allow_nan=False))
        self.n_steps += 1

    def finish(self, record: dict) -> dict:
        """Commit the trial: artefacts renamed into place, then the record appended (fsynced).

        ``record`` needs at least success, steps, reason, policy and label ({outcome, category,
        note, by}); task / trial / seed / retry / attempt / timestamps / artefacts are filled in.
        Returns the committed record.
        """
        if self.closed:
            raise TrialLogError(f"trial {self.task!r} #{self.trial} is already finished")
        rec = dict(self.meta)
        rec.update(record)
        if rec.get("goal") is None and self.goal is not None:
            rec["goal"] = self.goal  # the goal text of the recorded steps
        rec.update({"kind": "trial", "schema": SCHEMA_VERSION, "task": self.task, "trial": self.trial,
                    "seed": self.seed, "retry": self.retry, "attempt": self.attempt,
                    "attempt_id": self.attempt_id, "started": rec.get("started", self.started),
                    "finished": _now_iso(), "artefacts": artefact_relpath(self.task, self.trial),
                    "recorded_steps": self.n_steps})
        rec = to_jsonable(rec)
        validate_record(rec)
        final = self.log.dir / rec["artefacts"]
        if self.log.rosbag:
            from sim2real.trials.rosbag import write_trial_bag

            write_trial_bag(self.tmp_dir, rec, self.tmp_dir / "bag")
            rec["bag"] = f"{rec['artefacts']}/bag"
        (self.tmp_dir / TRIAL_JSON).write_text(json.dumps(rec, indent=1, allow_nan=False))
        _fsync_tree(self.tmp_dir)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # left by an attempt that crashed between rename and append: superseded
            self.log._discard(final)
        _rename(self.tmp_dir, final)
        _fsync_path(final.parent)
        self.log._append(rec)
        self.log._clear_marker(self.task, self.trial)
        self.closed = True
        return rec

    def abort(self, reason: str = "aborted") -> None:
        """Drop the temp artefacts; the in-flight marker stays (with ``reason``) so resume redoes it."""
        if self.closed:
            return
        self.closed = True
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.log._mark(self.task, self.trial, self.seed, self.attempt, self.attempt_id, last_error=reason)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


class TrialLog:
    """The crash-safe store of one campaign directory (see the module docstring).

    Opening repairs what a crash can leave (torn last line, uncommitted renames, temp dirs) and
    holds an exclusive lock so two processes never write the same directory.

    Args:
        out_dir: campaign directory; created if missing.
        rosbag: also write a rosbag2 (mcap) into each trial's artefact dir (``bag/``); on by
            default, pass False to save ~0.1-0.2 s per step of commit time.
        logits: how much of the logit maps to store: 'none' | 'maps' | 'full'.
        compress: np.savez_compressed for step arrays instead of np.savez. Off by default: on
            camera images it saves ~1.5x disk for ~3x the commit time (bench/trials.py).

    Raises:
        TrialLogError: another process holds the directory, or trials.jsonl has corrupt lines
            (listed by number; a torn last line is repaired, never a reason to stop).
    """

    def __init__(self, out_dir, *, rosbag: bool = True, logits: str = "maps", compress: bool = False):
        if logits not in LOGIT_MODES:
            raise InputError(f"logits must be one of {LOGIT_MODES}, got {logits!r}")
        self.dir = Path(out_dir)
        self.rosbag, self.logits, self.compress = bool(rosbag), logits, bool(compress)
        self.repairs: list = []
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in (INFLIGHT_DIR, ARTEFACT_DIR, f"{ARTEFACT_DIR}/{TMP_DIR}"):
            (self.dir / sub).mkdir(exist_ok=True)
        self._lock_fd = self._lock()
        self._fd = None
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def _lock(self) -> int:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TrialLogError(f"{self.dir} is being written by another process; wait for it to "
                                    "finish or use a different --out") from None
            raise
        return fd

    def close(self) -> None:
        """Close the file and release the directory lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "TrialLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self) -> None:
        path = self.dir / TRIALS_FILE
        if path.exists():
            self._repair_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_path(self.dir)
        self._scan = scan_trials(self.dir)
        if self._scan.corrupt:
            listing = "; ".join(str(i) for i in self._scan.corrupt)
            raise TrialLogError(f"{path}: {len(self._scan.corrupt)} bad line(s): {listing}. Fix or remove "
                                "them (keep a backup) before resuming; complete trials are never rewritten")
        self._labelled = {(r["task"], r["trial"]): r for r in self._scan.records}
        self._roll_forward()
        self._clean_tmp()

    def _repair_tail(self, path: Path) -> None:
        """Cut a torn last line off into trials.jsonl.torn-<n>; add a missing final newline."""
        scan = scan_trials(self.dir)
        if scan.torn is not None:
            data = path.read_bytes()
            n = 1
            while (self.dir / f"{TRIALS_FILE}.torn-{n}").exists():
                n += 1
            backup = self.dir / f"{TRIALS_FILE}.torn-{n}"
            atomic_write_bytes(backup, data[scan.valid_bytes:])  # the exact bytes, for forensics
            with open(path, "r+b") as f:
                f.truncate(scan.valid_bytes)
                f.flush()
                _fsync_fd(f.fileno())
            self.repairs.append(f"line {scan.torn.line}: torn last line moved to {backup.name} "
                                "(its trial was not committed and will be redone)")
            warnings.warn(f"{path}: {scan.torn}; moved to {backup.name}", TornRecordWarning, stacklevel=3)
        data_len = path.stat().st_size
        if data_len:
            with open(path, "rb") as f:
                f.seek(data_len - 1)
                last = f.read(1)
            if last != b"\n":  # a complete record whose newline was not written
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                try:
                    _write_all(fd, b"\n")
                    _fsync_fd(fd)
                finally:
                    os.close(fd)
                self.repairs.append("added the missing newline after the last record")

    def _roll_forward(self) -> None:
        """Finish commits interrupted between the artefact rename and the record append."""
        for marker in self._markers():
            key = (marker["task"], marker["trial"])
            if key in self._labelled:
                self._clear_marker(*key)  # record committed, marker removal was interrupted
                continue
            final = self.dir / artefact_relpath(*key) / TRIAL_JSON
            if not final.is_file():
                continue
            try:
                rec = validate_record(json.loads(final.read_text()))
            except (ValueError, TrialLogError):
                continue
            if rec.get("attempt_id") == marker.get("attempt_id"):
                self._append(rec)
                self._labelled[key] = rec
                self._clear_marker(*key)
                self.repairs.append(f"committed task {key[0]!r} trial {key[1]} found renamed but not logged")

    def _clean_tmp(self) -> None:
        # temp files of atomic writes that a kill interrupted before their rename
        for folder in (self.dir, self.dir / INFLIGHT_DIR):
            for leftover in folder.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)
        for sub in (TMP_DIR, STALE_DIR):
            root = self.dir / ARTEFACT_DIR / sub
            if root.is_dir():
                for child in root.iterdir():
                    shutil.rmtree(child, ignore_errors=True)

    def _discard(self, path: Path) -> None:
        stale = self.dir / ARTEFACT_DIR / STALE_DIR
        stale.mkdir(exist_ok=True)
        target = stale / f"{path.parent.name}__{path.name}__{uuid.uuid4().hex[:8]}"
        _rename(path, target)
        _fsync_path(path.parent)
        shutil.rmtree(target, ignore_errors=True)

    # -- markers -----------------------------------------------------------------------------

    def _marker_path(self, task: str, trial: int) -> Path:
        return self.dir / INFLIGHT_DIR / f"{trial_key_name(task, trial)}.json"

    def _mark(self, task, trial, seed, attempt, attempt_id, **extra) -> None:
        body = {"task": task, "trial": int(trial), "seed": int(seed), "attempt": attempt,
                "attempt_id": attempt_id, "pid": os.getpid(), "t": _now_iso(), **extra}
        atomic_write_text(self._marker_path(task, trial), json.dumps(to_jsonable(body)))

    def _clear_marker(self, task, trial) -> None:
        path = self._marker_path(task, trial)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_path(path.parent)

    def _markers(self) -> list:
        out = []
        for p in sorted((self.dir / INFLIGHT_DIR).glob("*.json")):
            try:
                m = json.loads(p.read_text())
                if isinstance(m, dict) and isinstance(m.get("task"), str) and isinstance(m.get("trial"), int):
                    out.append(m)
                    continue
            except (ValueError, UnicodeDecodeError):
                pass
            # Markers are written by atomic rename, so a bad one was damaged outside the logger.
            warnings.warn(f"{p}: unreadable in-flight marker ignored", UserWarning, stacklevel=2)
        return out

    # -- public API --------------------------------------------------------------------------

    def records(self) -> list:
        """The committed trial records (file order)."""
        return list(self._labelled.values())

    def labelled_keys(self) -> set:
        """{(task, trial)} of committed (labelled) trials: skipped on resume."""
        return set(self._labelled)

    def record(self, task: str, trial: int) -> Optional[dict]:
        """The committed record of (task, trial), or None."""
        return self._labelled.get((task, int(trial)))

    def in_flight(self) -> list:
        """[(task, trial)] begun but never committed: redo these, marked ``retry``."""
        return [(m["task"], m["trial"]) for m in self._markers() if (m["task"], m["trial"]) not in self._labelled]

    def begin(self, task: str, trial: int, seed: int, meta: Optional[dict] = None) -> TrialWriter:
        """Start (or restart) a trial: fsynced in-flight marker + a fresh temp artefact directory.

        Raises:
            TrialLogError: the trial is already committed (trials are never logged twice).
        """
        if self._fd is None:
            raise TrialLogError(f"trial log {self.dir} is closed")
        task, trial = str(task), int(trial)
        if not task:
            raise InputError("task name must not be empty")
        if trial < 0:
            raise InputError(f"trial index must be >= 0, got {trial}")
        if (task, trial) in self._labelled:
            raise TrialLogError(f"task {task!r} trial {trial} is already labelled in {self.dir}; "
                                "it is skipped on resume and never logged twice")
        previous = next((m for m in self._markers() if (m["task"], m["trial"]) == (task, trial)), None)
        attempt = int(previous.get("attempt", 1)) + 1 if previous else 1
        attempt_id = uuid.uuid4().hex
        self._mark(task, trial, seed, attempt, attempt_id)
        tmp = self.dir / ARTEFACT_DIR / TMP_DIR / f"{trial_key_name(task, trial)}__{attempt_id[:12]}"
        tmp.mkdir(parents=True)
        return TrialWriter(self, task, trial, seed, meta or {}, attempt, attempt_id, previous is not None, tmp)

    def _append(self, rec: dict) -> None:
        line = (_dumps(rec) + "\n").encode()
        _write_all(self._fd, line)
        _fsync_fd(self._fd)
        self._labelled[(rec["task"], rec["trial"])] = rec


def iter_trial_dirs(out_dir, records: Iterable[dict]):
    """Yield (record, artefact dir Path) for records that have an artefact directory."""
    for rec in records:
        rel = rec.get("artefacts")
        if rel:
            yield rec, Path(out_dir) / rel
