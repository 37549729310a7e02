"""Heightmap projection: bit-exact agreement with the reference algorithm, and its properties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import reference_heightmap as ref
from sim2real import heightmap as hm
from sim2real.heightmap import HeightmapObservation, policy_input, project_frames
from sim2real.workspace import GENSIM_WORKSPACE as WS
from sim2real.workspace import Workspace


def random_camera(rng, dtype=np.float64):
    """A camera 0.5-1 m above the table looking roughly down."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [np.pi + rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3),
                                            rng.uniform(-np.pi, np.pi)]).as_matrix()
    T[:3, 3] = [0.5 + rng.uniform(-0.2, 0.2), rng.uniform(-0.3, 0.3), rng.uniform(0.5, 1.0)]
    return T.astype(dtype)


def random_frame(rng, h=120, w=160, depth_dtype=np.float32, quantised=False, n_colors=256):
    K = np.array([[rng.uniform(100, 200), 0, w / 2 + rng.uniform(-5, 5)],
                  [0, rng.uniform(100, 200), h / 2 + rng.uniform(-5, 5)], [0, 0, 1]])
    depth = rng.uniform(0.3, 1.2, (h, w))
    if quantised:  # RealSense-like 1 mm steps: many equal heights compete for a cell
        depth = np.round(depth * 1000) / 1000
    depth = depth.astype(depth_dtype)
    depth[rng.random((h, w)) < 0.1] = 0
    depth[rng.random((h, w)) < 0.05] = np.nan
    color = rng.integers(0, n_colors, (h, w, 3), dtype=np.uint8)
    return color, depth, K


def reference(color, depth, K, T, ws=WS):
    return ref.heightmap(ref.transform(ref.pointcloud(depth, K), T), color, ws.bounds, ws.pixel_size)


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    color, depth, K = random_frame(rng, depth_dtype=[np.float32, np.float64][seed % 2],
                                   quantised=seed % 3 == 0, n_colors=[256, 3][seed % 2])
    T = random_camera(rng, dtype=[np.float64, np.float32][(seed // 2) % 2])
    K = K.astype([np.float64, np.float32][(seed // 4) % 2])
    want_h, want_c = reference(color, depth, K, T)
    got_h, got_c, _ = hm.project_frame(color, depth, K, T, WS)
    assert got_h.dtype == np.float32 and got_c.dtype == np.uint8
    np.testing.assert_array_equal(got_h, want_h)
    np.testing.assert_array_equal(got_c, want_c)


def test_ties_between_colours_follow_the_reference_sort():
    """A flat patch seen straight down: every point of a cell has the same height."""
    rng = np.random.default_rng(7)
    h, w = 96, 128
    K = np.array([[120.0, 0, 64], [0, 120.0, 48], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T[:3, 3] = [0.5, 0.0, 0.8]
    depth = np.full((h, w), 0.76, np.float32)
    color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    want_h, want_c = reference(color, depth, K, T)
    got_h, got_c, _ = hm.project_frame(color, depth, K, T, WS)
    np.testing.assert_array_equal(got_h, want_h)
    np.testing.assert_array_equal(got_c, want_c)


def test_depth_zero_lands_on_the_camera_centre_when_it_is_inside_the_bounds():
    """The reference back-projects depth 0 to the camera centre; inside the box that point counts."""
    rng = np.random.default_rng(3)
    color, depth, K = random_frame(rng)
    T = random_camera(rng)
    T[:3, 3] = [0.5, 0.0, 0.2]  # camera inside the workspace box
    want_h, want_c = reference(color, depth, K, T)
    got_h, got_c, _ = hm.project_frame(color, depth, K, T, WS)
    np.testing.assert_array_equal(got_h, want_h)
    np.testing.assert_array_equal(got_c, want_c)


def test_fusion_of_three_cameras_matches_reference():
    rng = np.random.default_rng(11)
    frames = [(*random_frame(rng)[:2], random_frame(rng)[2], random_camera(rng)) for _ in range(3)]
    frames = [(c, d, K, T) for (c, d, K, T) in frames]
    want_h, want_c = ref.fused(*zip(*frames), WS.bounds, WS.pixel_size)
    obs = project_frames(frames, WS)
    np.testing.assert_array_equal(obs.height, want_h)
    np.testing.assert_array_equal(obs.color, want_c)


def test_custom_workspace_matches_reference():
    rng = np.random.default_rng(5)
    ws = Workspace([[0.1, 0.6], [-0.4, 0.4], [-0.05, 0.3]], 0.004)
    color, depth, K = random_frame(rng)
    T = random_camera(rng)
    want_h, want_c = reference(color, depth, K, T, ws)
    got_h, got_c, _ = hm.project_frame(color, depth, K, T, ws)
    assert got_h.shape == ws.shape == (200, 125)
    np.testing.assert_array_equal(got_h, want_h)
    np.testing.assert_array_equal(got_c, want_c)


def brute_force(points, colors, ws):
    """One point at a time: a point replaces a cell's content when it is strictly higher."""
    rows, cols = ws.shape
    height = np.zeros((rows, cols), np.float32)
    color = np.zeros((rows, cols, 3), np.uint8)
    best = np.full((rows, cols), -np.inf)
    b, s = ws.bounds, ws.pixel_size
    for p, c in zip(points.reshape(-1, 3), colors.reshape(-1, 3)):
        if not all(b[i, 0] <= p[i] < b[i, 1] for i in range(3)):
            continue
        col = min(int(np.floor((p[0] - b[0, 0]) / s)), cols - 1)
        row = min(int(np.floor((p[1] - b[1, 0]) / s)), rows - 1)
        if p[2] > best[row, col]:
            best[row, col] = p[2]
            height[row, col] = p[2] - b[2, 0]
            color[row, col] = c
    return height, color


@pytest.mark.parametrize("seed", range(3))
def test_random_cloud_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    lo, hi = WS.bounds[:, 0] - 0.05, WS.bounds[:, 1] + 0.05
    points = rng.uniform(lo, hi, (n, 3)).astype(np.float32)
    points[: n // 4, :2] = rng.uniform(WS.bounds[:2, 0], WS.bounds[:2, 0] + 0.01, (n // 4, 2))  # crowd a few cells
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    want_h, want_c = brute_force(points, colors, WS)
    got_h, got_c = hm.heightmap_from_points(points, colors, WS)
    np.testing.assert_array_equal(got_h, want_h)
    np.testing.assert_array_equal(got_c, want_c)


def test_camera_points_and_transform_match_reference():
    rng = np.random.default_rng(1)
    color, depth, K = random_frame(rng)
    T = random_camera(rng)
    cam = hm.camera_points(depth, K)
    np.testing.assert_array_equal(cam, ref.pointcloud(depth, K))
    before = cam.copy()
    np.testing.assert_array_equal(hm.transform_points(cam, T), ref.transform(cam, T))
    np.testing.assert_array_equal(cam, before)  # unlike the reference, the input is left alone


pixels = st.tuples(st.integers(0, WS.shape[0] - 1), st.integers(0, WS.shape[1] - 1))


@given(pixels)
def test_xyz_to_pix_inverts_pix_to_xyz(pixel):
    assert WS.xyz_to_pix(WS.pix_to_xyz(pixel)) == pixel


@given(st.floats(0.25, 0.75 - 1e-6), st.floats(-0.5, 0.5 - 1e-6))
def test_pix_to_xyz_is_within_half_a_pixel(x, y):
    u, v = WS.xyz_to_pix((x, y, 0.0))
    px, py, _ = WS.pix_to_xyz((u, v))
    assert abs(px - x) <= WS.pixel_size / 2 + 1e-12
    assert abs(py - y) <= WS.pixel_size / 2 + 1e-12


@given(pixels, st.floats(0.0, 0.27))
def test_a_point_at_a_cell_corner_projects_into_that_cell(pixel, z):
    """Binning floors while pix_to_xyz returns the cell corner: corner + a quarter pixel is in the cell."""
    x, y, _ = WS.pix_to_xyz(pixel)
    q = WS.pixel_size / 4
    point = np.array([[x + q, y + q, z]], np.float32)
    height, color = hm.heightmap_from_points(point, np.array([[9, 9, 9]], np.uint8), WS)
    assert tuple(np.argwhere(color[..., 0] == 9)[0]) == pixel
    assert height[pixel] == pytest.approx(float(np.float32(z)))


@given(pixels)
def test_pix_to_xyz_reads_height_at_that_pixel(pixel):
    height = np.arange(WS.shape[0] * WS.shape[1], dtype=np.float32).reshape(WS.shape) * 1e-6
    assert WS.pix_to_xyz(pixel, height)[2] == pytest.approx(WS.bounds[2, 0] + height[pixel])


def test_policy_input_layout():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (320, 160, 3), dtype=np.uint8)
    height = rng.uniform(0, 0.2, (320, 160)).astype(np.float32)
    image = policy_input(HeightmapObservation(color, height))
    assert image.shape == (320, 160, 6) and image.dtype == np.float32
    np.testing.assert_array_equal(image[..., :3], color)
    for c in (3, 4, 5):
        np.testing.assert_array_equal(image[..., c], height)
    back = hm.observation_from_policy_input(image)
    np.testing.assert_array_equal(back.color, color)
    np.testing.assert_array_equal(back.height, height)


def test_sample_scene_heights_are_the_box_tops():
    from sim2real import sample_scene

    obs = project_frames([sample_scene.render()], WS)
    for box in sample_scene.DEFAULT_BOXES:
        row, col = WS.xyz_to_pix(box.center)
        top = box.center[2] + box.size[2] / 2
        assert obs.height[row, col] == pytest.approx(top, abs=1e-5)
        np.testing.assert_array_equal(obs.color[row, col], box.color)
    table = WS.xyz_to_pix((0.3, -0.4, 0))
    assert obs.height[table] == pytest.approx(sample_scene.TABLE_Z, abs=1e-6)
