"""`sim2real demos` on the twin: GenSim's layout from real oracle runs, both views, resume, CLI errors."""
import os
import pickle

import numpy as np
import pytest

pytest.importorskip("pybullet")

from sim2real.cli import main  # noqa: E402
from sim2real.demos import FIELDS, DemoDataset, gensim_cameras  # noqa: E402


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _demos(*args):
    return main(["demos", "--robot", "sim", "--no-progress", *args])


def test_gensim_view_episode_has_gensims_exact_layout(tmp_path):
    out = tmp_path / "put-block-in-bowl-train"
    assert _demos("--task", "put-block-in-bowl", "--episodes", "1", "--out", str(out), "--view", "gensim") == 0
    name = "000000-0.pkl"  # train seeds start at 0 (GenSim demos.py: seed = -2, then += 2)
    for field in FIELDS:
        assert os.listdir(out / field) == [name]
    color, depth = _load(out / "color" / name), _load(out / "depth" / name)
    action, reward, info = (_load(out / f / name) for f in ("action", "reward", "info"))
    n = len(action)
    assert n >= 2 and len(reward) == len(info) == n
    assert color.dtype == np.uint8 and color.shape == (n, 3, 480, 640, 3)
    assert depth.dtype == np.float32 and depth.shape == (n, 3, 480, 640)
    assert action[-1] is None
    for a in action[:-1]:
        assert set(a) == {"pose0", "pose1"}
        for key in ("pose0", "pose1"):
            xyz, xyzw = a[key]
            assert np.shape(xyz) == (3,) and np.shape(xyzw) == (4,)
            assert abs(np.linalg.norm(xyzw) - 1) < 1e-6
            assert 0.25 <= xyz[0] <= 0.75 and -0.5 <= xyz[1] <= 0.5
    assert reward[0] == 0 and sum(reward) > 0.99  # GenSim keeps only episodes with total reward > 0.99
    assert all(isinstance(i["lang_goal"], str) for i in info)
    assert info[0]["lang_goal"].startswith("put the") and info[-1]["lang_goal"] == "task completed."
    ids = [k for k in info[0] if k != "lang_goal"]
    assert ids and all(isinstance(k, int) and len(info[0][k]) == 3 for k in ids)  # env.info: id -> (pos, rot, dim)
    # the simulator's views see the table and the objects, from GenSim's camera configs
    ds = DemoDataset(out)
    assert ds.view == "gensim"
    img = ds.image(ds.episode(0)[0][0])
    assert img.shape == (320, 160, 6) and img.dtype == np.float32
    assert (img[..., :3].sum(-1) > 0).mean() > 0.99
    assert 0.03 < img[..., 3].max() < 0.1  # the 4 cm blocks
    # GenSim's renderer (TinyRenderer) and depth arithmetic: its heightmaps read the table 1.3-1.9 mm
    # high (median 1.6 mm, measured on GenSim's own put-block-in-bowl data); what sees no surface
    # reads the far plane, 10 m, as in GenSim
    h = img[..., 3]
    assert 0.0013 < np.median(h[(h > 0) & (h < 0.005)]) < 0.0019
    assert depth.max() == pytest.approx(10.0, rel=1e-3)
    # the pick pose lies on a block: the heightmap at its pixel is near its z
    from sim2real.workspace import GENSIM_WORKSPACE

    xyz = action[0]["pose0"][0]
    u, v = GENSIM_WORKSPACE.xyz_to_pix(xyz)
    assert abs(img[u, v, 3] - xyz[2]) < 0.01
    # rendered from GenSim's camera poses: each view's central pixel reads the distance along its
    # optical axis to the table (z = 0), where nothing stands in this scene
    for k, (K, T) in enumerate(gensim_cameras()):
        expected = -T[2, 3] / T[2, 2]  # camera-frame z of the plane z = 0 along the optical axis
        assert np.median(depth[-1, k, 238:243, 318:323]) == pytest.approx(expected, abs=0.01), k


def test_camera_view_records_what_the_robot_sees_and_resumes(tmp_path):
    from sim2real.heightmap import policy_input, project_frames

    out = tmp_path / "put-block-in-bowl-train"
    assert _demos("--task", "put-block-in-bowl", "--episodes", "1", "--out", str(out), "--view", "camera") == 0
    ds = DemoDataset(out)
    assert ds.view == "camera" and ds.episode_ids == [(0, 0)]
    ep = ds.episode(0)
    for obs, act, reward, info in ep:
        n_cams, h, w = obs["depth"].shape
        assert obs["color"].shape == (n_cams, h, w, 3) and obs["intrinsics"].shape == (n_cams, 3, 3)
        assert obs["T_base_camera"].shape == (n_cams, 4, 4)
        # the stored heightmap is our pipeline's projection of the stored frames
        frames = [(obs["color"][k], obs["depth"][k], obs["intrinsics"][k], obs["T_base_camera"][k])
                  for k in range(n_cams)]
        np.testing.assert_array_equal(ds.image(obs), policy_input(project_frames(frames)))
    assert ep[-1][1] is None and ep[-1][3]["lang_goal"] == "task completed."
    # appending: --episodes is the folder's target; new episodes take the next index and seed
    assert _demos("--task", "put-block-in-bowl", "--episodes", "2", "--out", str(out), "--view", "camera") == 0
    assert DemoDataset(out).episode_ids == [(0, 0), (1, 2)]
    assert _demos("--task", "put-block-in-bowl", "--episodes", "2", "--out", str(out), "--view", "camera") == 0
    assert DemoDataset(out).n_episodes == 2
    # the other view is refused before any work
    assert _demos("--task", "put-block-in-bowl", "--episodes", "3", "--out", str(out), "--view", "gensim") == 2


def test_failed_episodes_are_not_saved_and_seeds_advance(tmp_path, capsys):
    """block-zone needs two moves: with one step allowed no attempt succeeds; GenSim keeps only
    successful episodes and tries at most 3 x N seeds, each seed once."""
    out = tmp_path / "block-zone-val"
    rc = _demos("--task", "block-zone", "--episodes", "1", "--out", str(out), "--max-steps", "1")
    assert rc == 1
    err = capsys.readouterr().err
    assert "seed 1:" in err and "seed 3:" in err and "seed 5:" in err and "seed 7" not in err  # val: odd seeds
    assert not out.exists()  # nothing saved, nothing created (GenSim makes the folders on its first add)


@pytest.mark.parametrize("args, message", [
    (["--task", "stak blok", "--episodes", "1"], "unknown task"),
    (["--task", "stack-block", "--episodes", "0"], "--episodes must be a positive integer"),
    (["--task", "stack-block", "--episodes", "1", "--robot", "ur5"], "operator console"),
    (["--task", "stack-block", "--episodes", "1", "--seed", "-4"], "seeds must be >= 0"),
    (["--task", "stack-block", "--episodes", "3000", "--split", "val"], "overlap the test seeds"),
])
def test_bad_input_exits_2_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "d"
    assert _demos(*args, "--out", str(out)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_must_be_a_dataset_folder(tmp_path, capsys):
    bad = tmp_path / "notes"
    bad.mkdir()
    (bad / "readme.txt").write_text("x")
    assert _demos("--task", "stack-block", "--episodes", "1", "--out", str(bad)) == 2
    assert "missing field folder" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert _demos("--task", "stack-block", "--episodes", "1", "--out", str(f)) == 2
    assert "is a file" in capsys.readouterr().err


def test_gensim_render_agrees_with_the_twins_own_camera_model():
    """render_gensim_camera (GenSim's view/projection calls) and the twin's render_view (our OpenGL
    matrices from the intrinsics) see the same scene through each D415 config."""
    from sim2real.demos.record import _gensim_configs, render_gensim_camera
    from sim2real.tasks import resolve
    from sim2real.twin import Twin
    from sim2real.twin.camera import gensim_views, render_view

    twin = Twin.from_config(renderer="tiny")
    try:
        twin.start_trial(resolve("put-block-in-bowl"), 0)
        for (pos, quat, K), view in zip(_gensim_configs(), gensim_views()):
            color, depth = render_gensim_camera(twin.scene.client, pos, quat, K)
            frame = render_view(twin.scene.conn, view)
            seen = (frame.depth > 0) & (depth < 9.9)
            assert seen.mean() > 0.6
            assert np.median(np.abs(depth[seen] - frame.depth[seen])) < 1e-3
            assert np.mean(np.abs(color.astype(int) - frame.color.astype(int)) > 40) < 0.05  # shadows differ
    finally:
        twin.close()
