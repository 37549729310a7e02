"""Scene -> text: the objects on the table (colour, kind, position) and their relations.

Two sources give the same :class:`SceneObject` list:

* :func:`scene_from_truth`: the twin's ground truth (a TaskInstance's objects and poses);
* :func:`scene_from_heightmap`: a heightmap observation alone, as on the real robot: every cell is
  classified to the nearest of the simulator's named colours (``sim2real.twin.objects.COLORS``,
  the one colour table) or to the table, cells of one colour are grouped into connected
  components, and a component's footprint and height give its kind (raised and wider than 8 cm:
  bowl; raised: block; flat: zone, or corner when black). A block hidden under another is not
  seen from above; relations are inferred from the positions (:func:`relations`).

:func:`describe` writes TWOSOME-style sentences ("On the table you see ...", "The red block is on
the blue block.") and :func:`prompt` adds the instruction and the lead-in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.twin.objects import COLORS, DEFAULT_SIZE, MARKINGS, TRAIN_COLORS
from sim2real.twin.scene import TABLE_RGBA

LEAD_IN = "Your next step is to"
"""TWOSOME's lead-in: the candidate sentence continues it."""

SCENE_COLORS = TRAIN_COLORS + ("black", "white")
"""Colours the heightmap classifier can name: the tasks' sampled colours and the markings'."""

RAISED_M = 0.008
"""A heightmap cell higher than this (m) belongs to a solid object; lower is the table or a marking."""

MIN_CELLS = 25
"""Connected components smaller than this many cells are noise."""


@dataclass(frozen=True)
class SceneObject:
    """One object: kind, colour name, position (3,) metres (centre; base for bowls and markings), yaw (rad)."""

    kind: str
    color: str
    xyz: tuple
    yaw: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class Relation:
    """``objects[subject]`` is ``relation`` ('on' | 'in') ``objects[obj]``."""

    subject: int
    relation: str
    obj: int


def scene_from_truth(instance) -> list:
    """The objects of a TaskInstance (twin or symbolic) from its ground-truth poses."""
    from sim2real.twin.taskenv import yaw_of

    out = []
    for o in instance.scene.objects:
        pos, quat = instance.scene.pose(o.body)
        out.append(SceneObject(o.spec.kind, o.spec.color, tuple(float(v) for v in pos), yaw_of(quat)))
    return out


def relations(objects: list) -> list:
    """Relations from positions: on a solid object (centred within 2.5 cm, higher), in a bowl
    (within its radius), in a zone (inside its square footprint), in the corner (within 3 cm of
    the corner's block slot)."""
    out = []
    for i, a in enumerate(objects):
        if a.kind in MARKINGS:
            continue
        best = None
        for j, b in enumerate(objects):
            if i == j:
                continue
            d = np.asarray(a.xyz[:2]) - np.asarray(b.xyz[:2])
            if b.kind in ("block", "sphere", "cylinder") and np.linalg.norm(d) < 0.025 and a.xyz[2] > b.xyz[2] + 0.02:
                if best is None or objects[best[1]].kind in MARKINGS or b.xyz[2] > objects[best[1]].xyz[2]:
                    best = ("on", j)
            elif b.kind == "bowl" and a.kind != "bowl" and np.linalg.norm(d) < DEFAULT_SIZE["bowl"][0] / 2:
                best = best or ("in", j)
            elif b.kind == "zone" and _in_square(d, b.yaw, DEFAULT_SIZE["zone"][0] / 2):
                if best is None:
                    best = ("in", j)
            elif b.kind == "corner":
                c, s = np.cos(b.yaw), np.sin(b.yaw)
                slot = np.array([c * 0.026 - s * 0.026, s * 0.026 + c * 0.026])
                if np.linalg.norm(d - slot) < 0.03 and best is None:
                    best = ("in", j)
        if best is not None:
            out.append(Relation(i, best[0], best[1]))
    return out


def _in_square(d, yaw: float, half: float) -> bool:
    c, s = np.cos(-yaw), np.sin(-yaw)
    x, y = c * d[0] - s * d[1], s * d[0] + c * d[1]
    return abs(x) < half and abs(y) < half


def describe(objects: list) -> str:
    """TWOSOME-style scene sentences (second person, present tense)."""
    if not objects:
        return "The table is empty."
    names = [("an " if o.color[0] in "aeiou" else "a ") + o.name for o in objects]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    sentences = [f"On the table you see {listed}."]
    for r in relations(objects):
        a, b = objects[r.subject], objects[r.obj]
        where = "in the corner" if b.kind == "corner" else f"{r.relation} the {b.name}"
        sentences.append(f"The {a.name} is {where}.")
    return " ".join(sentences)


def prompt(objects: list, instruction: str) -> str:
    """Scene sentences + the instruction + the lead-in (TWOSOME's prompt shape)."""
    task = instruction.strip().rstrip(".")
    return f"{describe(objects)} Your task is to {task}. {LEAD_IN}"


# -- from a heightmap ----------------------------------------------------------------------------

def _palette():
    names = ["table"] + list(SCENE_COLORS)
    rgb = [np.array(TABLE_RGBA[:3]) * 255] + [np.array(COLORS[c], dtype=np.float64) for c in SCENE_COLORS]
    return names, np.stack(rgb)


def classify_colors(color: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) uint8 -> (rows, cols) index into ``['table', *SCENE_COLORS]`` (nearest in
    RGB after scaling each pixel and each reference to unit brightness, so shading matters less)."""
    _, ref = _palette()
    c = color.astype(np.float64).reshape(-1, 3)
    # brightness-normalised distance plus a small absolute term (separates black, gray and white)
    cn = c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-6)
    rn = ref / (np.linalg.norm(ref, axis=1, keepdims=True) + 1e-6)
    d = np.linalg.norm(cn[:, None, :] - rn[None], axis=2) + 0.002 * np.linalg.norm(c[:, None, :] - ref[None], axis=2)
    return d.argmin(axis=1).reshape(color.shape[:2])


def scene_from_heightmap(obs) -> list:
    """Objects seen in a HeightmapObservation (colour segmentation + heights); see the module doc."""
    from scipy import ndimage

    names, _ = _palette()
    ws = obs.workspace
    labels = classify_colors(obs.color)
    empty = np.all(obs.color == 0, axis=-1) & (obs.height <= 0)  # cells no point fell into
    labels[empty] = 0
    raised = obs.height > RAISED_M
    out = []
    for k, name in enumerate(names):
        if name == "table":
            continue
        for is_raised in (True, False):
            mask = (labels == k) & (raised if is_raised else ~raised)
            comp, n = ndimage.label(mask)
            for idx in range(1, n + 1):
                cells = np.argwhere(comp == idx)
                if len(cells) < MIN_CELLS:
                    continue
                out.append(_object(name, cells, obs.height, ws, is_raised))
    out = [o for o in out if o is not None]
    solids = [o for o in out if o.kind not in MARKINGS]
    # a flat patch of a solid's colour next to it is that solid's low part (a bowl's floor), not a zone
    return [o for o in out if o.kind not in MARKINGS or not any(
        s.color == o.color and np.linalg.norm(np.subtract(s.xyz[:2], o.xyz[:2])) < DEFAULT_SIZE["bowl"][0] / 2
        for s in solids)]


def _object(color: str, cells: np.ndarray, height: np.ndarray, ws, is_raised: bool):
    rows, cols = cells[:, 0], cells[:, 1]
    extent = (max(np.ptp(rows), np.ptp(cols)) + 1) * ws.pixel_size
    x, y, _ = ws.pix_to_xyz((int(round(rows.mean())), int(round(cols.mean()))))
    top = float(height[rows, cols].max())
    if is_raised:
        if extent > 0.08:
            return SceneObject("bowl", color, (x, y, 0.0))
        return SceneObject("block", color, (x, y, top - DEFAULT_SIZE["block"][2] / 2))
    if color == "black":  # the corner's vertex is the outer corner of its L; its slot is inward
        return SceneObject("corner", color, (x, y, 0.0))
    if extent > 0.06:
        return SceneObject("zone", color, (x, y, 0.0))
    return None


def match_scenes(detected: list, truth: list, radius: float = 0.03) -> dict:
    """Precision and recall of detected objects against ground truth: a detection is right when an
    unmatched true object of the same colour and kind lies within ``radius`` (x-y)."""
    used, tp = set(), 0
    for d in detected:
        best, best_d = None, radius
        for j, t in enumerate(truth):
            if j in used or (t.color, t.kind) != (d.color, d.kind):
                continue
            dist = float(np.linalg.norm(np.asarray(d.xyz[:2]) - np.asarray(t.xyz[:2])))
            if dist < best_d:
                best, best_d = j, dist
        if best is not None:
            used.add(best)
            tp += 1
    return {"true_positives": tp, "detected": len(detected), "truth": len(truth),
            "precision": tp / len(detected) if detected else 1.0, "recall": tp / len(truth) if truth else 1.0}
