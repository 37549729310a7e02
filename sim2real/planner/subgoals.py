"""Sub-goal sentences: the task's language templates, filled with the objects present.

A task YAML's templates (``language`` and each goal's ``language``) are the sentences the
pick-and-place policy was trained on. Each names objects as ``{var} <kind>`` (a colour variable
followed by a kind, e.g. ``{pick} block``) or ``the <kind>`` (a unique object such as the
corner); the first object named is picked, the last one is where it goes. Candidates are every
filling of the variables with present objects of the right kind, filtered as SayCan does (no
missing object, no object onto itself), plus :data:`DONE`.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Optional

from sim2real.twin.objects import KINDS

DONE = "done"
"""The candidate that ends the episode."""

_MENTION = re.compile(r"(?:\{(\w+)\}\s+)?\b(" + "|".join(KINDS) + r")(s?)\b")


@dataclass(frozen=True)
class Mention:
    """An object named by a template: colour variable (None = any colour) and kind."""

    var: Optional[str]
    kind: str


@dataclass(frozen=True)
class Template:
    """A sub-goal template: its text and the objects it names (pick first, place last)."""

    text: str
    mentions: tuple

    @property
    def pick(self) -> Mention:
        return self.mentions[0]

    @property
    def place(self) -> Mention:
        return self.mentions[-1]


@dataclass(frozen=True)
class Subgoal:
    """A filled template: pick (colour, kind) -> place (colour or None, kind)."""

    sentence: str
    pick: tuple
    place: tuple
    template: str


def task_templates(spec) -> list:
    """The task's sub-goal templates naming two objects, in file order, without repeats."""
    out, seen = [], set()
    for text in [spec.language] + [g.language for g in spec.goals if g.language]:
        if text in seen:
            continue
        seen.add(text)
        mentions = tuple(Mention(m.group(1), m.group(2)) for m in _MENTION.finditer(text))
        if len(mentions) >= 2:
            out.append(Template(text, mentions))
    return out


def _fill(template: Template, binding: dict) -> str:
    return template.text.format(**binding)


def candidates(spec, objects) -> list:
    """Sub-goal sentences for ``objects`` (iterable of objects with ``kind`` and ``color``), then DONE.

    Variables take the colours of present objects of their kind; a mention without a variable
    needs one object of its kind present; a sentence whose pick and place are the same object
    (same colour and kind, with only one such object) is dropped.
    """
    objects = list(objects)
    counts: dict = {}
    for o in objects:
        counts[(o.color, o.kind)] = counts.get((o.color, o.kind), 0) + 1
    colors = {k: sorted({o.color for o in objects if o.kind == k}) for k in KINDS}
    out = []
    for t in task_templates(spec):
        if any(m.var is None and not colors[m.kind] for m in t.mentions):
            continue
        variables = {}
        for m in t.mentions:
            if m.var is not None:
                variables.setdefault(m.var, m.kind)
        names = list(variables)
        for values in itertools.product(*(colors[variables[v]] for v in names)):
            binding = dict(zip(names, values))
            sg = _subgoal(t, binding, objects)
            if sg is None or sg.pick == sg.place and counts.get(sg.pick, 0) < 2:
                continue
            if sg.sentence not in out:
                out.append(sg.sentence)
    return out + [DONE]


def _subgoal(t: Template, binding: dict, objects) -> Optional[Subgoal]:
    def resolve(m: Mention):
        if m.var is not None:
            return (binding[m.var], m.kind)
        colours = sorted({o.color for o in objects if o.kind == m.kind})
        return (colours[0], m.kind) if colours else None

    pick, place = resolve(t.pick), resolve(t.place)
    if pick is None or place is None:
        return None
    return Subgoal(_fill(t, binding), pick, place, t.text)


def parse(sentence: str, spec, objects) -> Optional[Subgoal]:
    """The sub-goal a sentence states, matched against the task's templates; None if none matches."""
    s = sentence.strip().rstrip(".").strip()
    for t in task_templates(spec):
        names = []
        pattern = ""
        for part in re.split(r"(\{\w+\})", t.text):
            if re.fullmatch(r"\{\w+\}", part):
                name = part[1:-1]
                pattern += f"(?P<{name}>[a-z]+)" if name not in names else f"(?P={name})"
                names.append(name)
            else:
                pattern += re.escape(part)
        m = re.fullmatch(pattern, s)
        if m:
            return _subgoal(t, m.groupdict(), objects)
    return None
