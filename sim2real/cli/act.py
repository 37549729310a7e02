"""``sim2real act``: run a GenSim / CLIPort checkpoint on one heightmap and print the action as JSON."""
from __future__ import annotations

import json

import numpy as np

from sim2real.cli.policy_args import add_policy_args, load_checkpoint_policy, status
from sim2real.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("act", help="pick and place from a CLIPort/GenSim checkpoint on one heightmap",
                       description="Load a 'cliport' agent checkpoint (GenSim or CLIPort, detected automatically), "
                                   "run attention and transport on OBS.npz for the goal and print one JSON object "
                                   "with the pick and place poses.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="PyTorch Lightning .ckpt of the agent")
    p.add_argument("--observation", required=True, metavar="OBS.npz",
                   help="color (320,160,3) uint8 + height (320,160) float32 (as `sim2real heightmap` writes), "
                        "or image (320,160,6) float32: RGB 0-255 + height x3")
    p.add_argument("--goal", required=True, help='language goal, e.g. "put the red block in the green bowl"')
    p.add_argument("--p0", metavar="ROW,COL", help="condition the transport on this pick pixel instead of the argmax")
    p.add_argument("--save-maps", metavar="OUT.npz",
                   help="write pick_logits (320,160) and place_logits (36,320,160) float32, before softmax")
    p.add_argument("--png", metavar="OUT.png", help="heightmap with pick and place affordances overlaid")
    add_policy_args(p)
    p.set_defaults(func=run)


def parse_pixel(text: str) -> tuple[int, int]:
    """'ROW,COL' inside the policy's heightmap -> (row, col); InputError otherwise."""
    from sim2real.workspace import GENSIM_WORKSPACE

    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--p0 must be ROW,COL integers, got {text!r}") from None
    rows, cols = GENSIM_WORKSPACE.shape
    if not (0 <= r < rows and 0 <= c < cols):
        raise InputError(f"--p0 {text}: outside the {rows}x{cols} heightmap (row 0-{rows - 1}, col 0-{cols - 1})")
    return r, c


def load_observation(path):
    """OBS.npz -> (320,160,6) float32 policy image (either layout)."""
    from sim2real.frame_io import _open_npz, load_heightmap_npz
    from sim2real.heightmap import policy_input

    data = _open_npz(path)
    if "image" in data:
        img = np.asarray(data["image"])
        if img.shape != (320, 160, 6) or not np.issubdtype(img.dtype, np.floating):
            raise InputError(f"{path}: 'image' must be (320,160,6) float32 (RGB 0-255 + height x3), "
                             f"got {img.shape} {img.dtype}")
        return img.astype(np.float32)
    if "color" in data and "height" in data:
        return policy_input(load_heightmap_npz(path))
    raise InputError(f"{path}: needs 'color' + 'height' (a heightmap) or 'image' (320,160,6); found {sorted(data)}")


def run(args) -> int:
    from sim2real.cli.paths import output_file

    # every input and output is checked before the (~1 GB) checkpoint loads
    output_file(args.save_maps, "--save-maps")
    output_file(args.png, "--png")
    p0 = parse_pixel(args.p0) if args.p0 else None
    img = load_observation(args.observation)
    if not args.goal.strip():
        raise InputError("--goal is empty; give the language instruction, e.g. \"put the red block in the green bowl\"")
    policy = load_checkpoint_policy(args.checkpoint, args)
    with status("inference (attention + 36 transport rotations)"):
        action = policy.act(img, args.goal, p0=p0)
    if args.save_maps:
        from sim2real.frame_io import _atomic_savez
        _atomic_savez(args.save_maps, pick_logits=action.pick_logits.astype(np.float32),
                      place_logits=action.place_logits.astype(np.float32))
    if args.png:
        from sim2real.viz import save_affordance_png
        save_affordance_png(args.png, img, action, title=args.goal)
    print(json.dumps(action.to_dict()))
    return 0
