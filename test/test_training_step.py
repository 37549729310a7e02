"""Fine-tuning: GenSim's training step on tiny synthetic samples, checkpoints, resume, CLI.

Small images (the networks are fully convolutional) and float32 CLIP keep these fast; the exact
float16 step was compared with GenSim's own code outside the suite (docs/finetune.md).
"""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ckpt_factory import make_checkpoint, scene_image  # noqa: E402

from sim2real.cli import main as cli_main  # noqa: E402
from sim2real.policy import Policy  # noqa: E402
from sim2real.policy.checkpoint import CLIP_PREFIXES, load_checkpoint  # noqa: E402
from sim2real.training.loop import EpisodeSource, FinetuneConfig, finetune, lightning_checkpoint  # noqa: E402
from sim2real.training.model import TrainingAgent  # noqa: E402
from sim2real.training.sample import make_sample  # noqa: E402
from sim2real.training.step import (attention_logits, collate, make_optimizers, train_step,  # noqa: E402
                                    transport_logits)

PIX = 0.003125
SMALL = (64, 48)  # the attention input (64x64) still gives CLIP layer4 a 2x2 map (BatchNorm in train mode)


def xyz(row, col):
    """World point whose GenSim pixel is (row, col)."""
    return np.array([0.25 + col * PIX, -0.5 + row * PIX, 0.01])


def quat_z(yaw):
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def small_episode(seed: int, shape=SMALL):
    rng = np.random.default_rng(seed)
    img = scene_image(seed)[:shape[0], :shape[1]].copy()
    entries = []
    for _ in range(2):
        r0, c0, r1, c1 = (int(v) for v in rng.integers(2, min(shape) - 2, 4))
        act = {"pose0": (xyz(r0, c0), quat_z(0.2)), "pose1": (xyz(r1, c1), quat_z(float(rng.uniform(-3, 3))))}
        entries.append(({"img": img}, act, 0.0, {"lang_goal": "put the red block in the green bowl"}))
    entries.append(({"img": img}, None, 1.0, {"lang_goal": "put the red block in the green bowl"}))
    return entries


def small_source(n=2, shape=SMALL):
    eps = [small_episode(10 + i, shape) for i in range(n)]
    return EpisodeSource("synthetic", n, lambda i: eps[i], lambda obs, info: obs["img"])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ft") / "start.ckpt", "gensim", seed=3)


@pytest.fixture(scope="module")
def loaded(ckpt):
    return load_checkpoint(ckpt)


def test_one_step_reduces_both_losses(loaded):
    agent = TrainingAgent(loaded, clip_precision="float32")
    opt = make_optimizers(agent, 1e-4)
    ep = small_episode(1)
    batch = collate([make_sample(ep[0][0]["img"], ep[0][1], ep[0][3])], "cpu")
    first = train_step(agent, opt, batch)
    second = train_step(agent, opt, batch)
    assert np.isfinite(first).all()
    assert second[0] < first[0] and second[1] < first[1]
    # GenSim's reduction: the mean over every map element, about ln(N)/N at the start
    n_pick, n_place = SMALL[0] * SMALL[1], 36 * SMALL[0] * SMALL[1]
    assert first[0] == pytest.approx(-np.log(torch.softmax(torch.zeros(n_pick), 0)[0].item()) / n_pick, rel=0.5)
    assert first[1] > 0  # random weights give peaky place maps (per-map cross-entropy ~1e2 nats here)


def test_step_changes_what_gensim_changes(loaded):
    """Trainable weights move; CLIP weights stay float16 and unchanged; every BatchNorm in train
    mode (CLIP's three copies included) updates its running statistics; keys and dtypes kept."""
    agent = TrainingAgent(loaded, clip_precision="float32")
    opt = make_optimizers(agent, 1e-4)
    ep = small_episode(2)
    train_step(agent, opt, collate([make_sample(ep[0][0]["img"], ep[0][1], ep[0][3])], "cpu"))
    before, after = loaded.state_dict, agent.state_dict_for_checkpoint()
    assert list(after) == list(before)
    assert all(after[k].dtype == before[k].dtype for k in before)
    for prefix in CLIP_PREFIXES.values():
        assert torch.equal(after[prefix + "visual.conv1.weight"], before[prefix + "visual.conv1.weight"])
        assert after[prefix + "visual.conv1.weight"].dtype == torch.float16
        assert not torch.equal(after[prefix + "visual.bn1.running_mean"], before[prefix + "visual.bn1.running_mean"])
        assert int(after[prefix + "visual.bn1.num_batches_tracked"]) == int(before[prefix + "visual.bn1.num_batches_tracked"]) + 1
        assert torch.equal(after[prefix + "token_embedding.weight"], before[prefix + "token_embedding.weight"])
    k = "attention.attn_stream_one.conv1.0.weight"
    assert not torch.equal(after[k], before[k])
    assert (after[k] - before[k]).abs().max() <= 1e-4 * 1.0001  # Adam's first step is at most lr
    unused = "attention.attn_stream_two.lang_proj1.weight"  # GenSim never uses it: no gradient, no update
    assert torch.equal(after[unused], before[unused])
    bn = "attention.attn_stream_two.up3.conv.double_conv.1.running_var"
    assert not torch.equal(after[bn], before[bn])


def test_saved_checkpoint_gives_the_in_memory_logits(loaded, tmp_path):
    agent = TrainingAgent(loaded, clip_precision="float32")
    opt = make_optimizers(agent, 1e-4)
    ep = small_episode(3)
    train_step(agent, opt, collate([make_sample(ep[0][0]["img"], ep[0][1], ep[0][3])], "cpu"))
    path = tmp_path / "last.ckpt"
    torch.save(lightning_checkpoint(agent.state_dict_for_checkpoint(), 1, 0, {}), path)
    policy = Policy.from_checkpoint(path, batchnorm="running", clip_precision="float32")
    img, goal = scene_image(5), "put the red block in the green bowl"
    agent.eval()
    with torch.no_grad():
        b = torch.from_numpy(img)[None]
        pick = attention_logits(agent, b, [goal])[0, 0]
        place = transport_logits(agent, b, torch.tensor([[150, 70]]), [goal])[0]
    assert torch.equal(policy.pick_logits(img, goal), pick)
    assert torch.allclose(policy.place_logits(img, goal, (150, 70)), place, rtol=1e-5, atol=1e-5)


RESUME_SCRIPT = r"""
import sys, time
sys.path.insert(0, {test_dir!r})
from test_training_step import small_source
from sim2real.training.loop import FinetuneConfig, finetune
cfg = FinetuneConfig(checkpoint={ckpt!r}, demos=["synthetic"], out=sys.argv[1], steps=3, batch_size=1,
                     augment="gensim", seed=3, resume=len(sys.argv) > 2, save_every=1, clip_precision="float32",
                     progress=False)
finetune(cfg, sources=[small_source()])
"""


def _rows(out):
    with open(Path(out) / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["kind"] == "train"]


@pytest.mark.slow
def test_resume_after_kill_continues_identically(ckpt, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(test_dir=str(HERE), ckpt=str(ckpt)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "a")], check=True, env=env, timeout=900)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "b")], env=env)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if (tmp_path / "b" / "metrics.csv").is_file() and len(_rows(tmp_path / "b")) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(_rows(tmp_path / "b"))
    assert 1 <= killed_at < 3
    subprocess.run([sys.executable, str(script), str(tmp_path / "b"), "--resume"], check=True, env=env, timeout=900)
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in rb] == ["1", "2", "3"]
    assert ra == rb
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ CLI
def _camera_demo(root, n=1):
    from sim2real.demos.dataset import save_episode
    from sim2real.workspace import GENSIM_WORKSPACE

    for s in range(n):
        img = scene_image(20 + s)
        obs = {"color": np.zeros((1, 8, 8, 3), np.uint8), "depth": np.zeros((1, 8, 8), np.float32),
               "heightmap_color": img[..., :3].astype(np.uint8), "heightmap_height": img[..., 3].copy(),
               "workspace": GENSIM_WORKSPACE.to_dict()}
        act = {"pose0": (xyz(100 + s, 50), quat_z(0.0)), "pose1": (xyz(200, 90), quat_z(1.0))}
        info = {"lang_goal": "put the red block in the green bowl"}
        save_episode(root, [(obs, act, 0.0, info), (obs, None, 1.0, info)], seed=2 * s)
    return root


@pytest.mark.parametrize("extra, needle", [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "36"], "multiple of 36"),
    (["--lr", "-1"], "--lr"),
])
def test_cli_bad_settings_exit_2(ckpt, tmp_path, capsys, extra, needle):
    demos = _camera_demo(tmp_path / "demos")
    code = cli_main(["finetune", "--checkpoint", str(ckpt), "--demos", str(demos), "--out", str(tmp_path / "o")] + extra)
    assert code == 2
    assert needle in capsys.readouterr().err


def test_cli_missing_inputs_exit_2(ckpt, tmp_path, capsys):
    assert cli_main(["finetune", "--checkpoint", str(ckpt), "--demos", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    demos = _camera_demo(tmp_path / "demos")
    assert cli_main(["finetune", "--checkpoint", str(tmp_path / "x.ckpt"), "--demos", str(demos), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "empty").mkdir()
    assert cli_main(["finetune", "--checkpoint", str(ckpt), "--demos", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "x.ckpt" in err and "missing field" in err
