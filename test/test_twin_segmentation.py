"""Object-id maps of twin heightmaps, and the same-object rate of `sim2real replay` on a twin campaign."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pybullet")

from sim2real.camera import CameraIntrinsics, RGBDFrame  # noqa: E402
from sim2real.cli import main  # noqa: E402
from sim2real.heightmap import project_frame, project_frames  # noqa: E402
from sim2real.tasks import load_all, resolve  # noqa: E402
from sim2real.trials.log import load_steps, load_trials  # noqa: E402
from sim2real.twin import Twin  # noqa: E402
from sim2real.twin.objects import COLORS  # noqa: E402
from sim2real.twin.segmentation import (decode_ids, encode_ids, heightmap_segmentation,  # noqa: E402
                                        pixel_object_ids)
from sim2real.workspace import GENSIM_WORKSPACE as WS  # noqa: E402


@pytest.fixture(scope="module")
def twin():
    t = Twin.from_config()
    yield t
    t.close()


def test_ids_survive_the_colour_encoding():
    ids = np.array([[0, 1, 255], [256, 65535, (1 << 24) - 1]])
    enc = encode_ids(ids)
    assert enc.dtype == np.uint8 and enc.shape == (2, 3, 3)
    np.testing.assert_array_equal(decode_ids(enc), ids)
    mask = np.array([[-1, 4, 7], [9, 4, 2]])
    np.testing.assert_array_equal(pixel_object_ids(mask, {4: 1, 7: 2}), [[0, 1, 2], [0, 1, 0]])


@pytest.mark.parametrize("red_higher", [True, False])
def test_winner_per_cell_is_the_observations(red_higher):
    """Two objects seen in ONE heightmap cell: the id is the higher one's, as the colour is."""
    k = CameraIntrinsics(4, 2, 1000.0, 1000.0, 1.5, 0.5)   # 1 mm between pixels at 1 m: all 8 in one cell
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])                 # looking straight down
    T[:3, 3] = (0.5015, 0.0015, 1.0)                       # away from cell boundaries
    depth = np.full((2, 4), 0.97 if red_higher else 0.99, np.float32)
    depth[:, 2:] = 0.99 if red_higher else 0.97
    color = np.zeros((2, 4, 3), np.uint8)
    color[:, :2], color[:, 2:] = (200, 0, 0), (0, 0, 200)
    ids = np.array([[5, 5, 9, 9], [5, 5, 9, 9]])
    height, cmap, n = project_frame(color, depth, k.K, T, WS)
    seg = heightmap_segmentation(RGBDFrame(color, depth, k, "f", 0.0, T), ids, WS)
    assert n == 8 and np.count_nonzero(height) == 1
    cell = np.unravel_index(np.argmax(height), height.shape)
    assert height[cell] == pytest.approx(0.03, abs=1e-6)
    assert tuple(cmap[cell]) == ((200, 0, 0) if red_higher else (0, 0, 200))
    assert seg[cell] == (5 if red_higher else 9) and np.count_nonzero(seg) == 1


@pytest.mark.parametrize("task", ["stack-block", "put-block-in-bowl", "block-zone"])
def test_twin_segmentation_matches_the_observation(twin, task):
    twin.start_trial(resolve(task, load_all()), 0)
    frame = twin.camera.read()
    obs = project_frames([frame], WS)
    seg = twin.camera.segmentation_for(frame, WS)
    assert seg.shape == (320, 160) and seg.dtype == np.int32
    objects = twin.instance.describe()["objects"]
    assert sorted(set(np.unique(seg)) - {0}) == [o["id"] for o in objects]  # every object seen, nothing else
    for o, scene_obj in zip(objects, twin.scene.objects):
        cells = seg == o["id"]
        expected_h = 0.001 if scene_obj.spec.kind in ("zone", "line", "corner") else 0.04
        assert obs.height[cells].max() == pytest.approx(expected_h, abs=0.002), o
        # the cells carry the object's colour in the observation (shaded: within 30%)
        med = np.median(obs.color[cells].astype(float), axis=0)
        assert np.all(np.abs(med - COLORS[scene_obj.spec.color]) <= 0.3 * np.array(COLORS[scene_obj.spec.color]) + 10)
    assert not np.any((seg == 0) & (obs.height > 0.003))  # nothing raised is left unlabelled
    other = twin.camera.read()
    assert twin.camera.segmentation_for(frame, WS) is None and twin.camera.segmentation_for(other, WS) is not None


def test_twin_steps_report_the_picked_and_placed_object(twin):
    steps = []
    result = twin.run_trial(resolve("stack-block", load_all()), 1, "oracle", on_step=steps.append)
    assert result.success and steps
    for s in steps:
        seg = s.info["segmentation"]
        picked = s.info["pick_object"]
        assert picked != 0 and picked == s.action.info["pick_object"] == seg[s.action.pick.pixel]
        assert s.info["place_object"] not in (0, picked)  # stacked on another block
        names = {o["id"]: o["name"] for o in twin.instance.describe()["objects"]}
        assert s.action.info["object"] == names[picked]


class _ScriptedPolicy:
    """Plays back given (pick pixel, place pixel) pairs in order, with an optional pixel offset."""

    name = "scripted"
    checkpoint_sha256 = "cd" * 32

    def __init__(self, pairs, offset=(0, 0)):
        self.pairs, self.offset = list(pairs), offset

    def act(self, obs, goal, **kw):
        from sim2real.action import PickPlaceAction, PixelPose

        pick, place = self.pairs.pop(0)
        pick = (pick[0] + self.offset[0], pick[1] + self.offset[1])
        return PickPlaceAction(PixelPose.from_pixel(pick, 0.0, obs.height, obs.workspace),
                               PixelPose.from_pixel(place, 0.0, obs.height, obs.workspace))


def test_replay_of_a_twin_campaign_reports_a_real_same_object_rate(tmp_path, monkeypatch, capsys):
    from sim2real.cli import replay as replay_cli

    out = tmp_path / "camp"
    assert main(["run", "--task", "stack block", "--trials", "2", "--out", str(out), "--no-progress"]) == 0
    recs = load_trials(out)
    pairs = []
    for rec in recs:
        for step in load_steps(out / rec["artefacts"]):
            seg = step.arrays["segmentation"]
            assert seg.shape == (320, 160)
            pick = tuple(step.meta["action"]["pick"]["pixel"])
            assert step.meta["info"]["pick_object"] == seg[pick] != 0
            pairs.append((pick, tuple(step.meta["action"]["place"]["pixel"])))
    ckpt = tmp_path / "other.ckpt"
    ckpt.write_bytes(b"x")
    # the same picks and places: same object everywhere
    monkeypatch.setattr(replay_cli, "load_policy", lambda path, args: _ScriptedPolicy(pairs))
    assert main(["replay", str(out), "--checkpoint", str(ckpt), "--out", str(tmp_path / "r1")]) == 0
    assert "same object: pick 100.0%, place 100.0%" in capsys.readouterr().out
    # picks 12 cm off (40 px in y): on the table or another object, never the one the robot picked
    monkeypatch.setattr(replay_cli, "load_policy", lambda path, args: _ScriptedPolicy(pairs, (40, 0)))
    assert main(["replay", str(out), "--checkpoint", str(ckpt), "--out", str(tmp_path / "r2")]) == 0
    text = capsys.readouterr().out
    assert "same object: pick 0.0%, place 100.0%" in text
    rows = (tmp_path / "r2" / "replay_tasks.csv").read_text()
    assert "stack-block" in rows
    trial = json.loads((out / "trials.jsonl").read_text().splitlines()[0])
    assert all("id" in o for o in trial["info"]["objects"])
