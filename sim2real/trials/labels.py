"""Trial labels: the outcome and the fixed list of failure categories.

The categories are the issue's fixed list; they are stored as snake_case ids and shown with
spaces. Operators may type either form (``"wrong object"`` or ``"wrong_object"``) or the number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sim2real.errors import InputError

OUTCOMES = ("success", "failure", "partial")
"""Trial outcomes. Only ``success`` counts as a success in the report; ``partial`` = some progress."""

FAILURE_CATEGORIES = ("perception", "wrong_object", "grasp", "place", "planning", "safety_stop", "other")
"""Why a trial failed (or only partly succeeded); the fixed list of the evaluation protocol."""

REASON_TO_CATEGORY = {
    "safety_stop": "safety_stop",
    "planning_failed": "planning",
    "ik_failed": "planning",
    "camera_lost": "perception",
    "empty_heightmap": "perception",
    "grasp_failed": "grasp",
    "place_failed": "place",
    "wrong_object": "wrong_object",
}
"""Episode end reasons (``EpisodeResult.reason``) with an obvious failure category; others -> 'other'."""


def category_title(category: Optional[str]) -> str:
    """Human form of a category id: ``wrong_object`` -> ``wrong object``; None -> ``-``."""
    return "-" if category is None else category.replace("_", " ")


def normalise_category(value) -> Optional[str]:
    """Map user input (id, spaced name, or 1-based number) to a category id; None stays None.

    Raises:
        InputError: the value names no category; the message lists the allowed ones.
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    text = str(value).strip().lower()
    if text.isdigit() and 1 <= int(text) <= len(FAILURE_CATEGORIES):
        return FAILURE_CATEGORIES[int(text) - 1]
    key = text.replace(" ", "_").replace("-", "_")
    if key in FAILURE_CATEGORIES:
        return key
    allowed = ", ".join(f"{i + 1}={category_title(c)}" for i, c in enumerate(FAILURE_CATEGORIES))
    raise InputError(f"unknown failure category {value!r}; use one of {allowed}")


def normalise_outcome(value) -> str:
    """Map user input (``s``/``f``/``p`` or the full word) to an outcome.

    Raises:
        InputError: not one of success / failure / partial.
    """
    text = str(value).strip().lower()
    for outcome in OUTCOMES:
        if text in (outcome, outcome[0]):
            return outcome
    raise InputError(f"unknown outcome {value!r}; use success (s), failure (f) or partial (p)")


@dataclass(frozen=True)
class Label:
    """The label of one trial.

    Attributes:
        outcome: one of OUTCOMES.
        category: failure category id (FAILURE_CATEGORIES) for failure / partial, None for success.
        note: free text from the operator (may be empty).
        by: who labelled: an operator's name, or ``"auto"`` for the twin's success check.
    """

    outcome: str
    category: Optional[str] = None
    note: str = ""
    by: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "outcome", normalise_outcome(self.outcome))
        object.__setattr__(self, "category", normalise_category(self.category))
        if self.outcome == "success" and self.category is not None:
            raise InputError(f"a successful trial has no failure category (got {self.category!r}); "
                             "label it failure or partial, or drop the category")
        if not isinstance(self.note, str):
            raise InputError(f"label note must be text, got {type(self.note).__name__}")

    @property
    def success(self) -> bool:
        """True when the outcome is ``success``."""
        return self.outcome == "success"

    def to_dict(self) -> dict:
        """JSON form: {outcome, category, note, by}."""
        return {"outcome": self.outcome, "category": self.category, "note": self.note, "by": self.by}

    @classmethod
    def from_dict(cls, d: dict) -> "Label":
        """Inverse of :meth:`to_dict`; raises InputError on a bad outcome / category."""
        if not isinstance(d, dict) or "outcome" not in d:
            raise InputError(f"label must be a mapping with an 'outcome', got {d!r}")
        return cls(d["outcome"], d.get("category"), d.get("note", "") or "", d.get("by", "auto") or "auto")
