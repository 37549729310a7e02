"""Feedback on slow work (issue 11.6): inputs checked before the checkpoint loads, loading and
inference progress, Ctrl-C says what was saved and how to resume, campaigns extend, a dry run
without a terminal refuses to start, and act / run / replay share the policy options."""
import io
import json
import sys

import numpy as np
import pytest

from sim2real.cli import build_parser, main


@pytest.fixture
def obs(tmp_path):
    path = tmp_path / "obs.npz"
    np.savez(path, color=np.zeros((320, 160, 3), np.uint8), height=np.zeros((320, 160), np.float32))
    return path


def test_act_checks_p0_and_the_observation_before_loading_the_checkpoint(tmp_path, obs, capsys):
    missing = str(tmp_path / "missing.ckpt")
    assert main(["act", "--checkpoint", missing, "--observation", str(obs), "--goal", "g", "--p0", "400,10"]) == 2
    err = capsys.readouterr().err
    assert "--p0 400,10: outside the 320x160 heightmap" in err and "missing.ckpt" not in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, color=np.zeros((4, 4, 3), np.uint8))
    assert main(["act", "--checkpoint", missing, "--observation", str(bad), "--goal", "g"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "missing.ckpt" not in err


class _FakePolicy:
    seen = []

    @classmethod
    def from_checkpoint(cls, path, **kw):
        cls.seen.append(kw)
        return cls()

    def act(self, img, goal, p0=None):
        from sim2real.action import PickPlaceAction, PixelPose
        from sim2real.workspace import GENSIM_WORKSPACE

        pose = PixelPose.from_pixel((10, 20), 0.0, img[..., 3], GENSIM_WORKSPACE)
        return PickPlaceAction(pose, pose, pick_logits=np.zeros((320, 160), np.float32),
                               place_logits=np.zeros((36, 320, 160), np.float32))


def test_act_shows_loading_and_inference_on_stderr(tmp_path, obs, capsys, monkeypatch):
    import sim2real.policy as policy_pkg

    monkeypatch.setattr(policy_pkg, "Policy", _FakePolicy, raising=False)
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x" * 2_000_000)
    assert main(["act", "--checkpoint", str(ckpt), "--observation", str(obs), "--goal", "g",
                 "--batchnorm", "running", "--clip-precision", "float32", "--trust-checkpoint"]) == 0
    cap = capsys.readouterr()
    assert "loading m.ckpt (2 MB): done in" in cap.err and "inference" in cap.err
    assert json.loads(cap.out)["pick"]["pixel"] == [10, 20]
    assert _FakePolicy.seen[-1] == {"device": "cpu", "batchnorm": "running", "clip_precision": "float32",
                                    "rotation": None, "trust": True}


def test_act_run_and_replay_accept_the_same_policy_options():
    opts = ["--device", "cpu", "--batchnorm", "running", "--clip-precision", "float16-emulated",
            "--rotation", "kornia-0.4", "--trust-checkpoint"]
    parser = build_parser()
    parsed = [parser.parse_args(["act", "--checkpoint", "c", "--observation", "o", "--goal", "g"] + opts),
              parser.parse_args(["run", "--task", "stack-block", "--out", "x"] + opts),
              parser.parse_args(["replay", "d", "--checkpoint", "c"] + opts)]
    keys = ("device", "batchnorm", "clip_precision", "rotation", "trust_checkpoint")
    assert len({tuple(getattr(a, k) for k in keys) for a in parsed}) == 1


pybullet = pytest.importorskip("pybullet")


def test_a_dry_run_without_a_terminal_refuses_to_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    out = tmp_path / "dry"
    assert main(["run", "--task", "stack-block", "--robot", "dry-run", "--trials", "1", "--out", str(out)]) == 2
    assert "stdin is not a terminal" in capsys.readouterr().err
    assert not (out / "trials.jsonl").exists()


def _lines(out):
    return [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]


def test_a_campaign_extends_and_ctrl_c_says_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "camp"
    base = ["run", "--task", "stack-block", "--out", str(out), "--no-progress"]
    assert main(base + ["--trials", "1"]) == 0
    first = _lines(out)
    assert main(base + ["--trials", "2"]) == 0
    both = _lines(out)
    assert len(both) == 2 and both[0] == first[0] and both[1]["trial"] == 1
    # Ctrl-C during the third trial: what is saved and the exact resume command
    import sim2real.twin as twin_pkg

    def interrupt(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(twin_pkg.Twin, "run_trial", interrupt)
    capsys.readouterr()
    assert main(base + ["--trials", "3"]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"2 finished trial(s) are saved in {out}/trials.jsonl" in err
    assert f"sim2real run --task stack-block --out {out} --no-progress --trials 3" in err
    assert len(_lines(out)) == 2
