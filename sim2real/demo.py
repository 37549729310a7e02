"""``make demo``: the main job on the digital twin, end to end, plus a heightmap PNG.

1. Projects a generated sample RGB-D frame through the same capture -> heightmap path a real
   camera uses and writes ``OUT/sample_heightmap.png``.
2. Runs a few oracle trials of a task on the PyBullet twin with ``sim2real run`` (camera ->
   heightmap -> policy -> safety -> motion -> success check -> trial log) and writes
   ``OUT/twin/report.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim2real import sample_scene
from sim2real.cli import main as cli_main
from sim2real.frame_io import save_frame_npz


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim2real.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output directory")
    parser.add_argument("--task", default="build wheel", help="twin task to run")
    parser.add_argument("--trials", type=int, default=3, help="twin trials")
    parser.add_argument("--heightmap-only", action="store_true", help="skip the twin trials")
    args = parser.parse_args(argv)
    out = Path(args.out)
    frame = out / "sample_frame.npz"
    save_frame_npz(frame, *sample_scene.render())
    rc = cli_main(["heightmap", "--frame", str(frame), "--out", str(out / "sample_heightmap.npz"),
                   "--png", str(out / "sample_heightmap.png")])
    if rc or args.heightmap_only:
        return rc
    return cli_main(["run", "--task", args.task, "--robot", "sim", "--policy", "oracle",
                     "--trials", str(args.trials), "--seed", "0", "--out", str(out / "twin")])


if __name__ == "__main__":
    sys.exit(main())
