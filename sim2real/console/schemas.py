"""Request bodies of the console's API (Pydantic models: validated before any handler runs)."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class Click(BaseModel):
    x: float
    y: float
    width: float = Field(gt=0)
    height: float = Field(gt=0)
    seq: int


class Rotate(BaseModel):
    delta: Optional[int] = None
    bin: Optional[int] = Field(default=None, ge=0, lt=36)
    drag_to: Optional[Click] = None


class Goal(BaseModel):
    goal: str = Field(min_length=1, max_length=500)


class Client(BaseModel):
    client: str = Field(min_length=8, max_length=128)


class Answer(BaseModel):
    key: str = Field(min_length=1, max_length=200)
    reset: bool = False
    outcome: Optional[str] = None
    category: Optional[str] = None
    note: str = Field(default="", max_length=2000)


class Scene(BaseModel):
    seed: Optional[int] = None


class Latency(BaseModel):
    seq: int
    t_display: float
