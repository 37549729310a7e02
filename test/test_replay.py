"""Offline replay of another checkpoint on recorded observations."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from sim2real.action import PickPlaceAction, PixelPose
from sim2real.heightmap import HeightmapObservation
from sim2real.trials.log import TrialLog, TrialLogError
from sim2real.trials.replay import DEFAULT_RADIUS_PX, replay_campaign, write_replay
from sim2real.workspace import GENSIM_WORKSPACE

WS = GENSIM_WORKSPACE
BLOCK = {"stack-block": (100, 60), "build-wheel": (200, 40)}   # where the object to pick is, per task
TARGET = {"stack-block": (250, 120), "build-wheel": (50, 100)}  # where it was placed


def scene(task):
    """Heightmap with one bright block (object id 7) and a place zone (id 9), and its segmentation."""
    color = np.zeros((320, 160, 3), np.uint8)
    height = np.zeros((320, 160), np.float32)
    seg = np.zeros((320, 160), np.int32)
    (r, c), (tr, tc) = BLOCK[task], TARGET[task]
    color[r - 4:r + 5, c - 4:c + 5] = 255
    height[r - 4:r + 5, c - 4:c + 5] = 0.04
    seg[r - 4:r + 5, c - 4:c + 5] = 7
    seg[tr - 5:tr + 6, tc - 5:tc + 6] = 9
    return HeightmapObservation(color, height, WS), seg


def executed_waypoints(action):
    """The twin's executed waypoint dicts (sim2real.motion segments) of an action."""
    def wp(segment, pose, dz=0.0):
        return {"segment": segment, "xyz": [float(pose.xyz[0]), float(pose.xyz[1]), float(pose.xyz[2] + dz)],
                "quat_xyzw": [float(v) for v in pose.quat_xyzw], "speed": 0.1, "linear": True, "tool": None}
    return [wp("approach", action.pick, 0.1), wp("descend", action.pick, -0.01), wp("grasp", action.pick, -0.01),
            wp("lift", action.pick, 0.1), wp("transit", action.place, 0.1), wp("place", action.place, 0.02),
            wp("release", action.place, 0.02), wp("retreat", action.place, 0.1)]


def recorded_campaign(out, with_seg=True):
    with TrialLog(out) as log:
        for task in BLOCK:
            for k in range(2):
                obs, seg = scene(task)
                action = PickPlaceAction(PixelPose.from_pixel(BLOCK[task], 0.0, obs.height, WS),
                                         PixelPose.from_pixel(TARGET[task], np.radians(90), obs.height, WS))
                with log.begin(task, k, k) as w:
                    w.add_step({"observation": obs, "goal": f"{task} goal", "action": action,
                                "executed": executed_waypoints(action),
                                "info": {"segmentation": seg} if with_seg else {}})
                    w.finish({"success": True, "steps": 1, "reason": "success", "policy": "recorded",
                              "label": {"outcome": "success"}})
    return out


class OffsetPolicy:
    """Finds the bright block and picks it with an offset; places at a fixed offset from the target."""

    name = "offset"
    checkpoint_sha256 = "c" * 64

    def __init__(self, pick_offset, place_offset, dtheta_deg=0.0):
        self.pick_offset, self.place_offset, self.dtheta = pick_offset, place_offset, np.radians(dtheta_deg)
        self.goals = []

    def act(self, obs, goal):
        self.goals.append(goal)
        task = goal.split()[0]
        r, c = np.argwhere(obs.color[..., 0] == 255).mean(axis=0).round().astype(int)
        pick = (r + self.pick_offset[0], c + self.pick_offset[1])
        place = (TARGET[task][0] + self.place_offset[0], TARGET[task][1] + self.place_offset[1])
        return PickPlaceAction(PixelPose.from_pixel(pick, 0.0, obs.height, WS),
                               PixelPose.from_pixel(place, np.radians(90) + self.dtheta, obs.height, WS))


def test_identical_policy_agrees_everywhere(tmp_path):
    res = replay_campaign(recorded_campaign(tmp_path / "c"), OffsetPolicy((0, 0), (0, 0)))
    assert len(res.steps) == 4
    assert all(s.pick_dist_px == 0 and s.place_dist_px == 0 and s.agree for s in res.steps)
    assert all(s.same_pick_object and s.same_place_object for s in res.steps)
    assert all(s.place_dtheta_deg == pytest.approx(0.0, abs=1e-6) for s in res.steps)
    assert res.per_task["all"]["agreement"] == 1.0


def test_offsets_give_exact_pixel_distances_same_object_and_agreement(tmp_path):
    camp = recorded_campaign(tmp_path / "c")
    policy = OffsetPolicy((3, 4), (6, 8), dtheta_deg=20)
    res = replay_campaign(camp, policy, radius_px=10)
    assert policy.goals == ["stack-block goal", "stack-block goal", "build-wheel goal", "build-wheel goal"]
    for s in res.steps:
        assert s.pick_dist_px == pytest.approx(5.0) and s.place_dist_px == pytest.approx(10.0)
        assert s.pick_dist_mm == pytest.approx(5 * 3.125) and s.place_dist_mm == pytest.approx(31.25)
        assert s.place_dtheta_deg == pytest.approx(20.0)
        assert s.same_pick_object is True      # (3, 4) from the centre is still on the 9x9 block
        assert s.same_place_object is False    # (6, 8) from the centre is off the 11x11 zone
        assert s.agree
    task = res.per_task["stack-block"]
    assert task["steps"] == 2 and task["pick_dist_px_mean"] == pytest.approx(5.0)
    assert task["same_pick_object_rate"] == 1.0 and task["same_place_object_rate"] == 0.0
    strict = replay_campaign(camp, policy, radius_px=8)
    assert strict.per_task["all"]["agreement"] == 0.0
    md = write_replay(res, tmp_path / "out", source=str(camp), checkpoint="other.ckpt", radius_px=10,
                      checkpoint_sha256=policy.checkpoint_sha256)
    text = md.read_text()
    assert "| stack-block | 2 | 5.0 / 5.0 | 10.0 / 10.0 | 100.0% | 100.0% | 0.0% |" in text
    assert "31.2 mm" in text or "31.3 mm" in text
    rows = list(csv.DictReader(open(tmp_path / "out/replay_steps.csv")))
    assert len(rows) == 4 and rows[0]["pick_dist_px"] == "5.0000" and rows[0]["same_place_object"] == "0"


def test_real_robot_steps_have_no_same_object_rate(tmp_path):
    res = replay_campaign(recorded_campaign(tmp_path / "c", with_seg=False), OffsetPolicy((0, 0), (0, 0)))
    assert all(s.same_pick_object is None for s in res.steps)
    assert res.per_task["all"]["same_pick_object_rate"] is None
    md = write_replay(res, tmp_path / "o", source="c", checkpoint="x", radius_px=10).read_text()
    assert "n/a" in md


def test_campaign_without_recorded_steps_is_an_error(tmp_path):
    with TrialLog(tmp_path) as log:
        with log.begin("a", 0, 0) as w:
            w.finish({"success": True, "steps": 0, "reason": "done", "policy": "p"})
    with pytest.raises(TrialLogError, match="no recorded step"):
        replay_campaign(tmp_path, OffsetPolicy((0, 0), (0, 0)))


def test_replay_cli(tmp_path, monkeypatch, capsys):
    from sim2real.cli import main
    from sim2real.cli import replay as replay_cli

    camp = recorded_campaign(tmp_path / "c")
    ckpt = tmp_path / "other.ckpt"
    assert main(["replay", str(camp), "--checkpoint", str(ckpt)]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    ckpt.write_bytes(b"x")
    monkeypatch.setattr(replay_cli, "load_policy", lambda path, args: OffsetPolicy((3, 4), (0, 0)))
    assert main(["replay", str(camp), "--checkpoint", str(ckpt), "--radius-px", "4"]) == 0
    out = capsys.readouterr().out
    assert "agreement 0.0%" in out and "pick Δ 5.0 px" in out
    assert (camp / "replay_other" / "replay.md").is_file()


@pytest.mark.slow
def test_replay_cli_with_a_real_checkpoint(tmp_path, capsys):
    """`sim2real replay` end to end with a generated GenSim checkpoint (the issue-3 Policy; ~1 min on CPU)."""
    import hashlib

    from ckpt_factory import make_checkpoint

    from sim2real.cli import main

    ckpt = make_checkpoint(tmp_path / "gen.ckpt", "gensim")
    camp = recorded_campaign(tmp_path / "c")
    assert main(["replay", str(camp), "--checkpoint", str(ckpt), "--limit", "1", "--out", str(tmp_path / "r")]) == 0
    assert "1 steps: agreement" in capsys.readouterr().out
    text = (tmp_path / "r/replay.md").read_text()
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() in text
    rows = list(csv.DictReader(open(tmp_path / "r/replay_steps.csv")))
    assert len(rows) == 1 and float(rows[0]["pick_dist_px"]) >= 0 and rows[0]["same_pick_object"] in ("0", "1")


def test_an_interrupted_replay_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    """Issue 11.6: the second run acts only on the steps the first did not finish; same result."""
    from sim2real.cli import main
    from sim2real.cli import replay as replay_cli

    camp = recorded_campaign(tmp_path / "c")
    ckpt = tmp_path / "other.ckpt"
    ckpt.write_bytes(b"x")
    n_steps = len(list(camp.glob("trials/*/*/step_*.json")))

    class Interrupted(OffsetPolicy):
        def act(self, obs, goal):
            if len(self.goals) == 2:
                raise KeyboardInterrupt
            return super().act(obs, goal)

    first = Interrupted((3, 4), (0, 0))
    monkeypatch.setattr(replay_cli, "load_policy", lambda path, args: first)
    assert main(["replay", str(camp), "--checkpoint", str(ckpt)]) == 130
    second = OffsetPolicy((3, 4), (0, 0))
    monkeypatch.setattr(replay_cli, "load_policy", lambda path, args: second)
    assert main(["replay", str(camp), "--checkpoint", str(ckpt)]) == 0
    assert len(first.goals) == 2 and len(second.goals) == n_steps - 2
    resumed = (camp / "replay_other" / "replay_steps.csv").read_text()
    whole = replay_campaign(camp, OffsetPolicy((3, 4), (0, 0)))
    write_replay(whole, tmp_path / "whole", source="s", checkpoint="c", radius_px=DEFAULT_RADIUS_PX)
    assert sorted(resumed.splitlines()) == sorted((tmp_path / "whole" / "replay_steps.csv").read_text().splitlines())
    assert "replay" in capsys.readouterr().err  # the progress bar
