"""Policy: checkpoint safety and family detection, rotation numerics, act() and `sim2real act`.

Random-weight checkpoints of both families are written once per session from the key specs
(test/ckpt_factory.py); nothing is downloaded.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ckpt_factory import build_state_dict, load_spec, make_checkpoint, save_checkpoint, scene_image  # noqa: E402

from sim2real.cli import main as cli_main  # noqa: E402
from sim2real.errors import CheckpointError, InputError  # noqa: E402
from sim2real.policy import (CheckpointFamilyError, NonFiniteWeightsError, Policy,  # noqa: E402
                             TruncatedCheckpointError, UnsafeCheckpointError, detect_family, load_checkpoint)
from sim2real.policy import rotation as R  # noqa: E402
from sim2real.policy.checkpoint import check_values, expected_entries  # noqa: E402

GOAL = "put the red block in the green bowl"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return {"gensim": make_checkpoint(d / "gensim.ckpt", "gensim", seed=1),
            "cliport": make_checkpoint(d / "cliport.ckpt", "cliport", seed=2)}


@pytest.fixture(scope="session")
def gensim_policy(ckpts):
    # float16-emulated keeps the suite fast; the exact float16 path is what ReferencePolicy runs
    return Policy.from_checkpoint(ckpts["gensim"], batchnorm="batch", clip_precision="float16-emulated")


@pytest.fixture(scope="session")
def image():
    """A (320,160,6) scene: coloured boxes with heights on a grey table."""
    return scene_image(7)


def _meta_state(family):
    return {k: torch.empty(s, dtype=getattr(torch, d), device="meta") for k, s, d in load_spec(family)}


# ------------------------------------------------------------------------------ specs & family
@pytest.mark.parametrize("family", ["gensim", "cliport"])
def test_model_definition_matches_key_spec(family):
    exp = expected_entries(family)
    spec = load_spec(family)
    assert {k for k, _, _ in spec} == set(exp)
    for k, shape, dtype in spec:
        assert exp[k][0] == shape, k
        assert str(exp[k][1]) == f"torch.{dtype}", k


@pytest.mark.parametrize("family", ["gensim", "cliport"])
def test_detect_family_from_keys_and_shapes(family):
    assert detect_family(_meta_state(family)) == family


def test_detect_family_lists_missing_and_unexpected_keys():
    state = _meta_state("gensim")
    del state["transport.fusion_key.conv.1.weight"]
    state["transport.extra_head.weight"] = torch.empty(3, device="meta")
    with pytest.raises(CheckpointFamilyError) as e:
        detect_family(state)
    msg = str(e.value)
    assert "transport.fusion_key.conv.1.weight" in msg and "transport.extra_head.weight" in msg
    assert "nearest is GenSim" in msg


def test_families_do_not_load_into_each_other():
    """A cliport checkpoint with GenSim's conv1 shapes is neither family; wrong shapes are named."""
    state = _meta_state("cliport")
    state["attention.attn_stream_two.conv1.0.weight"] = torch.empty(256, 2048, 3, 3, device="meta")
    with pytest.raises(CheckpointFamilyError) as e:
        detect_family(state)
    assert "attention.attn_stream_two.conv1.0.weight (256, 2048, 3, 3)" in str(e.value)
    assert "nearest is CLIPort" in str(e.value)


def test_nan_weights_are_refused():
    state = {"attention.attn_stream_one.conv1.0.weight": torch.full((64, 6, 3, 3), float("nan")),
             "transport.fusion_key.conv.1.weight": torch.ones(3, 6, 1, 1)}
    with pytest.raises(NonFiniteWeightsError, match="attention.attn_stream_one.conv1.0.weight"):
        check_values(state, "gensim")
    state["attention.attn_stream_one.conv1.0.weight"] = torch.ones(64, 6, 3, 3)
    state["transport.fusion_key.conv.1.weight"][0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteWeightsError, match="fusion_key"):
        check_values(state, "gensim")


# ------------------------------------------------------------------------------ file safety
class Evil:  # a custom class pickled into a checkpoint: weights_only must refuse it
    def __init__(self):
        self.note = "callback state"


def test_pickled_objects_are_refused_unless_trusted(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2), "cb": Evil()}}, path)  # (outside the state_dict: loaded inertly)
    with pytest.raises(UnsafeCheckpointError, match="--trust-checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not tensors"):  # trusted: it unpickles, then fails on its entries
        load_checkpoint(path, trust=True)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "small.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedCheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(TruncatedCheckpointError):
        load_checkpoint(tmp_path / "text.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    assert issubclass(TruncatedCheckpointError, CheckpointError)


# ------------------------------------------------------------------------------ rotation
@pytest.mark.parametrize("convention", R.CONVENTIONS)
def test_windows_equal_full_rotation_then_crop(convention):
    x = torch.randn(1, 6, 96, 64) * 40
    angles = R.rotation_angles(36)
    pv = (40, 30)
    full = R.rotate(x, angles, pv, convention)[:, :, pv[0] - 8:pv[0] + 8, pv[1] - 8:pv[1] + 8]
    win = R.rotated_windows(x, angles, pv, slice(pv[0] - 8, pv[0] + 8), slice(pv[1] - 8, pv[1] + 8), convention)
    assert torch.equal(full, win)


def test_rotation_direction_and_pivot():
    """kornia-0.5+ (align_corners=True): 90 degrees about the centre pixel = counter-clockwise rot90."""
    x = torch.arange(49, dtype=torch.float32).reshape(1, 1, 7, 7)
    out = R.rotate(x, [90.0], (3, 3), R.KORNIA_0_5)
    assert torch.allclose(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-4)
    assert torch.allclose(R.rotate(x, [0.0], (3, 3), R.KORNIA_0_5), x, atol=1e-5)
    # off-centre pivot: kornia 0.4's align_corners=False mixes in a slight rescale, 0.5+ does not
    a, b = (R.rotate(x, [90.0], (2, 2), c) for c in (R.KORNIA_0_5, R.KORNIA_0_4))
    assert a[0, 0, 2, 2] == pytest.approx(16.0, abs=1e-4)  # the pivot stays put
    assert not torch.allclose(a, b, atol=1e-2)


# ------------------------------------------------------------------------------ full networks
def test_loaded_policy_shares_identical_clip_copies(gensim_policy):
    assert gensim_policy.family == "gensim"
    assert gensim_policy.shared_clip == {"visual_trunks": 1, "text_encoders": 1}


def test_clip_copies_that_differ_are_kept_apart_but_share_equal_tensors(ckpts):
    """BN running stats that moved during training make the copies differ: separate trunks,
    but every tensor that is equal is still stored once."""
    from sim2real.policy.checkpoint import LoadedCheckpoint

    ck = load_checkpoint(ckpts["gensim"])
    state = dict(ck.state_dict)
    for prefix in ("transport.key_stream_two.clip_rn50.", "transport.query_stream_two.clip_rn50."):
        k = prefix + "visual.layer1.0.bn1.running_mean"
        state[k] = state[k] + (0.01 if "key" in prefix else 0.02)
    pol = Policy.from_loaded(LoadedCheckpoint(ck.path, ck.family, state), clip_precision="float32")
    assert pol.shared_clip == {"visual_trunks": 3, "text_encoders": 1}
    a = pol.attention.attn_stream_two.clip_trunk.visual
    k = pol.transport.key_stream_two.clip_trunk.visual
    assert a is not k
    assert a.layer1[0].conv1.weight.data_ptr() == k.layer1[0].conv1.weight.data_ptr()  # stored once
    assert not torch.equal(a.layer1[0].bn1.running_mean, k.layer1[0].bn1.running_mean)


def test_act_shapes_dtypes_and_poses(gensim_policy, image):
    a = gensim_policy.act(image, GOAL)
    assert a.pick_logits.shape == (320, 160) and a.pick_logits.dtype == np.float32
    assert a.place_logits.shape == (36, 320, 160) and a.place_logits.dtype == np.float32
    assert np.isfinite(a.pick_logits).all() and np.isfinite(a.place_logits).all()
    r, c = a.pick.pixel
    assert (r, c) == np.unravel_index(np.argmax(a.pick_logits), (320, 160))
    k = a.info["place_rotation_bin"]
    assert a.place.theta == pytest.approx(k * 2 * np.pi / 36)
    assert a.place_logits[k, a.place.pixel[0], a.place.pixel[1]] == a.place_logits.max()
    pr, pc = a.place.pixel
    assert a.place.xyz[2] == pytest.approx(image[pr, pc, 3])
    assert a.place.xyz[0] == pytest.approx(0.25 + pc * 0.003125)
    assert a.place.xyz[1] == pytest.approx(-0.5 + pr * 0.003125)
    # quaternion of Euler (0, 0, -theta)
    assert a.place.quat_xyzw[2] == pytest.approx(-np.sin(a.place.theta / 2), abs=1e-9)
    assert a.place.quat_xyzw[3] == pytest.approx(np.cos(a.place.theta / 2), abs=1e-9)
    assert a.pick.theta == 0.0


def test_act_is_deterministic_and_modes_differ(gensim_policy, image):
    bn = gensim_policy.attention.attn_stream_two.up3.conv.double_conv[1]
    before = bn.running_mean.clone()
    p1 = gensim_policy.pick_logits(image, GOAL)
    p2 = gensim_policy.pick_logits(image, GOAL)
    assert torch.equal(p1, p2)
    assert torch.equal(bn.running_mean, before)  # batch statistics never touch the buffers
    gensim_policy.set_batchnorm("running")
    try:
        p3 = gensim_policy.pick_logits(image, GOAL)
    finally:
        gensim_policy.set_batchnorm("batch")
    assert not torch.allclose(p1, p3)


def test_goal_changes_output_and_text_cache(gensim_policy, image):
    other = gensim_policy.pick_logits(image, "stack the blue blocks")
    assert not torch.equal(other, gensim_policy.pick_logits(image, GOAL))
    f1 = gensim_policy.text_features(GOAL)
    assert f1 is gensim_policy.text_features(GOAL, "query")  # one encoder, one cached feature
    assert f1.shape == (1, 1024) and f1.dtype == torch.float16


def test_fast_path_equals_plain_reference_algorithm(ckpts, gensim_policy, image):
    """Shared CLIP, text cache, windowed crops, the key-map thread and inference mode do not
    change a single bit (both sides with float16-emulated CLIP here to keep the test fast)."""
    from sim2real.policy.reference import ReferencePolicy

    ref = ReferencePolicy(ckpts["gensim"], batchnorm="batch", clip_precision="float16-emulated")
    ref_act = ref.act(image, GOAL)
    act = gensim_policy.act(image, GOAL)
    assert np.array_equal(act.pick_logits, ref_act["pick_logits"])
    assert np.array_equal(act.place_logits, ref_act["place_logits"])
    assert act.pick.pixel == ref_act["pick"] and (*act.place.pixel, act.info["place_rotation_bin"]) == ref_act["place"]
    p0 = (150, 70)
    assert torch.equal(gensim_policy.place_logits(image, GOAL, p0), ref.place_logits(image, GOAL, p0).detach())


@pytest.mark.slow
def test_default_float16_policy_is_bit_identical_to_reference(ckpts, image):
    """The default (exact float16 CLIP, key map in a second thread) against the plain reference
    algorithm, which matched the real GenSim code bit for bit (bench/RESULTS_policy.md)."""
    from sim2real.policy.reference import ReferencePolicy

    pol = Policy.from_checkpoint(ckpts["gensim"])
    assert pol.clip_precision == "float16" and pol.batchnorm == "batch"
    act = pol.act(image, GOAL)
    ref = ReferencePolicy(ckpts["gensim"], batchnorm="batch").act(image, GOAL)
    assert np.array_equal(act.pick_logits, ref["pick_logits"])
    assert np.array_equal(act.place_logits, ref["place_logits"])
    assert act.pick.pixel == ref["pick"] and (*act.place.pixel, act.info["place_rotation_bin"]) == ref["place"]


def test_bad_inputs(gensim_policy, image):
    with pytest.raises(InputError, match="outside"):
        gensim_policy.place_logits(image, GOAL, (320, 5))
    with pytest.raises(InputError, match=r"\(320, 160, 6\)"):
        gensim_policy.act(image[:, :100], GOAL)
    bad = image.copy()
    bad[0, 0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        gensim_policy.act(bad, GOAL)
    with pytest.raises(InputError, match="goal"):
        gensim_policy.act(image, "   ")
    with pytest.raises(InputError, match="batchnorm"):
        gensim_policy.set_batchnorm("train")


# ------------------------------------------------------------------------------ CLI
def _run_cli(argv, capsys):
    rc = cli_main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_image_layout_maps_and_png(ckpts, image, tmp_path, capsys):
    obs = tmp_path / "obs.npz"
    np.savez(obs, image=image)
    maps, png = tmp_path / "maps.npz", tmp_path / "aff.png"
    rc, out, err = _run_cli(["act", "--checkpoint", str(ckpts["gensim"]), "--observation", str(obs), "--goal", GOAL,
                             "--save-maps", str(maps), "--png", str(png), "--clip-precision", "float16-emulated"],
                            capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert set(res) == {"pick", "place"}
    assert set(res["place"]) == {"pixel", "theta", "xyz", "quat_xyzw"}
    m = np.load(maps)
    assert m["pick_logits"].shape == (320, 160) and m["pick_logits"].dtype == np.float32
    assert m["place_logits"].shape == (36, 320, 160) and m["place_logits"].dtype == np.float32
    assert list(np.unravel_index(np.argmax(m["pick_logits"]), (320, 160))) == res["pick"]["pixel"]
    k = int(round(res["place"]["theta"] / (2 * np.pi / 36)))
    assert m["place_logits"][k, res["place"]["pixel"][0], res["place"]["pixel"][1]] == m["place_logits"].max()
    assert png.stat().st_size > 10_000


def test_cli_heightmap_layout_p0_and_running_mode(ckpts, image, tmp_path, capsys):
    obs = tmp_path / "hm.npz"
    np.savez(obs, color=image[:, :, :3].astype(np.uint8), height=image[:, :, 3].copy())
    maps = tmp_path / "maps.npz"
    rc, out, err = _run_cli(["act", "--checkpoint", str(ckpts["cliport"]), "--observation", str(obs), "--goal", GOAL,
                             "--batchnorm", "running", "--p0", "100,40", "--save-maps", str(maps),
                             "--clip-precision", "float16-emulated"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["pick"]["pixel"] == [100, 40]  # the transport was conditioned on --p0
    assert res["pick"]["xyz"][2] == pytest.approx(float(image[100, 40, 3]))
    place = np.load(maps)["place_logits"]
    assert place.shape == (36, 320, 160) and np.isfinite(place).all()


def test_cli_bad_checkpoint_and_observation_exit_2(tmp_path, image, capsys):
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2), "cb": Evil()}}, evil)
    obs = tmp_path / "obs.npz"
    np.savez(obs, image=image)
    rc, _, err = _run_cli(["act", "--checkpoint", str(evil), "--observation", str(obs), "--goal", GOAL], capsys)
    assert rc == 2 and "--trust-checkpoint" in err
    bad_obs = tmp_path / "bad.npz"
    np.savez(bad_obs, depth=np.zeros((4, 4)))
    rc, _, err = _run_cli(["act", "--checkpoint", str(evil), "--observation", str(bad_obs), "--goal", GOAL], capsys)
    assert rc == 2 and "color" in err
    rc, _, err = _run_cli(["act", "--checkpoint", str(evil), "--observation", str(obs), "--goal", GOAL,
                           "--p0", "3"], capsys)
    assert rc == 2 and "ROW,COL" in err


def test_cli_nan_checkpoint_exit_2(tmp_path, image, capsys):
    state = build_state_dict("gensim", seed=4)
    state["transport.query_stream_one.conv1.0.bias"][3] = float("nan")
    path = save_checkpoint(tmp_path / "nan.ckpt", state)
    del state
    obs = tmp_path / "obs.npz"
    np.savez(obs, image=image)
    rc, _, err = _run_cli(["act", "--checkpoint", str(path), "--observation", str(obs), "--goal", GOAL], capsys)
    assert rc == 2 and "NaN" in err and "query_stream_one.conv1.0.bias" in err
