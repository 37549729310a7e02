"""``sim2real heightmap``: project captured RGB-D frames into the policy's heightmap."""
from __future__ import annotations

import warnings

import numpy as np

from sim2real.errors import InputError
from sim2real.frame_io import load_frame_npz, save_heightmap_npz
from sim2real.heightmap import EmptyHeightmapWarning, project_frames
from sim2real.workspace import GENSIM_WORKSPACE


def register(sub) -> None:
    p = sub.add_parser("heightmap", help="project FRAME.npz file(s) into a top-down heightmap",
                       description="Project one or more calibrated RGB-D frames (FRAME.npz: color, depth, K, "
                                   "T_base_camera) into the simulator's heightmap, fusing cameras as GenSim does.")
    p.add_argument("--frame", action="append", required=True, metavar="FRAME.npz",
                   help="an RGB-D frame; repeat for several cameras")
    p.add_argument("--out", required=True, metavar="HM.npz", help="output: color (rows,cols,3) uint8, height float32 m")
    p.add_argument("--png", metavar="HM.png", help="also save color | height side by side with a colour bar in metres")
    p.add_argument("--bounds", metavar="x0,x1,y0,y1,z0,z1", help="workspace bounds in metres (default GenSim's)")
    p.add_argument("--pixel-size", type=float, metavar="S", help="heightmap pixel size in metres (default GenSim's)")
    p.set_defaults(func=run)


def parse_bounds(text: str) -> np.ndarray:
    """'x0,x1,y0,y1,z0,z1' -> (3, 2) array; InputError on anything else."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--bounds must be six numbers x0,x1,y0,y1,z0,z1 in metres, got {text!r}") from None
    if len(values) != 6:
        raise InputError(f"--bounds must be six numbers x0,x1,y0,y1,z0,z1 in metres, got {len(values)}")
    return np.array(values).reshape(3, 2)


def run(args) -> int:
    from sim2real.cli.paths import output_file

    output_file(args.out, "--out")
    output_file(args.png, "--png")
    workspace = GENSIM_WORKSPACE.with_overrides(
        bounds=parse_bounds(args.bounds) if args.bounds else None, pixel_size=args.pixel_size)
    frames = []
    for path in args.frame:
        color, depth, K, T, extras = load_frame_npz(path)
        try:
            frames.append(_checked_frame(color, depth, K, T))
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptyHeightmapWarning)
        obs = project_frames(frames, workspace)
    for w in caught:
        print(f"sim2real heightmap: warning: {w.message}")
    save_heightmap_npz(args.out, obs)
    filled = int(np.count_nonzero(obs.color.any(axis=-1) | (obs.height != 0)))
    rows, cols = workspace.shape
    print(f"wrote {args.out}: {rows}x{cols} cells, {filled} filled ({100.0 * filled / (rows * cols):.1f}%), "
          f"max height {float(obs.height.max()):.4f} m")
    if args.png:
        from sim2real.viz import save_heightmap_png

        save_heightmap_png(obs, args.png)
        print(f"wrote {args.png}")
    return 0


def _checked_frame(color, depth, K, T):
    """Validate one frame's arrays now, so the error can name the file."""
    from sim2real.camera import validate_K, validate_color, validate_depth
    from sim2real.transforms import validate_rigid_matrix

    color = validate_color(color)
    validate_depth(depth, shape=color.shape[:2])
    validate_K(K)
    validate_rigid_matrix(T, "T_base_camera")
    return (color, depth, K, T)
