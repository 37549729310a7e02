"""Training samples: GenSim's labels, perturb and sim-to-real augmentation (no network needed).

The reference values were produced by GenSim's own ``cliport.utils.utils.perturb`` (liruiw/GenSim
@5d01b67) with ``np.random.seed(s)`` on ``scene_image(7)`` and pixels (100, 50), (220, 120); the
scratch comparison also found the warped images and the sim-to-real noise identical for 20 seeds.
"""
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ckpt_factory import scene_image  # noqa: E402

from sim2real.training import sample as S  # noqa: E402

GENSIM_PERTURB = {  # seed: (theta, tx, ty, pivot x, pivot y), rounded p0, rounded p1
    0: ([1.8473113, 10.67085889, 26.09967958, 80.0, 160.0], (174, 157), (208, 22)),
    1: ([-0.33763451, -10.24144946, 30.2338518, 80.0, 160.0], (144, 22), (234, 127)),
    2: ([-0.4364278, -1.50044873, -56.96522922, 80.0, 160.0], (61, 26), (141, 140)),
}


@pytest.mark.parametrize("seed", sorted(GENSIM_PERTURB))
def test_perturb_reproduces_gensim_draws(seed):
    params, p0, p1 = GENSIM_PERTURB[seed]
    img, (q0, q1), got = S.perturb(scene_image(7), [(100, 50), (220, 120)], np.random.RandomState(seed))
    np.testing.assert_allclose(got, params, rtol=0, atol=1e-7)
    assert tuple(q0) == p0 and tuple(q1) == p1
    assert img.shape == (320, 160, 6) and img.dtype == np.float32
    assert np.array_equal(img[..., :3], np.trunc(img[..., :3]))  # colour truncated to integers, as GenSim


def test_perturb_keeps_pick_and_place_in_frame():
    img = scene_image(3)
    corners = [(0, 0), (319, 159), (0, 159), (319, 0), (160, 80)]
    for seed in range(200):
        rng = np.random.RandomState(seed)
        pix = [corners[seed % 5], corners[(seed + 2) % 5]]
        _, moved, _ = S.perturb(img, pix, rng)
        for r, c in moved:
            assert 0 <= r < 320 and 0 <= c < 160


def test_perturb_moves_the_content_with_the_labels():
    """A bright dot at the pick pixel ends up at the returned pick pixel."""
    img = np.zeros((320, 160, 6), np.float32)
    img[120:125, 60:65, :3] = 255
    _, (q0, _), _ = S.perturb(img, [(122, 62), (10, 10)], np.random.RandomState(5))
    out, _, _ = S.perturb(img, [(122, 62), (10, 10)], np.random.RandomState(5))
    assert out[q0[0], q0[1], 0] > 200


def test_transform_distribution_is_gensims():
    rng = np.random.RandomState(0)
    draws = [S.random_transform_params((320, 160), rng) for _ in range(4000)]
    theta = np.array([d[0] for d in draws])
    trans = np.array([d[1] for d in draws])
    assert abs(np.rad2deg(theta.std()) - 60) < 3 and abs(theta.mean()) < 0.06
    assert np.allclose(trans.std(axis=0), 160 / 6, rtol=0.05)
    assert all(d[2] == (80.0, 160.0) for d in draws[:3])


def test_sim2real_noise_keeps_six_channels_and_applies_each_part_with_p09():
    img = scene_image(2)
    applied = {"color": 0, "height": 0}
    for seed in range(300):
        out = S.sim2real_noise(img, np.random.RandomState(seed), random.Random(seed))
        assert out.shape == (320, 160, 6) and out.dtype == np.float32 and np.all(np.isfinite(out))
        h = out[..., 3:]
        assert np.array_equal(h[..., 0], h[..., 1]) and np.array_equal(h[..., 0], h[..., 2])
        applied["height"] += not np.array_equal(h, img[..., 3:])
        applied["color"] += not np.array_equal(out[..., :3], img[..., :3])
    assert 0.84 < applied["height"] / 300 < 0.96
    assert applied["color"] / 300 > 0.95  # 1 - 0.1 * 0.1 that neither colour part runs
    assert 0 <= out[..., :3].min() and out[..., :3].max() <= 255


def test_labels_follow_process_sample():
    yaw0, yaw1 = 0.3, -1.2
    act = {"pose0": (np.array([0.5, 0.0, 0.02]), Rotation.from_euler("z", yaw0).as_quat()),
           "pose1": (np.array([0.25 + 0.003125 * 10, -0.5 + 0.003125 * 300, 0.02]), Rotation.from_euler("z", yaw1).as_quat())}
    s = S.make_sample(scene_image(1), act, {"lang_goal": "put it there"})
    assert tuple(s["p0"]) == (160, 80) and tuple(s["p1"]) == (300, 10)
    assert s["p0_theta"] == 0
    assert s["p1_theta"] == pytest.approx(-yaw1 + yaw0, abs=1e-6)
    assert S.rotation_bin(s["p1_theta"]) == round((-yaw1 + yaw0) / (2 * np.pi / 36)) % 36
    assert s["lang_goal"] == "put it there"
    assert S.make_sample(scene_image(1), act, {})["lang_goal"] == S.DEFAULT_GOAL


def test_rotation_bin_wraps():
    assert S.rotation_bin(0.0) == 0
    assert S.rotation_bin(2 * np.pi) == 0
    assert S.rotation_bin(-2 * np.pi / 36) == 35
