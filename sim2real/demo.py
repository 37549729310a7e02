"""``make demo``: the main job on the digital twin, end to end, plus a heightmap PNG.

1. Projects a generated sample RGB-D frame through the same capture -> heightmap path a real
   camera uses and writes ``OUT/sample_heightmap.png``.
2. Runs one oracle trial of each of GenSim's 9 real-world tasks on the PyBullet twin with
   ``sim2real run`` (camera -> heightmap -> policy -> safety -> motion -> success check -> trial
   log) and writes ``OUT/twin/trials.jsonl`` and ``OUT/twin/report.md``. The demo's own
   ``OUT/twin`` is started afresh each time (``sim2real run`` would otherwise resume it).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from sim2real import sample_scene
from sim2real.cli import main as cli_main
from sim2real.frame_io import save_frame_npz


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim2real.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output directory")
    parser.add_argument("--task", default="all", help="twin task to run ('all' = the 9 real-world tasks)")
    parser.add_argument("--trials", type=int, default=1, help="twin trials per task")
    parser.add_argument("--heightmap-only", action="store_true", help="skip the twin trials")
    args = parser.parse_args(argv)
    out = Path(args.out)
    frame = out / "sample_frame.npz"
    save_frame_npz(frame, *sample_scene.render())
    rc = cli_main(["heightmap", "--frame", str(frame), "--out", str(out / "sample_heightmap.npz"),
                   "--png", str(out / "sample_heightmap.png")])
    if rc or args.heightmap_only:
        return rc
    twin_out = out / "twin"
    if twin_out.exists():
        shutil.rmtree(twin_out)
    return cli_main(["run", "--task", args.task, "--robot", "sim", "--policy", "oracle",
                     "--trials", str(args.trials), "--seed", "0", "--out", str(twin_out)])


if __name__ == "__main__":
    sys.exit(main())
