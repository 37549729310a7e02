"""Output paths are checked before any work (issue 11.2), unknown robots are named first (11.4),
and calibrating never overwrites a shipped file without --force (11.5)."""
import hashlib
import os
from pathlib import Path

import pytest

from sim2real.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def places(tmp_path):
    """A file, a directory and a path under the file."""
    f = tmp_path / "a_file"
    f.write_text("x")
    d = tmp_path / "a_dir"
    d.mkdir()
    return {"file": str(f), "dir": str(d), "under_file": str(f / "sub" / "x.npz")}


# (argv with {out}, which places are wrong for it). Inputs that do not exist prove the check comes
# before any work: the error must be about the output, not the missing input.
CASES = [
    (["heightmap", "--frame", "missing.npz", "--out", "{out}"], ("dir", "under_file")),
    (["heightmap", "--frame", "missing.npz", "--out", "{tmp}/ok.npz", "--png", "{out}"], ("dir", "under_file")),
    (["act", "--checkpoint", "missing.ckpt", "--observation", "missing.npz", "--goal", "g", "--png", "{out}"],
     ("dir", "under_file")),
    (["act", "--checkpoint", "missing.ckpt", "--observation", "missing.npz", "--goal", "g", "--save-maps", "{out}"],
     ("dir", "under_file")),
    (["run", "--task", "stack-block", "--out", "{out}"], ("file", "under_file")),
    (["capture", "--playback", "missing.db3", "--out", "{out}"], ("file", "under_file")),
    (["report", "missing_dir", "--out", "{out}"], ("file", "under_file")),
    (["replay", "missing_dir", "--checkpoint", "missing.ckpt", "--out", "{out}"], ("file", "under_file")),
    (["calibrate", "board", "--out", "{out}"], ("under_file",)),
    (["calibrate", "handeye", "--robot", "synthetic", "--out", "{out}"], ("dir", "under_file")),
    (["calibrate", "check", "--robot", "synthetic", "--calibration", "missing.yaml", "--png", "{out}"],
     ("dir", "under_file")),
    (["calibrate", "table", "--robot", "synthetic", "--calibration", "missing.yaml", "--png", "{out}"],
     ("dir", "under_file")),
]


@pytest.mark.parametrize("argv,wrong", CASES, ids=[" ".join(c[0][:2]) + " " + c[0][-2] for c in CASES])
def test_wrong_output_paths_exit_2_before_any_work(argv, wrong, places, tmp_path, capsys):
    for kind in wrong:
        out = places[kind]
        args = [a.replace("{out}", out).replace("{tmp}", str(tmp_path)) for a in argv]
        assert main(args) == 2, (kind, args)
        err = capsys.readouterr().err
        flag = argv[argv.index("{out}") - 1]
        assert f"{flag} {out.removesuffix('.npz')}" in err, (kind, err)
        assert "Traceback" not in err and "missing." not in err and "missing_dir" not in err, (kind, err)
        assert not list(tmp_path.rglob(".*.tmp-*")), kind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_unwritable_output_directory_exits_2(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["heightmap", "--frame", "missing.npz", "--out", str(ro / "hm.npz")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("robot", ["twin", "dryrun", "foo"])
def test_unknown_robot_is_named_before_anything_else(robot, tmp_path, capsys):
    assert main(["run", "--robot", robot, "--task", "stack-block", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"unknown robot '{robot}'; choose sim, dry-run, ur5, xarm6, xarm7 or a config path" in err


def test_robot_config_path_must_exist(tmp_path, capsys):
    assert main(["run", "--robot", str(tmp_path / "arm.yaml"), "--task", "stack-block", "--out", str(tmp_path / "x")]) == 2
    assert "no such robot config file" in capsys.readouterr().err


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_calibrating_writes_to_the_user_folder_and_never_over_a_shipped_file(tmp_path, monkeypatch, capsys):
    shipped = REPO / "calibration" / "twin_default.yaml"
    before = _sha(shipped)
    monkeypatch.chdir(tmp_path)
    # an explicit shipped target is refused before the robot moves
    assert main(["calibrate", "handeye", "--robot", "synthetic", "--out", str(shipped), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "shipped with sim2real" in err and "--force" in err
    # the default goes to runs/calibration/ under the working directory
    assert main(["calibrate", "handeye", "--robot", "synthetic", "--no-progress", "--poses", "8"]) == 0
    written = list((tmp_path / "runs" / "calibration").glob("*.yaml"))
    assert [p.name for p in written] == ["synthetic_realsense.yaml"]
    # `table` on a shipped calibration writes its result (and its image) to the user folder
    pytest.importorskip("pybullet")
    assert main(["calibrate", "table", "--robot", "sim", "--calibration", str(shipped)]) == 0
    assert (tmp_path / "runs" / "calibration" / "twin_default.yaml").is_file()
    assert (tmp_path / "runs" / "calibration" / "twin_default_table.png").is_file()
    assert _sha(shipped) == before
    assert not (REPO / "calibration" / "twin_default_table.png").exists()
    # the board's default stem is in the user folder too
    assert main(["calibrate", "board", "--dpi", "100"]) == 0
    assert (tmp_path / "runs" / "calibration" / "board.pdf").is_file()
