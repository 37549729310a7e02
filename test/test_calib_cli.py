"""`sim2real calibrate` on the synthetic rig (no simulator): board printout, hand-eye, table, check, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from sim2real.calibration.storage import load_calibration
from sim2real.calibration.synthetic import gensim_front_camera_pose
from sim2real.cli import main


def test_board_command_writes_pdf_and_png(tmp_path, capsys):
    assert main(["calibrate", "board", "--out", str(tmp_path / "b"), "--dpi", "150"]) == 0
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert "Print the PDF at 100 %" in capsys.readouterr().out


def test_handeye_synthetic_then_table_and_check(tmp_path, capsys):
    out = tmp_path / "syn.yaml"
    assert main(["calibrate", "handeye", "--robot", "synthetic", "--out", str(out), "--no-progress",
                 "--poses", "14", "--center", "0.42,0,0.25"]) == 0
    cal = load_calibration(out)
    truth = gensim_front_camera_pose()
    assert np.linalg.norm(cal.T_base_camera[:3, 3] - truth[:3, 3]) < 0.002
    assert cal.mode == "eye_to_hand" and cal.board["squares_x"] == 6
    assert main(["calibrate", "table", "--robot", "synthetic", "--calibration", str(out), "--reach", "0.85"]) == 0
    text = capsys.readouterr().out
    assert "beyond its reach" in text and "table: height" in text
    cal = load_calibration(out)
    assert cal.T_base_workspace is not None and abs(cal.table.height) < 0.001
    assert main(["calibrate", "check", "--robot", "synthetic", "--calibration", str(out), "--touch", "3"]) == 0
    text = capsys.readouterr().out
    assert "touch test on 3 corners" in text
    assert float(text.split("error mean ")[1].split(" mm")[0]) < 2.0


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "table", "--robot", "sim", "--calibration", "NOPE.yaml"], "calibration file not found"),
    (["calibrate", "handeye", "--robot", "synthetic", "--poses", "2", "--center", "0.42,0,0.25"],
     "need at least 3"),
    (["calibrate", "handeye", "--robot", "synthetic", "--center", "0.4,0"], "--center must be 3"),
    (["calibrate", "handeye", "--from-samples", "missing.json"], "samples file not found"),
    (["calibrate", "board", "--paper", "A4"], "does not fit on A4"),
])
def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err


def test_corrupt_calibration_in_check_and_capture(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("T_base_camera: [[1, 0, 0]]\nintrinsics: {}\n")
    assert main(["calibrate", "check", "--robot", "synthetic", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "calibrate handeye" in err
    assert main(["capture", "--playback", "x.db3", "--calibration", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
