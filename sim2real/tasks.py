"""Tasks: one YAML file per task in ``config/tasks/``; adding a file adds a task.

A task file holds the canonical name, the aliases users type, the language goal templates (from
GenSim's task library where the task or a close sibling exists; the file says which), the step
budget, the objects and their randomisation in the twin, and the success criterion: ordered goals
matched the way GenSim's ``Task.reward`` (``cliport/tasks/task.py``) does.

Success semantics (GenSim ``Task.reward`` / ``is_match``):
* goals are evaluated in order; a goal, once complete, is popped and never re-checked;
* ``metric: pose``: an object matches a target when the x-y distance is < ``pos_eps`` and, if the
  object's yaw symmetry is > 0, the yaw difference modulo the symmetry is < ``rot_eps``;
  symmetry 0 means the rotation is never checked. The goal is complete when every object has a
  match among the targets its row of the ``matches`` matrix allows (``all`` = all-ones, or
  ``pairwise`` = identity). As in GenSim, ``pos_eps`` defaults to 0.05 m when the task's
  language mentions a bowl, else 0.01 m; ``rot_eps`` defaults to 15 degrees.
* ``metric: zone``: the fraction of the objects' bounding-box corner points inside the zone
  footprint; complete at 1 (GenSim samples points on the object's box; the corners bound them).
* ``z_eps`` (optional, not in GenSim): also require |z - target z| < z_eps (towers).

Schema (keys; see config/tasks/*.yaml for complete examples)::

    name: block-zone                      # canonical, kebab-case
    aliases: [block zone, blocks in zone] # what users may type
    source: {gensim: <file and class>, notes: <how this task differs>}
    language: "move the {pick} blocks to the {place} zone"  # default goal template
    max_steps: 4                          # or {per_object: <group>, extra: 1}
    colors: {pick: [..], place: [..]}     # variables sampled without replacement
    region: {x: [0.32, 0.68], y: [-0.3, 0.3]}  # where objects are sampled
    objects:                              # created in order; colours: name | $var | $others | [list]
      - {name: zone, kind: zone, color: $place, size: [0.12, 0.12, 0.001], fixed: true}
      - {name: blocks, kind: block, color: $pick, count: 2}   # count: n | [lo, hi] | "<=group"
    goals:
      - objects: blocks
        targets: {at: zone, offsets: [[-0.025, 0, 0], [0.025, 0, 0]]}  # or ring: {radius, count}
        matches: all                      # all | pairwise
        metric: zone                      # pose | zone
        language: "..."                   # optional, overrides the default template
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.config import config_dir, load_yaml
from sim2real.errors import ConfigError, UnknownTaskError
from sim2real.twin.objects import COLORS, DEFAULT_SIZE, KINDS

NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

REAL_WORLD_TASKS = ("stack-block", "build-wheel", "put-block-in-bowl", "pair-blocks-on-line", "pack-spheres",
                    "block-zone", "block-tower-corner", "block-in-bowl-in-zone", "align-block-zone")
"""GenSim's 9 real-world evaluation tasks, in the paper's order: ``--task all`` runs these."""


@dataclass(frozen=True)
class ObjectGroup:
    """Objects of one kind and colour rule created together.

    Attributes:
        name: group id used by goals and targets.
        kind: object kind (sim2real.twin.objects.KINDS).
        color: a colour name, ``$var``, ``$others`` or a list of names (cycled over the count).
        count: int, [lo, hi] (uniform, inclusive) or "<=group" (1..len(group)).
        size: (x, y, z) metres.
        fixed: static in the twin.
        position: fixed (x, y) in metres instead of a random position.
        yaw_deg: fixed yaw; None = uniform random yaw.
        clear_radius: other objects keep this far (m) from this one's centre (None = footprint).
    """

    name: str
    kind: str
    color: object
    count: object = 1
    size: tuple = ()
    fixed: bool = False
    position: Optional[tuple] = None
    yaw_deg: Optional[float] = None
    clear_radius: Optional[float] = None


@dataclass(frozen=True)
class TargetSpec:
    """Where the objects of a goal must go, relative to anchor objects.

    Attributes:
        at: anchor group; one set of targets per anchor object.
        offsets: (k, 3) offsets in the anchor's frame (m); default [[0, 0, 0]].
        ring: {radius, count}: offsets on a circle around the anchor instead.
        yaw_deg: target yaw relative to the anchor's yaw.
        stack: targets sit on top of the anchor (z = anchor top + object half height + dz).
    """

    at: str
    offsets: tuple = ((0.0, 0.0, 0.0),)
    ring: Optional[dict] = None
    yaw_deg: float = 0.0
    stack: bool = False


@dataclass(frozen=True)
class GoalSpec:
    """One goal step (GenSim ``add_goal``)."""

    objects: tuple
    targets: TargetSpec
    matches: str = "all"
    metric: str = "pose"
    pos_eps: Optional[float] = None
    rot_eps_deg: float = 15.0
    z_eps: Optional[float] = None
    symmetry_deg: Optional[float] = None
    max_reward: Optional[float] = None
    language: Optional[str] = None
    rotations: bool = True


@dataclass(frozen=True)
class TaskSpec:
    """A task loaded from YAML. See the module docstring for the schema."""

    name: str
    aliases: tuple
    language: str
    max_steps: object
    objects: tuple
    goals: tuple
    colors: dict = field(default_factory=dict)
    region: dict = field(default_factory=lambda: {"x": [0.32, 0.68], "y": [-0.32, 0.32]})
    source: dict = field(default_factory=dict)
    description: str = ""
    path: Optional[Path] = None

    def group(self, name: str) -> ObjectGroup:
        for g in self.objects:
            if g.name == name:
                return g
        raise KeyError(name)

    def default_pos_eps(self) -> float:
        """GenSim ``additional_reset``: 0.05 m when the language mentions a bowl, else 0.01 m."""
        texts = [self.language] + [g.language or "" for g in self.goals]
        return 0.05 if any("bowl" in t for t in texts) else 0.01


def tasks_dir() -> Path:
    return config_dir() / "tasks"


def load_task(path) -> TaskSpec:
    """Load and validate one task YAML; ConfigError naming the file and key otherwise."""
    path = Path(path)
    d = load_yaml(path)
    where = str(path)
    allowed = {"name", "aliases", "language", "max_steps", "objects", "goals", "colors", "region", "source", "description"}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("name", "language", "max_steps", "objects", "goals"):
        if key not in d:
            raise ConfigError(f"{where}: missing required key {key!r}")
    name = d["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be kebab-case like 'build-wheel', got {name!r}")
    colors = d.get("colors") or {}
    if not isinstance(colors, dict):
        raise ConfigError(f"{where}.colors: expected a mapping of variable -> list of colour names")
    for var, options in colors.items():
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{where}.colors.{var}: expected a non-empty list of colour names")
        for c in options:
            _check_color(c, f"{where}.colors.{var}")
    groups = tuple(_group(g, f"{where}.objects[{i}]", colors) for i, g in enumerate(_list(d["objects"], f"{where}.objects")))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.objects: group names must be unique, got {names}")
    goals = tuple(_goal(g, f"{where}.goals[{i}]", names) for i, g in enumerate(_list(d["goals"], f"{where}.goals")))
    _check_max_steps(d["max_steps"], f"{where}.max_steps", names)
    region = d.get("region") or {"x": [0.32, 0.68], "y": [-0.32, 0.32]}
    for axis in ("x", "y"):
        r = region.get(axis) if isinstance(region, dict) else None
        if not (isinstance(r, list) and len(r) == 2 and r[0] < r[1]):
            raise ConfigError(f"{where}.region.{axis}: expected [min, max] metres with min < max")
    aliases = tuple(str(a) for a in (d.get("aliases") or ()))
    spec = TaskSpec(name, aliases, str(d["language"]), d["max_steps"], groups, goals, colors, region,
                    dict(d.get("source") or {}), str(d.get("description", "")), path)
    _check_templates(spec, where)
    return spec


def _list(v, where: str) -> list:
    if not isinstance(v, list) or not v:
        raise ConfigError(f"{where}: expected a non-empty list")
    return v


def _check_color(c, where: str) -> None:
    if c not in COLORS:
        raise ConfigError(f"{where}: colour {c!r} is not in the simulator's colour table; use one of {sorted(COLORS)}")


def _group(g, where: str, colors: dict) -> ObjectGroup:
    if not isinstance(g, dict):
        raise ConfigError(f"{where}: expected a mapping")
    allowed = {"name", "kind", "color", "count", "size", "fixed", "position", "yaw_deg", "clear_radius"}
    unknown = sorted(set(g) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("name", "kind", "color"):
        if key not in g:
            raise ConfigError(f"{where}: missing required key {key!r}")
    if g["kind"] not in KINDS:
        raise ConfigError(f"{where}.kind: {g['kind']!r} is unknown; use one of {KINDS}")
    color = g["color"]
    for c in (color if isinstance(color, list) else [color]):
        if isinstance(c, str) and c.startswith("$"):
            if c != "$others" and c[1:] not in colors:
                raise ConfigError(f"{where}.color: variable {c} is not defined under 'colors:' (defined: {sorted(colors)})")
        else:
            _check_color(c, f"{where}.color")
    size = tuple(float(v) for v in g.get("size", DEFAULT_SIZE[g["kind"]]))
    if len(size) != 3 or min(size) <= 0:
        raise ConfigError(f"{where}.size: expected 3 positive numbers (x, y, z metres), got {g.get('size')}")
    pos = g.get("position")
    if pos is not None and (not isinstance(pos, list) or len(pos) != 2):
        raise ConfigError(f"{where}.position: expected [x, y] metres")
    count = g.get("count", 1)
    if not (isinstance(count, int) and count >= 1) and not (isinstance(count, list) and len(count) == 2 and 1 <= count[0] <= count[1]) \
            and not (isinstance(count, str) and count.startswith("<=")):
        raise ConfigError(f"{where}.count: expected n >= 1, [lo, hi] or '<=group', got {count!r}")
    return ObjectGroup(str(g["name"]), g["kind"], color, count, size, bool(g.get("fixed", False)),
                       tuple(pos) if pos else None, g.get("yaw_deg"), g.get("clear_radius"))


def _goal(g, where: str, names: list) -> GoalSpec:
    if not isinstance(g, dict):
        raise ConfigError(f"{where}: expected a mapping")
    allowed = {"objects", "targets", "matches", "metric", "pos_eps", "rot_eps_deg", "z_eps", "symmetry_deg",
               "max_reward", "language", "rotations"}
    unknown = sorted(set(g) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    objs = g.get("objects")
    objs = tuple(objs if isinstance(objs, list) else [objs])
    for o in objs:
        if o not in names:
            raise ConfigError(f"{where}.objects: {o!r} is not an object group (groups: {names})")
    t = g.get("targets")
    if not isinstance(t, dict) or t.get("at") not in names:
        raise ConfigError(f"{where}.targets: needs 'at: <object group>' (groups: {names})")
    t_unknown = sorted(set(t) - {"at", "offsets", "ring", "yaw_deg", "stack"})
    if t_unknown:
        raise ConfigError(f"{where}.targets: unknown key(s) {t_unknown}")
    offsets = tuple(tuple(float(x) for x in o) for o in t.get("offsets", [[0, 0, 0]]))
    if any(len(o) != 3 for o in offsets):
        raise ConfigError(f"{where}.targets.offsets: each offset is [dx, dy, dz] metres")
    ring = t.get("ring")
    if ring is not None and not (isinstance(ring, dict) and ring.get("radius", 0) > 0 and int(ring.get("count", 0)) > 0):
        raise ConfigError(f"{where}.targets.ring: expected {{radius: m > 0, count: n > 0}}")
    target = TargetSpec(t["at"], offsets, ring, float(t.get("yaw_deg", 0.0)), bool(t.get("stack", False)))
    if g.get("matches", "all") not in ("all", "pairwise"):
        raise ConfigError(f"{where}.matches: use 'all' or 'pairwise'")
    if g.get("metric", "pose") not in ("pose", "zone"):
        raise ConfigError(f"{where}.metric: use 'pose' or 'zone'")
    for key in ("pos_eps", "z_eps"):
        if g.get(key) is not None and not float(g[key]) > 0:
            raise ConfigError(f"{where}.{key}: must be > 0 metres")
    return GoalSpec(objs, target, g.get("matches", "all"), g.get("metric", "pose"), g.get("pos_eps"),
                    float(g.get("rot_eps_deg", 15.0)), g.get("z_eps"), g.get("symmetry_deg"), g.get("max_reward"),
                    g.get("language"), bool(g.get("rotations", True)))


def _check_max_steps(v, where: str, names: list) -> None:
    if isinstance(v, int) and v >= 1:
        return
    if isinstance(v, dict) and v.get("per_object") in names and isinstance(v.get("extra", 0), int):
        return
    raise ConfigError(f"{where}: expected a positive integer or {{per_object: <group>, extra: n}}, got {v!r}")


def _check_templates(spec: TaskSpec, where: str) -> None:
    fields = set(spec.colors)
    for text in [spec.language] + [g.language for g in spec.goals if g.language]:
        for f in re.findall(r"{(\w*)}", text):
            if f not in fields:
                raise ConfigError(f"{where}: language template field {{{f}}} is not a colour variable ({sorted(fields)})")


# -- registry ---------------------------------------------------------------------------------

def load_all(directory=None) -> dict[str, TaskSpec]:
    """All tasks in ``directory`` (default config/tasks), by canonical name."""
    directory = Path(directory) if directory else tasks_dir()
    tasks = {}
    for path in sorted(directory.glob("*.yaml")):
        spec = load_task(path)
        if spec.name in tasks:
            raise ConfigError(f"{path}: task name {spec.name!r} is also defined in {tasks[spec.name].path}")
        tasks[spec.name] = spec
    if not tasks:
        raise ConfigError(f"no task YAML found in {directory}")
    return tasks


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", " ", s.strip().lower())


def resolve(name: str, tasks: Optional[dict] = None) -> TaskSpec:
    """The task called ``name`` (canonical name or alias; case, spaces, '-' and '_' ignored).

    Raises:
        UnknownTaskError: listing the nearest names (difflib).
    """
    tasks = tasks if tasks is not None else load_all()
    key = _norm(name)
    for spec in tasks.values():
        if key == _norm(spec.name) or key in (_norm(a) for a in spec.aliases):
            return spec
    vocabulary = {}
    for spec in tasks.values():
        for n in (spec.name, *spec.aliases):
            vocabulary[_norm(n)] = spec.name
    near = []
    for n in difflib.get_close_matches(key, list(vocabulary), n=8, cutoff=0.4):
        if vocabulary[n] not in near:
            near.append(vocabulary[n])
    hint = f"nearest: {', '.join(near[:3])}" if near else "no close name"
    raise UnknownTaskError(f"unknown task {name!r} ({hint}); known tasks: {', '.join(sorted(tasks))}")


def resolve_many(name: str, tasks: Optional[dict] = None) -> list[TaskSpec]:
    """``all`` = the 9 real-world tasks (plus none else); a comma list; or one name."""
    tasks = tasks if tasks is not None else load_all()
    if _norm(name) == "all":
        missing = [t for t in REAL_WORLD_TASKS if t not in tasks]
        if missing:
            raise ConfigError(f"--task all needs the 9 real-world task files; missing {missing} in config/tasks")
        return [tasks[t] for t in REAL_WORLD_TASKS]
    return [resolve(n, tasks) for n in name.split(",") if n.strip()]


def symmetry_rad(goal: GoalSpec) -> float:
    """Yaw symmetry used by ``is_match``: the goal's ``symmetry_deg``, else 0 (GenSim's default:
    a goal added without symmetries never checks rotation)."""
    return float(np.radians(goal.symmetry_deg)) if goal.symmetry_deg is not None else 0.0
