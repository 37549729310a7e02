"""``sim2real act``: run a GenSim / CLIPort checkpoint on one heightmap and print the action as JSON."""
from __future__ import annotations

import json

import numpy as np

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
    p.add_argument("--batchnorm", choices=("batch", "running"), default="batch",
                   help="batch: the reference evaluation's batch statistics (default, published setup); "
                        "running: eval mode")
    p.add_argument("--p0", metavar="ROW,COL", help="condition the transport on this pick pixel instead of the argmax")
    p.add_argument("--save-maps", metavar="OUT.npz",
                   help="write pick_logits (320,160) and place_logits (36,320,160) float32, before softmax")
    p.add_argument("--png", metavar="OUT.png", help="heightmap with pick and place affordances overlaid")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--clip-precision", choices=("auto", "float16", "float16-emulated", "float32"), default="auto",
                   help="CLIP visual trunk arithmetic; auto = float16, the reference's (exact); float16-emulated is "
                        "~3.9x faster on CPU but only approximately equal")
    p.add_argument("--rotation", choices=("kornia-0.4", "kornia-0.5+"),
                   help="rotation numerics (default: the family's reference, see docs/policy.md)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need pickle code execution (only for files you trust)")
    p.set_defaults(func=run)


def parse_pixel(text: str) -> tuple[int, int]:
    """'ROW,COL' -> (row, col); InputError otherwise."""
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--p0 must be ROW,COL integers, got {text!r}") from None
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
    from sim2real.policy import Policy

    output_file(args.save_maps, "--save-maps")
    output_file(args.png, "--png")
    p0 = parse_pixel(args.p0) if args.p0 else None
    img = load_observation(args.observation)
    policy = Policy.from_checkpoint(args.checkpoint, device=args.device, batchnorm=args.batchnorm,
                                    clip_precision=args.clip_precision, rotation=args.rotation,
                                    trust=args.trust_checkpoint)
    action = policy.act(img, args.goal, p0=p0)
    if args.save_maps:
        from sim2real.frame_io import _atomic_savez
        _atomic_savez(args.save_maps, pick_logits=action.pick_logits.astype(np.float32),
                      place_logits=action.place_logits.astype(np.float32))
    if args.png:
        from sim2real.policy.affordance_png import save_affordance_png
        save_affordance_png(args.png, img, action, title=args.goal)
    print(json.dumps(action.to_dict()))
    return 0
