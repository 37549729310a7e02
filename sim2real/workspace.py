"""The workspace: a box in the robot base frame, and the heightmap grid laid over it.

GenSim's (and CLIPort's) policies were trained on a top-down orthographic heightmap of the box
x in [0.25, 0.75], y in [-0.5, 0.5], z in [0, 0.28] m with 3.125 mm pixels: 320 rows (y) by
160 columns (x). This module is the ONE place where those numbers are defined.

Pixel convention (ravens / CLIPort): a pixel is (u, v) = (row, col); row indexes y, column
indexes x. ``pix_to_xyz`` returns the cell's lower corner (not its centre) and ``xyz_to_pix``
rounds, while the heightmap projection floors; both are kept as in the reference code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim2real.errors import ConfigError

GENSIM_BOUNDS = ((0.25, 0.75), (-0.5, 0.5), (0.0, 0.28))
"""Workspace bounds in metres (rows x, y, z; columns min, max) of GenSim's dataset and agents."""

GENSIM_PIXEL_SIZE = 0.003125
"""Heightmap pixel size in metres of GenSim's dataset and agents."""

MAX_CELLS = 16_000_000
"""Largest heightmap grid (rows x cols) a Workspace accepts: 313x GenSim's 51,200 cells, ~0.3 GB of
colour + height + scratch arrays. A pixel size that asks for more is a typo (1e-7 m would need
~180 TiB), refused with a message instead of a MemoryError."""


@dataclass(frozen=True, eq=False)
class Workspace:
    """An axis-aligned box in the base frame plus the heightmap pixel size.

    Attributes:
        bounds: (3, 2) float64 array in metres; rows x, y, z; columns min, max. Read-only.
        pixel_size: edge of one heightmap cell in metres.
    """

    bounds: np.ndarray
    pixel_size: float
    _shape: tuple = field(init=False, repr=False)

    def __post_init__(self):
        bounds = np.array(self.bounds, dtype=np.float64)
        if bounds.shape != (3, 2):
            raise ConfigError(f"workspace bounds must be 3x2 (rows x,y,z; cols min,max), got shape {bounds.shape}")
        if not np.all(np.isfinite(bounds)):
            raise ConfigError(f"workspace bounds must be finite numbers, got {bounds.tolist()}")
        for axis, (lo, hi) in zip("xyz", bounds):
            if not lo < hi:
                raise ConfigError(f"workspace bound {axis}: min {lo} must be < max {hi}; swap or fix them")
        pixel_size = float(self.pixel_size)
        if not (np.isfinite(pixel_size) and pixel_size > 0):
            raise ConfigError(f"pixel size must be a positive number of metres, got {self.pixel_size}")
        bounds.setflags(write=False)
        with np.errstate(over="ignore"):
            cols = float(np.round((bounds[0, 1] - bounds[0, 0]) / pixel_size))
            rows = float(np.round((bounds[1, 1] - bounds[1, 0]) / pixel_size))
        if cols < 1 or rows < 1:
            raise ConfigError(f"pixel size {pixel_size} m is larger than the workspace; use a smaller one")
        if cols * rows > MAX_CELLS:
            with np.errstate(over="ignore"):
                area = float((bounds[0, 1] - bounds[0, 0]) * (bounds[1, 1] - bounds[1, 0]))
            smallest = f"use at least {np.sqrt(area / MAX_CELLS):.2g} m" if np.isfinite(area) else "use smaller bounds"
            raise ConfigError(f"pixel size {pixel_size} m makes a {rows:.3g} x {cols:.3g} heightmap (more than "
                              f"{MAX_CELLS:,} cells); {smallest} (GenSim's pixel is {GENSIM_PIXEL_SIZE} m)")
        height, width = int(rows), int(cols)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "pixel_size", pixel_size)
        object.__setattr__(self, "_shape", (height, width))

    @property
    def shape(self) -> tuple[int, int]:
        """Heightmap (rows, cols) = (round(dy / pixel), round(dx / pixel)); (320, 160) for GenSim."""
        return self._shape

    def pix_to_xyz(self, pixel, height: np.ndarray | None = None) -> tuple[float, float, float]:
        """Position in metres of heightmap pixel (row, col): the cell's lower corner.

        Args:
            pixel: (row, col) integers.
            height: (rows, cols) heightmap in metres above z-min, or None for z = z-min.
        """
        u, v = pixel
        x = self.bounds[0, 0] + v * self.pixel_size
        y = self.bounds[1, 0] + u * self.pixel_size
        z = self.bounds[2, 0] + (height[u, v] if height is not None else 0.0)
        return (float(x), float(y), float(z))

    def xyz_to_pix(self, position) -> tuple[int, int]:
        """Heightmap (row, col) of a position in metres, rounded to the nearest pixel."""
        u = int(np.round((position[1] - self.bounds[1, 0]) / self.pixel_size))
        v = int(np.round((position[0] - self.bounds[0, 0]) / self.pixel_size))
        return (u, v)

    def contains_xy(self, position, margin: float = 0.0) -> bool:
        """True when (x, y) lies inside the bounds shrunk by ``margin`` metres on each side."""
        x, y = float(position[0]), float(position[1])
        (x0, x1), (y0, y1) = self.bounds[0], self.bounds[1]
        return (x0 + margin <= x <= x1 - margin) and (y0 + margin <= y <= y1 - margin)

    def with_overrides(self, bounds=None, pixel_size=None) -> "Workspace":
        """A copy with new bounds and/or pixel size (validated)."""
        return Workspace(self.bounds if bounds is None else bounds,
                         self.pixel_size if pixel_size is None else pixel_size)

    def to_dict(self) -> dict:
        """YAML/JSON-ready form: {'bounds': [[x0,x1],[y0,y1],[z0,z1]], 'pixel_size': s}."""
        return {"bounds": self.bounds.tolist(), "pixel_size": self.pixel_size}

    @classmethod
    def from_dict(cls, d: dict) -> "Workspace":
        """Inverse of :meth:`to_dict`; raises ConfigError naming a missing key."""
        try:
            return cls(d["bounds"], d["pixel_size"])
        except KeyError as e:
            raise ConfigError(f"workspace needs key {e.args[0]!r} (bounds: 3x2 metres, pixel_size: metres)") from None

    def __eq__(self, other) -> bool:
        return (isinstance(other, Workspace) and np.array_equal(self.bounds, other.bounds)
                and self.pixel_size == other.pixel_size)

    def __hash__(self) -> int:
        return hash((tuple(self.bounds.ravel()), self.pixel_size))


GENSIM_WORKSPACE = Workspace(GENSIM_BOUNDS, GENSIM_PIXEL_SIZE)
"""The simulator's workspace: 320 x 160 cells of 3.125 mm over 1.0 m (y) x 0.5 m (x)."""
