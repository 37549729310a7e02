"""What the operator's clicks on the heightmap mean. Pure: no web framework, no hardware.

The page shows the heightmap as an image of ``workspace.shape`` = (rows, cols) cells (320 x 160
for GenSim), rows along y and columns along x (ravens convention), scaled to whatever size the
browser draws it. A click is sent as canvas coordinates plus the drawn size; this module turns it
into a heightmap pixel (row, col).

Click semantics (CLIPort's real-robot annotation tool: pick, then place, then a rotation):
the first click sets the pick, the second the place; a click once both are set starts a new pick.
The place rotation is one of 36 bins (``sim2real.action.N_ROTATIONS``): keys step it by one bin,
a drag from the place point sets it to the bin nearest the drag direction.

Rotation geometry: bin k means theta = k * 10 degrees and the tool's orientation quaternion is
Euler (0, 0, -theta) (``sim2real.action.quat_xyzw_from_theta``), so the tool x axis points at yaw
-theta in the base frame: (x, y) = (cos theta, -sin theta). On the heightmap image (columns = x,
rows = y) that is the direction (d_row, d_col) = (-sin theta, cos theta); :func:`rotation_marker`
and :func:`bin_from_drag` both use it, so what the operator drags is what the arm does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from sim2real.action import N_ROTATIONS, theta_from_bin
from sim2real.errors import InputError


def canvas_to_pixel(x: float, y: float, drawn_width: float, drawn_height: float, shape) -> tuple[int, int]:
    """Heightmap pixel (row, col) under canvas point (x, y).

    Args:
        x, y: click position in the drawn image, CSS pixels from its top-left corner.
        drawn_width, drawn_height: size the image is drawn at (CSS pixels).
        shape: heightmap (rows, cols).

    Raises:
        InputError: non-finite numbers, a non-positive drawn size, or a point outside the image.
    """
    rows, cols = int(shape[0]), int(shape[1])
    values = (x, y, drawn_width, drawn_height)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise InputError(f"click position and drawn size must be finite numbers, got {values}")
    if drawn_width <= 0 or drawn_height <= 0:
        raise InputError(f"drawn image size must be positive, got {drawn_width} x {drawn_height}")
    if not (0 <= x < drawn_width and 0 <= y < drawn_height):
        raise InputError(f"click ({x:.1f}, {y:.1f}) is outside the drawn heightmap "
                         f"({drawn_width:.0f} x {drawn_height:.0f}); click inside the image")
    row = min(rows - 1, int(math.floor(y * rows / drawn_height)))
    col = min(cols - 1, int(math.floor(x * cols / drawn_width)))
    return row, col


def wrap_bin(k: int, n: int = N_ROTATIONS) -> int:
    """Bin index modulo ``n`` (keys wrap around: 35 + 1 -> 0)."""
    return int(k) % n


def tool_direction(k: int, n: int = N_ROTATIONS) -> tuple[float, float]:
    """Unit (d_row, d_col) on the heightmap image of the tool x axis for rotation bin ``k``."""
    theta = theta_from_bin(wrap_bin(k, n), n)
    return (-math.sin(theta), math.cos(theta))


def bin_from_drag(d_row: float, d_col: float, n: int = N_ROTATIONS) -> int:
    """Rotation bin whose tool direction is nearest to the drag vector (d_row, d_col) in pixels.

    Raises:
        InputError: a zero or non-finite drag (no direction).
    """
    if not (math.isfinite(d_row) and math.isfinite(d_col)) or math.hypot(d_row, d_col) < 1e-9:
        raise InputError(f"a drag needs a direction, got ({d_row}, {d_col}); drag away from the place point")
    theta = math.atan2(-d_row, d_col)  # inverse of tool_direction
    return wrap_bin(int(round(theta / (2 * math.pi / n))), n)


def rotation_marker(place_pixel, k: int, length_px: float = 12.0, n: int = N_ROTATIONS) -> list:
    """[[row, col], [row, col]]: a segment from the place pixel along the tool x axis (for drawing)."""
    d_row, d_col = tool_direction(k, n)
    r, c = float(place_pixel[0]) + 0.5, float(place_pixel[1]) + 0.5
    return [[r, c], [r + length_px * d_row, c + length_px * d_col]]


@dataclass(frozen=True)
class ClickDraft:
    """The demonstration step being marked: pick pixel, place pixel, place rotation bin.

    Attributes:
        pick: (row, col) or None.
        place: (row, col) or None.
        rotation: place rotation bin in [0, 36).
        frame_seq: sequence number of the observation the clicks were made on.
    """

    pick: Optional[tuple] = None
    place: Optional[tuple] = None
    rotation: int = 0
    frame_seq: int = -1

    @property
    def expecting(self) -> str:
        """What the next click sets: 'pick' or 'place' ('pick' again once both are set)."""
        return "place" if self.pick is not None and self.place is None else "pick"

    @property
    def complete(self) -> bool:
        return self.pick is not None and self.place is not None

    def click(self, pixel, frame_seq: int) -> "ClickDraft":
        """The draft after a click on ``pixel`` made on observation ``frame_seq`` (see module doc).

        The live view refreshes while the operator clicks, so the place is usually clicked on a
        newer frame than the pick: the draft then moves to that newer frame (the pick pixel is
        kept and both heights are read from it), so pick and place always come from one observation.
        """
        pixel = (int(pixel[0]), int(pixel[1]))
        if self.expecting == "place":
            return replace(self, place=pixel, frame_seq=max(int(frame_seq), self.frame_seq))
        return ClickDraft(pick=pixel, place=None, rotation=self.rotation, frame_seq=int(frame_seq))

    def rotate(self, delta: int) -> "ClickDraft":
        """Rotation stepped by ``delta`` bins (wrapping)."""
        return replace(self, rotation=wrap_bin(self.rotation + int(delta)))

    def with_rotation(self, k: int) -> "ClickDraft":
        if not isinstance(k, int) or isinstance(k, bool):
            raise InputError(f"rotation bin must be an integer in [0, {N_ROTATIONS}), got {k!r}")
        return replace(self, rotation=wrap_bin(k))

    def to_dict(self) -> dict:
        return {"pick": list(self.pick) if self.pick else None, "place": list(self.place) if self.place else None,
                "rotation": self.rotation, "rotation_deg": self.rotation * 360 // N_ROTATIONS,
                "expecting": self.expecting, "complete": self.complete, "frame_seq": self.frame_seq}
