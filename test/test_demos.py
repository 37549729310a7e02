"""Demonstration datasets: GenSim's on-disk layout, safe reading, crash safety, the policy image.

The layout checks compare against GenSim's documented format (``cliport/dataset.py``
``RavensDataset.add`` / ``load``; ``cliport/demos.py``), reading the files with plain ``pickle``
as GenSim's loader does, so nothing of our reader is reused to check our writer.
"""
import os
import pickle
import pickletools
import re

import numpy as np
import pytest

from sim2real.demos import FIELDS, OBS_EXTRA, DemoDataset, camera_obs, gensim_cameras, restricted_load, save_episode
from sim2real.errors import DatasetError

H, W = 48, 64  # small images for the format tests; the twin tests use the real 480 x 640


def _episode(rng, steps=2, n_cams=3, h=H, w=W, goal="put the red block in the green bowl"):
    ep = []
    for t in range(steps + 1):
        obs = {"color": rng.integers(0, 256, (n_cams, h, w, 3), dtype=np.uint8),
               "depth": rng.uniform(0.3, 1.2, (n_cams, h, w)).astype(np.float32)}
        act = None if t == steps else {
            "pose0": (np.array([0.5, 0.1 * t, 0.02]), np.array([0.0, 0.0, 0.0, 1.0])),
            "pose1": (np.array([0.6, -0.1, 0.03]), np.array([0.0, 0.0, np.sin(0.2), np.cos(0.2)]))}
        info = {7: ((0.5, 0.0, 0.02), (0.0, 0.0, 0.0, 1.0), (0.04, 0.04, 0.04)),
                "lang_goal": goal if t < steps else "task completed."}
        ep.append((obs, act, 0.0 if t == 0 else 0.5, info))
    return ep


def _plain_load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


# ----------------------------------------------------------------------------------------------
# GenSim's layout, field by field
# ----------------------------------------------------------------------------------------------

def test_layout_matches_gensim_field_by_field(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "put-block-in-bowl-train"
    ep = _episode(rng, steps=2)
    assert save_episode(root, ep, seed=4) == 0
    assert sorted(p.name for p in root.iterdir()) == sorted(FIELDS)  # nothing else, hidden or not
    assert FIELDS == ("action", "color", "depth", "info", "reward")
    for field in FIELDS:
        assert [p.name for p in (root / field).iterdir()] == ["000000-4.pkl"]
    color = _plain_load(root / "color" / "000000-4.pkl")
    depth = _plain_load(root / "depth" / "000000-4.pkl")
    action = _plain_load(root / "action" / "000000-4.pkl")
    reward = _plain_load(root / "reward" / "000000-4.pkl")
    info = _plain_load(root / "info" / "000000-4.pkl")
    assert isinstance(color, np.ndarray) and color.dtype == np.uint8 and color.shape == (3, 3, H, W, 3)
    assert isinstance(depth, np.ndarray) and depth.dtype == np.float32 and depth.shape == (3, 3, H, W)
    for t in range(3):
        np.testing.assert_array_equal(color[t], ep[t][0]["color"])
        np.testing.assert_array_equal(depth[t], ep[t][0]["depth"])
    assert isinstance(action, list) and isinstance(reward, list) and isinstance(info, list)
    assert len(action) == len(reward) == len(info) == 3
    assert action[-1] is None
    for a in action[:-1]:
        assert set(a) == {"pose0", "pose1"}
        for key in ("pose0", "pose1"):
            xyz, xyzw = a[key]
            assert np.shape(xyz) == (3,) and np.shape(xyzw) == (4,)
    np.testing.assert_array_equal(action[1]["pose0"][0], [0.5, 0.1, 0.02])
    assert reward == [0.0, 0.5, 0.5]
    assert [i["lang_goal"] for i in info] == ["put the red block in the green bowl"] * 2 + ["task completed."]
    assert info[0][7] == ((0.5, 0.0, 0.02), (0.0, 0.0, 0.0, 1.0), (0.04, 0.04, 0.04))


def test_gensim_loader_rules_count_find_and_parse_seeds(tmp_path):
    """RavensDataset counts '.pkl' names in action/, parses the seed after the first '-', and finds
    episode i as the first sorted name containing f'{i:06d}'."""
    rng = np.random.default_rng(1)
    root = tmp_path / "t-train"
    seeds = [0, 2, 4]
    assert [save_episode(root, _episode(rng, 1), s) for s in seeds] == [0, 1, 2]
    names = sorted(os.listdir(root / "action"))
    assert sum(".pkl" in n for n in names) == 3
    assert [int(n[n.find("-") + 1:-4]) for n in names] == seeds
    for i in range(3):
        assert next(n for n in names if f"{i:06d}" in n) == f"{i:06d}-{seeds[i]}.pkl"
    ds = DemoDataset(root)
    assert ds.n_episodes == 3 and ds.episode_ids == [(0, 0), (1, 2), (2, 4)] and ds.view == "gensim"


def test_files_name_numpy1_modules_only(tmp_path):
    """GenSim runs NumPy 1 (Python 3.8), which cannot import numpy._core: the files must not name it."""
    save_episode(tmp_path, _episode(np.random.default_rng(2), 1), 0)
    for field in FIELDS:
        data = (tmp_path / field / "000000-0.pkl").read_bytes()
        assert data[:2] == b"\x80\x04"  # protocol 4, GenSim's pickle.dump default on Python 3.8
        strings = [arg for op, arg, _ in pickletools.genops(data) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")]
        assert not any(isinstance(s, str) and s.startswith("numpy._core") for s in strings), field
    color = (tmp_path / "color" / "000000-0.pkl").read_bytes()
    assert b"numpy.core.multiarray" in color


def test_round_trip_gensim_view(tmp_path):
    rng = np.random.default_rng(3)
    ep = _episode(rng, steps=3)
    save_episode(tmp_path, ep, 10)
    back = DemoDataset(tmp_path).episode(0)
    assert len(back) == len(ep)
    for (o, a, r, i), (o2, a2, r2, i2) in zip(ep, back):
        assert set(o2) == {"color", "depth"}
        np.testing.assert_array_equal(o["color"], o2["color"])
        np.testing.assert_array_equal(o["depth"], o2["depth"])
        assert r == r2 and i == i2
        if a is None:
            assert a2 is None
        else:
            for k in ("pose0", "pose1"):
                np.testing.assert_array_equal(a[k][0], a2[k][0])
                np.testing.assert_array_equal(a[k][1], a2[k][1])


def test_color_list_of_cameras_is_stacked_as_gensim(tmp_path):
    """GenSim's obs['color'] is a tuple of per-camera images; add() stacks with np.uint8."""
    rng = np.random.default_rng(4)
    ep = _episode(rng, 1)
    ep = [({"color": tuple(o["color"]), "depth": tuple(o["depth"])}, a, r, i) for o, a, r, i in ep]
    save_episode(tmp_path, ep, 0)
    assert _plain_load(tmp_path / "color" / "000000-0.pkl").shape == (2, 3, H, W, 3)


# ----------------------------------------------------------------------------------------------
# Bad input to save_episode
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("breakage, message", [
    (lambda ep: ep[:-1] + [(ep[-1][0], ep[0][1], 1.0, ep[-1][3])], "final entry's act must be None"),
    (lambda ep: [(o, None, r, i) for o, a, r, i in ep], "pose0"),
    (lambda ep: [(o, a, r, {k: v for k, v in i.items() if k != "lang_goal"}) for o, a, r, i in ep], "lang_goal"),
    (lambda ep: [({"color": o["color"].astype(np.float32), "depth": o["depth"]}, a, r, i) for o, a, r, i in ep],
     "uint8"),
    (lambda ep: [({"color": o["color"], "depth": o["depth"][:, :-1]}, a, r, i) for o, a, r, i in ep], "depth"),
    (lambda ep: [(o, a, float("nan"), i) for o, a, r, i in ep], "reward"),
    (lambda ep: [(o, a if a is None else {"pose0": (a["pose0"][0], (0, 0, 0, 2.0)), "pose1": a["pose1"]}, r, i)
                 for o, a, r, i in ep], "unit length"),
    (lambda ep: ep[-1:], "at least 2"),
])
def test_malformed_episode_is_refused_and_nothing_written(tmp_path, breakage, message):
    ep = breakage(_episode(np.random.default_rng(5), 2))
    with pytest.raises(DatasetError, match=message):
        save_episode(tmp_path / "d", ep, 0)
    assert not (tmp_path / "d").exists()


def test_seed_must_be_an_integer(tmp_path):
    with pytest.raises(DatasetError, match="seed must be an integer"):
        save_episode(tmp_path, _episode(np.random.default_rng(6), 1), "3")


def test_seed_that_would_shadow_another_episode_is_refused(tmp_path):
    """GenSim's load(5) takes the first name containing '000005': '000000-1000005.pkl' would win."""
    rng = np.random.default_rng(7)
    save_episode(tmp_path, _episode(rng, 1), 1000005)
    for s in range(1, 5):
        save_episode(tmp_path, _episode(rng, 1), 2 * s)
    with pytest.raises(DatasetError, match="would read 000000-1000005.pkl for episode 5"):
        save_episode(tmp_path, _episode(rng, 1), 10)
    assert DemoDataset(tmp_path).n_episodes == 5


# ----------------------------------------------------------------------------------------------
# Crash safety
# ----------------------------------------------------------------------------------------------

def test_interrupted_save_is_never_readable_and_is_replaced(tmp_path, monkeypatch):
    import sim2real.demos.dataset as dataset

    rng = np.random.default_rng(8)
    save_episode(tmp_path, _episode(rng, 1), 0)
    calls = {"n": 0}
    real_dump = dataset.dump

    def dying_dump(data, f):
        calls["n"] += 1
        if calls["n"] == 5:  # the fifth file of the episode: action/, the one that commits it
            f.write(b"\x80\x04partial")
            raise KeyboardInterrupt  # the process dies mid-write
        real_dump(data, f)

    monkeypatch.setattr(dataset, "dump", dying_dump)
    with pytest.raises(KeyboardInterrupt):
        save_episode(tmp_path, _episode(rng, 1), 2)
    monkeypatch.setattr(dataset, "dump", real_dump)
    # GenSim counts action/ only: still one episode; the half-written file is nowhere readable.
    assert sorted(os.listdir(tmp_path / "action")) == ["000000-0.pkl"]
    assert not (tmp_path / ".incoming").exists()  # the staging of the dead save is gone too
    assert (tmp_path / "color" / "000001-2.pkl").exists()  # a leftover of the dead save
    assert DemoDataset(tmp_path).n_episodes == 1
    # the next save takes index 1 and removes the leftovers (here with another seed)
    assert save_episode(tmp_path, _episode(rng, 1), 4) == 1
    for field in FIELDS:
        assert sorted(os.listdir(tmp_path / field)) == ["000000-0.pkl", "000001-4.pkl"]
    assert DemoDataset(tmp_path).episode_ids == [(0, 0), (1, 4)]


def test_staging_left_by_a_killed_process_is_cleaned(tmp_path):
    rng = np.random.default_rng(18)
    save_episode(tmp_path, _episode(rng, 1), 0)
    (tmp_path / ".incoming").mkdir()
    (tmp_path / ".incoming" / "part-abc.tmp").write_bytes(b"half")
    assert DemoDataset(tmp_path).n_episodes == 1
    assert save_episode(tmp_path, _episode(rng, 1), 2) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIELDS)


def _save_many(root, seeds):
    rng = np.random.default_rng(seeds[0])
    return [save_episode(root, _episode(rng, 1), s) for s in seeds]


def test_concurrent_recorders_take_distinct_indices(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_save_many, [(tmp_path, [0, 2, 4, 6]), (tmp_path, [1, 3, 5, 7])])
    assert sorted(results[0] + results[1]) == list(range(8))
    ds = DemoDataset(tmp_path)
    assert ds.n_episodes == 8 and sorted(s for _, s in ds.episode_ids) == list(range(8))


def test_files_get_the_umask_permissions(tmp_path):
    save_episode(tmp_path, _episode(np.random.default_rng(9), 1), 0)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "color" / "000000-0.pkl").stat().st_mode & 0o777 == 0o666 & ~mask


# ----------------------------------------------------------------------------------------------
# DemoDataset validation
# ----------------------------------------------------------------------------------------------

def test_dataset_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        DemoDataset(tmp_path / "nope")
    rng = np.random.default_rng(10)
    for s in (0, 2):
        save_episode(tmp_path / "a", _episode(rng, 1), s)
    (tmp_path / "a" / "depth" / "000001-2.pkl").unlink()
    with pytest.raises(DatasetError, match=r"depth/000001-2.pkl: missing"):
        DemoDataset(tmp_path / "a")
    save_episode(tmp_path / "b", _episode(rng, 1), 0)
    os.rename(tmp_path / "b" / "reward", tmp_path / "b" / "rewards")
    with pytest.raises(DatasetError, match=r"missing field folder\(s\) \['reward'\]"):
        DemoDataset(tmp_path / "b")
    save_episode(tmp_path / "c", _episode(rng, 1), 0)
    for field in FIELDS:
        os.rename(tmp_path / "c" / field / "000000-0.pkl", tmp_path / "c" / field / "000003-0.pkl")
    with pytest.raises(DatasetError, match=r"must be 0..0 once each \(missing \[0\]"):
        DemoDataset(tmp_path / "c")
    save_episode(tmp_path / "e", _episode(rng, 1), 0)
    (tmp_path / "e" / "action" / "notes.pkl").write_bytes(b"")
    with pytest.raises(DatasetError, match="unexpected file"):
        DemoDataset(tmp_path / "e")


def test_episode_index_and_mixed_dtypes_are_checked(tmp_path):
    rng = np.random.default_rng(11)
    save_episode(tmp_path, _episode(rng, 1), 0)
    ds = DemoDataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        ds.episode(1)
    with open(tmp_path / "depth" / "000000-0.pkl", "wb") as f:
        pickle.dump(np.zeros((2, 3, H, W), np.float64), f)
    with pytest.raises(DatasetError, match="depth must be float32"):
        ds.episode(0)


def test_empty_dataset_folder(tmp_path):
    for field in FIELDS:
        (tmp_path / field).mkdir()
    ds = DemoDataset(tmp_path)
    assert ds.n_episodes == 0 and ds.episode_ids == [] and ds.view is None


# ----------------------------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalEvil:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def test_restricted_load_refuses_code_and_never_runs_it(tmp_path):
    marker = tmp_path / "pwned"
    payloads = {
        "os_system.pkl": [{"lang_goal": "x"}, _Evil(f"touch {marker}")],
        "eval.pkl": _EvalEvil(f"open({str(marker)!r}, 'w').write('x')"),
    }
    for name, payload in payloads.items():
        path = tmp_path / name
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: unsafe pickle, refused global"):
            restricted_load(path)
        assert not marker.exists()
    # a plain pickle.load would have run it: the payload is real
    pickle.loads((tmp_path / "os_system.pkl").read_bytes())
    assert marker.exists()


def test_restricted_load_refuses_code_inside_a_dataset_file(tmp_path):
    rng = np.random.default_rng(12)
    save_episode(tmp_path, _episode(rng, 1), 0)
    marker = tmp_path / "pwned"
    info = _plain_load(tmp_path / "info" / "000000-0.pkl")
    info[0]["lang_goal"] = _Evil(f"touch {marker}")
    (tmp_path / "info" / "000000-0.pkl").write_bytes(pickle.dumps(info))
    with pytest.raises(DatasetError, match="unsafe pickle"):  # opening reads info/ (the view) already
        DemoDataset(tmp_path).episode(0)
    assert not marker.exists()
    evil_action = [_Evil(f"touch {marker}"), None]
    (tmp_path / "info" / "000000-0.pkl").write_bytes(pickle.dumps([{"lang_goal": "g"}] * 2))
    (tmp_path / "action" / "000000-0.pkl").write_bytes(pickle.dumps(evil_action))
    ds = DemoDataset(tmp_path)
    with pytest.raises(DatasetError, match=r"action/000000-0.pkl: unsafe pickle"):
        ds.episode(0)
    assert not marker.exists()


def test_restricted_load_accepts_plain_data_from_numpy_1_and_2_pickles(tmp_path):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "i": np.int64(3),
            "t": (1, 2.0, "x", None, True, b"raw", {1, 2}, frozenset({3}), 1 + 2j),
            "o": np.array([1, "x"], dtype=object)}
    for proto in (2, 4, 5):
        p = tmp_path / f"p{proto}.pkl"
        p.write_bytes(pickle.dumps(data, protocol=proto))  # NumPy 2's own names (numpy._core...)
        back = restricted_load(p)
        np.testing.assert_array_equal(back["a"], data["a"])
        assert back["s"] == 2.5 and back["t"] == data["t"] and list(back["o"]) == [1, "x"]
    # NumPy 1's names, as GenSim's own files have them (our writer produces those too)
    from sim2real.demos.pickling import dumps

    (tmp_path / "np1.pkl").write_bytes(dumps(data))
    assert b"numpy._core" not in (tmp_path / "np1.pkl").read_bytes()
    np.testing.assert_array_equal(restricted_load(tmp_path / "np1.pkl")["a"], data["a"])


def test_restricted_load_reports_truncated_and_missing_files(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps(np.zeros(1000))[:100])
    with pytest.raises(DatasetError, match="x.pkl: corrupt or truncated"):
        restricted_load(p)
    with pytest.raises(DatasetError, match="file not found"):
        restricted_load(tmp_path / "y.pkl")


# ----------------------------------------------------------------------------------------------
# The simulator's cameras and the policy image
# ----------------------------------------------------------------------------------------------

def test_gensim_cameras_are_realsense_d415_config():
    """GenSim cameras.py: 640x480, intrinsics (450, 0, 320, 0, 450, 240, 0, 0, 1); positions
    front (1, 0, 0.75), left (0, 0.5, 0.75), right (0, -0.5, 0.75); Euler XYZ rotations below."""
    from scipy.spatial.transform import Rotation

    cams = gensim_cameras()
    assert len(cams) == 3
    eulers = [(np.pi / 4, np.pi, -np.pi / 2), (np.pi / 4.5, np.pi, np.pi / 4), (np.pi / 4.5, np.pi, 3 * np.pi / 4)]
    positions = [(1.0, 0.0, 0.75), (0.0, 0.5, 0.75), (0.0, -0.5, 0.75)]
    for (K, T), euler, pos in zip(cams, eulers, positions):
        np.testing.assert_array_equal(K, np.array([[450.0, 0, 320], [0, 450, 240], [0, 0, 1]]))
        np.testing.assert_array_equal(T[:3, 3], pos)
        np.testing.assert_allclose(T[:3, :3], Rotation.from_euler("xyz", euler).as_matrix(), atol=1e-12)
        assert T.dtype == np.float64 and np.array_equal(T[3], [0, 0, 0, 1])


def _plane_depth(K, T, z, h=480, w=640):
    """z-depth image of the horizontal plane at height z seen by camera (K, T): an independent model."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], -1)
    world_dir = rays @ T[:3, :3].T
    depth = (z - T[2, 3]) / world_dir[..., 2]  # camera-frame z of the hit (rays have unit z)
    return np.where(depth > 0, depth, 0).astype(np.float32)


def test_image_of_gensim_view_sees_a_plane_at_its_height(tmp_path):
    """The three D415 configs fused: a flat plane 5 cm up reads 0.05 m over the whole workspace,
    with the colour of the views that see it (an independent ray model, not our projection)."""
    z = 0.05
    cams = gensim_cameras()
    color = np.stack([np.full((480, 640, 3), c, np.uint8) for c in (30, 60, 90)])
    depth = np.stack([_plane_depth(K, T, z) for K, T in cams])
    ds_root = tmp_path / "plane"
    for field in FIELDS:
        (ds_root / field).mkdir(parents=True)
    ds = DemoDataset(ds_root)
    img = ds.image({"color": color, "depth": depth})
    assert img.shape == (320, 160, 6) and img.dtype == np.float32
    covered = img[..., 3] > 0
    assert covered.mean() > 0.97
    np.testing.assert_allclose(img[..., 3][covered], z, atol=2e-4)
    assert np.array_equal(img[..., 3], img[..., 4]) and np.array_equal(img[..., 3], img[..., 5])
    # colour = rounded mean over the views that saw the cell: every value is a mean of 30/60/90
    assert set(np.unique(img[..., 0][covered])) <= {30.0, 45.0, 60.0, 75.0, 90.0}


def test_image_equals_heightmap_fusion_of_the_same_frames(tmp_path):
    from sim2real.heightmap import policy_input, project_frames

    rng = np.random.default_rng(13)
    cams = gensim_cameras()
    color = rng.integers(1, 256, (3, 480, 640, 3), dtype=np.uint8)
    bumps = rng.uniform(0, 0.1, (3, 480, 640)).astype(np.float32)  # surfaces up to 10 cm nearer than the table
    depth = np.stack([_plane_depth(K, T, 0.0) for K, T in cams]) - bumps
    act = {"pose0": ((0.5, 0, 0), (0, 0, 0, 1)), "pose1": ((0.6, 0, 0), (0, 0, 0, 1))}
    obs = {"color": color, "depth": depth}
    ep = [(obs, act, 0.0, {"lang_goal": "g"}), (obs, None, 1.0, {"lang_goal": "task completed."})]
    save_episode(tmp_path, ep, 0)
    ds = DemoDataset(tmp_path)
    obs = ds.episode(0)[0][0]
    expected = policy_input(project_frames([(color[k], depth[k], K, T) for k, (K, T) in enumerate(cams)]))
    np.testing.assert_array_equal(ds.image(obs), expected)


def test_image_refuses_non_d415_images_in_the_gensim_view(tmp_path):
    for field in FIELDS:
        (tmp_path / field).mkdir()
    with pytest.raises(DatasetError, match=r"\(3, 480, 640, 3\)"):
        DemoDataset(tmp_path).image({"color": np.zeros((1, 480, 640, 3), np.uint8),
                                     "depth": np.ones((1, 480, 640), np.float32)})


# ----------------------------------------------------------------------------------------------
# The camera view
# ----------------------------------------------------------------------------------------------

def _camera_step(rng, z=0.02):
    from sim2real.camera import CameraIntrinsics, RGBDFrame
    from sim2real.heightmap import project_frames
    from sim2real.twin.camera import look_at

    k = CameraIntrinsics(160, 120, 150.0, 150.0, 80.0, 60.0)
    T = look_at((0.5, 0.0, 0.9), (0.5, 0.0, 0.0), up=(1.0, 0.0, 0.0))
    depth = _plane_depth(k.K, T, z, h=120, w=160)
    frame = RGBDFrame(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), depth, k, "cam_optical", 1.0, T)
    return frame, project_frames([frame])


def test_camera_obs_holds_frames_calibration_and_heightmap():
    rng = np.random.default_rng(14)
    frame, hm = _camera_step(rng)
    obs = camera_obs([frame], hm)
    assert obs["color"].shape == (1, 120, 160, 3) and obs["color"].dtype == np.uint8
    assert obs["depth"].shape == (1, 120, 160) and obs["depth"].dtype == np.float32
    np.testing.assert_array_equal(obs["intrinsics"][0], frame.K)
    np.testing.assert_array_equal(obs["T_base_camera"][0], frame.T_base_camera)
    np.testing.assert_array_equal(obs["image_size"], [[120, 160]])
    assert obs["frame_id"] == ("cam_optical",)
    np.testing.assert_array_equal(obs["heightmap_color"], hm.color)
    np.testing.assert_array_equal(obs["heightmap_height"], hm.height)
    assert obs["workspace"] == {"bounds": [[0.25, 0.75], [-0.5, 0.5], [0.0, 0.28]], "pixel_size": 0.003125}
    from dataclasses import replace

    with pytest.raises(DatasetError, match="no T_base_camera"):
        camera_obs([replace(frame, T_base_camera=None)], hm)


def test_camera_view_round_trip_and_image_is_the_stored_heightmap(tmp_path):
    from sim2real.heightmap import policy_input

    rng = np.random.default_rng(15)
    steps = [_camera_step(rng, z) for z in (0.02, 0.03, 0.04)]
    ep = []
    for t, (frame, hm) in enumerate(steps):
        act = None if t == 2 else {"pose0": (np.array([0.5, 0, 0.02]), np.array([0, 0, 0, 1.0])),
                                   "pose1": (np.array([0.6, 0, 0.02]), np.array([0, 0, 0, 1.0]))}
        info = {"lang_goal": "g", 3: ((0.5, 0, 0), (0, 0, 0, 1), (1, 1, 1))}
        ep.append((camera_obs([frame], hm), act, float(t == 2), info))
    save_episode(tmp_path, ep, 0)
    # on disk: GenSim's color/depth, the rest in info[OBS_EXTRA]
    assert _plain_load(tmp_path / "color" / "000000-0.pkl").shape == (3, 1, 120, 160, 3)
    assert set(_plain_load(tmp_path / "info" / "000000-0.pkl")[0][OBS_EXTRA]) == {
        "intrinsics", "image_size", "T_base_camera", "frame_id", "heightmap_color", "heightmap_height", "workspace"}
    ds = DemoDataset(tmp_path)
    assert ds.view == "camera"
    back = ds.episode(0)
    for (o, a, r, i), (o2, a2, r2, i2) in zip(ep, back):
        assert set(o) == set(o2) and i == i2 and r == r2
        for key in o:
            if isinstance(o[key], np.ndarray):
                np.testing.assert_array_equal(o[key], o2[key])
            else:
                assert o[key] == o2[key]
    for t, (frame, hm) in enumerate(steps):
        np.testing.assert_array_equal(ds.image(back[t][0]), policy_input(hm))
        # also from the raw info, as GenSim's loader hands it (obs = color/depth only)
        raw_info = _plain_load(tmp_path / "info" / "000000-0.pkl")[t]
        np.testing.assert_array_equal(ds.image({"color": None, "depth": None}, raw_info), policy_input(hm))
    assert abs(float(ds.image(back[2][0])[..., 3].max()) - 0.04) < 1e-3


def test_one_folder_holds_one_view(tmp_path):
    rng = np.random.default_rng(16)
    frame, hm = _camera_step(rng)
    cam_ep = [(camera_obs([frame], hm), {"pose0": ((0.5, 0, 0), (0, 0, 0, 1)), "pose1": ((0.6, 0, 0), (0, 0, 0, 1))},
               0.0, {"lang_goal": "g"}), (camera_obs([frame], hm), None, 1.0, {"lang_goal": "g"})]
    save_episode(tmp_path, _episode(rng, 1, h=120, w=160, n_cams=1), 0)
    save_episode(tmp_path, cam_ep, 2)
    ds = DemoDataset(tmp_path)
    assert ds.view == "gensim"
    with pytest.raises(DatasetError, match="not a gensim-view step"):
        ds.episode(1)


def test_reserved_info_key_is_refused(tmp_path):
    ep = _episode(np.random.default_rng(17), 1)
    ep[0][3][OBS_EXTRA] = {}
    with pytest.raises(DatasetError, match="reserved"):
        save_episode(tmp_path, ep, 0)
