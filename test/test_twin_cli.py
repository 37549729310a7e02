"""`sim2real run` end to end on the twin."""
import json

import pytest

pytest.importorskip("pybullet")

from sim2real.cli import main  # noqa: E402


def test_unknown_task_exits_2_with_nearest_names(tmp_path, capsys):
    assert main(["run", "--task", "stak blok", "--robot", "sim", "--policy", "oracle", "--trials", "1",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown task" in err and "stack-block" in err


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["run", "--task", "stack block", "--policy", str(tmp_path / "nope.pt"), "--trials", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_run_writes_one_record_per_trial_and_a_report(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--task", "stack block,align block zone", "--robot", "sim", "--policy", "oracle",
                 "--trials", "2", "--out", str(out), "--seed", "3", "--no-progress"]) == 0
    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    for rec in lines:
        for key in ("task", "trial", "seed", "success", "steps", "reason", "policy"):
            assert key in rec
        assert rec["success"] is True and rec["policy"] == "oracle" and rec["reason"] == "success"
    assert sorted((r["task"], r["trial"], r["seed"]) for r in lines) == [
        ("align-block-zone", 0, 3), ("align-block-zone", 1, 4), ("stack-block", 0, 3), ("stack-block", 1, 4)]
    assert "stack-block" in (out / "report.md").read_text()


class _FakeCheckpointPolicy:
    """Stands in for sim2real.policy.Policy: picks the highest cell, places at a fixed spot."""

    name = "fake-ckpt"
    checkpoint_sha256 = "ab" * 32
    loaded = []

    @classmethod
    def from_checkpoint(cls, path, device="cpu", **kw):
        cls.loaded.append((str(path), device))
        return cls()

    def act(self, obs, goal, **kw):
        import numpy as np

        from sim2real.action import PickPlaceAction, PixelPose

        logits = obs.height.astype(np.float32)
        pick = np.unravel_index(int(np.argmax(logits)), logits.shape)
        place = obs.workspace.xyz_to_pix((0.5, 0.0, 0.0))
        return PickPlaceAction(PixelPose.from_pixel(pick, 0.0, obs.height, obs.workspace),
                               PixelPose.from_pixel(place, 0.0, obs.height, obs.workspace), pick_logits=logits)


def test_checkpoint_policy_is_loaded_lazily_and_runs_the_same_loop(tmp_path, monkeypatch):
    import sim2real.policy as policy_pkg

    monkeypatch.setattr(policy_pkg, "Policy", _FakeCheckpointPolicy, raising=False)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    out = tmp_path / "run"
    assert main(["run", "--task", "stack-block", "--policy", str(ckpt), "--trials", "1", "--out", str(out),
                 "--max-steps", "2", "--no-progress"]) == 0
    assert _FakeCheckpointPolicy.loaded == [(str(ckpt), "cpu")]
    (rec,) = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert rec["policy"] == "fake-ckpt" and rec["steps"] >= 1 and isinstance(rec["success"], bool)
    assert rec["provenance"]["checkpoint"]["sha256"] == "ab" * 32


def test_two_runs_of_the_same_seed_give_the_same_records(tmp_path):
    """Each run builds a fresh simulator: the trial must depend on its seed only."""
    keep = ("task", "trial", "seed", "success", "steps", "reason", "reward")
    records = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", "--task", "block-in-bowl-in-zone", "--trials", "1", "--seed", "5", "--out", str(out),
                     "--no-progress"]) == 0
        (rec,) = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
        records.append(({k: rec[k] for k in keep}, rec["info"]["objects"]))
    assert records[0] == records[1]
