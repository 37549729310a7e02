"""Every subcommand answers bad arguments with exit 2 and one line, never a traceback (issue 11.3).

A table of bad values per option, each tried with otherwise sensible arguments, through the
in-process ``sim2real.cli.main`` (argparse's own errors are SystemExit(2)). Any exception other
than a clean exit fails the test with its traceback.
"""
import numpy as np
import pytest

from sim2real.cli import main

BAD_NUMBERS = ["", "abc", "nan", "inf", "-1", "0", "1e308", "1,2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    text = d / "notes.txt"
    text.write_text("not a checkpoint\n" * 20)
    (d / "text.ckpt").write_text("e" * 200)  # a text file given as a checkpoint
    (d / "empty.npz").write_bytes(b"")
    np.savez(d / "wrong.npz", color=np.zeros((4, 4), np.uint8))
    np.savez(d / "frame.npz", color=np.zeros((48, 64, 3), np.uint8), depth=np.full((48, 64), 1.0, np.float32),
             K=np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]]), T_base_camera=np.eye(4))
    np.savez(d / "obs.npz", color=np.zeros((320, 160, 3), np.uint8), height=np.zeros((320, 160), np.float32))
    (d / "a_dir").mkdir()
    (d / "bad.yaml").write_text("{ not: [yaml")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    return d


def _cases(d):
    out = str(d / "out")
    hm = ["heightmap", "--frame", str(d / "frame.npz"), "--out", str(d / "hm.npz")]
    act = ["act", "--checkpoint", str(d / "missing.ckpt"), "--observation", str(d / "obs.npz"), "--goal", "g"]
    run = ["run", "--task", "stack-block", "--trials", "1", "--max-steps", "1", "--no-progress", "--out", out]
    files_bad = [str(d / n) for n in ("notes.txt", "empty.npz", "wrong.npz", "a_dir", "missing.npz", "bad.yaml",
                                      "list.yaml")]
    cases = []
    cases += [hm[:2] + [f] + hm[3:] for f in files_bad]
    cases += [hm + ["--pixel-size", v] for v in BAD_NUMBERS + ["1e-7", "10"]]
    cases += [hm + ["--bounds", v] for v in ["", "1,2", "a,b,c,d,e,f", "1,0,0,1,0,1", "nan,1,0,1,0,1", "0,1e308,0,1,0,1"]]
    cases += [act[:2] + [f] + act[3:] for f in files_bad]
    cases += [act[:4] + [f] + act[5:] for f in files_bad]
    cases += [act + ["--p0", v] for v in ["", "1", "a,b", "-1,5", "1000,1000", "1,2,3"]]
    cases += [act + ["--device", "tpu"], act + ["--rotation", "x"], act + ["--clip-precision", "x"]]
    cases += [run[:2] + [v] + run[3:] for v in ["", "nope", "all,nope", ","]]
    cases += [run + ["--trials", v] for v in BAD_NUMBERS]
    cases += [run + ["--max-steps", v] for v in ["0", "-1", "x"]]
    cases += [run + ["--seed", v] for v in ["x", "1.5"]]
    cases += [run + ["--robot", v] for v in ["", "twin", "foo", str(d / "bad.yaml") + "x"]]
    cases += [run + ["--campaign", f] for f in files_bad]
    cases += [run + ["--policy", f] for f in files_bad]
    cases += [run + ["--camera", v] for v in ["x", "playback"]]
    cases += [run + ["--robot-config", f] for f in files_bad]
    cases += [run + ["--calibration", f] for f in files_bad]
    cases += [run + ["--camera-config", f] for f in files_bad]
    cases += [["report", f, "--out", out] for f in files_bad]
    cases += [["replay", str(d), "--checkpoint", f] for f in files_bad]
    cases += [["replay", f, "--checkpoint", str(d / "missing.ckpt")] for f in files_bad]
    cases += [["replay", str(d), "--checkpoint", str(d / "missing.ckpt"), "--radius-px", v] for v in BAD_NUMBERS]
    cases += [["capture", "--playback", f, "--out", out] for f in files_bad]
    cases += [["capture", "--playback", str(d / "x.db3"), "--out", out, "--frames", v] for v in BAD_NUMBERS]
    cases += [["capture", "--playback", str(d / "x.db3"), "--out", out, "--filters", "nope"]]
    cases += [["calibrate", "board", "--out", str(d / "board"), "--dpi", v] for v in BAD_NUMBERS]
    cases += [["calibrate", "board", "--out", str(d / "board"), "--board", f] for f in files_bad]
    cases += [["calibrate", "board", "--out", str(d / "board"), "--paper", v] for v in ["", "B9", "A0x"]]
    cases += [["calibrate", "handeye", "--robot", "synthetic", "--out", str(d / "c.yaml"), "--poses", v]
              for v in BAD_NUMBERS]
    cases += [["calibrate", "handeye", "--robot", "synthetic", "--out", str(d / "c.yaml"), opt, v]
              for opt in ("--center", "--look-from", "--bracket") for v in ["", "1", "a,b,c", "nan,0,0"]]
    cases += [["calibrate", "handeye", "--robot", "synthetic", "--out", str(d / "c.yaml"), "--methods", v]
              for v in ["", "NOPE"]]
    cases += [["calibrate", "handeye", "--from-samples", f, "--out", str(d / "c.yaml")] for f in files_bad]
    cases += [["calibrate", step, "--robot", "synthetic", "--calibration", f] for step in ("table", "check")
              for f in files_bad]
    return cases


def _text_checkpoint_cases(d):
    return [["act", "--checkpoint", str(d / "text.ckpt"), "--observation", str(d / "obs.npz"), "--goal", "g"],
            ["run", "--task", "stack-block", "--trials", "1", "--out", str(d / "out_text"), "--policy",
             str(d / "text.ckpt")],
            ["replay", str(d), "--checkpoint", str(d / "text.ckpt")]]


def test_bad_arguments_exit_2_with_one_line_never_a_traceback(files, capsys):
    _check(_cases(files), capsys)


def test_a_text_file_given_as_a_checkpoint_exits_2(files, capsys):
    _check(_text_checkpoint_cases(files), capsys)


def _check(cases, capsys):
    failures = []
    for argv in cases:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: usage + one line, exit 2
            rc = e.code
        err = capsys.readouterr().err
        if rc not in (0, 2) or "Traceback" in err:
            failures.append((argv, rc, err[-300:]))
        elif rc == 2 and not err.strip():
            failures.append((argv, rc, "exit 2 without a message"))
    assert not failures, "\n".join(map(str, failures))


def test_a_tiny_pixel_size_is_refused_with_the_grid_size_not_a_memory_error(capsys):
    assert main(["heightmap", "--frame", "missing.npz", "--out", "/tmp/never.npz", "--pixel-size", "1e-7"]) == 2
    err = capsys.readouterr().err
    assert "makes a 1e+07 x 5e+06 heightmap" in err and "use at least" in err
