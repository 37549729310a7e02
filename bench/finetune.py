"""Fine-tuning speed: ``sim2real.training`` vs a plain re-implementation of GenSim's step.

Both run GenSim's training step on the same random-weight checkpoint and the same samples, in
the same process, alternating, and must give the same losses (printed). The plain baseline does
what GenSim's code does on every step: the goal encoded by each CLIP copy on every forward, all
36 full 384x224 rotations computed before the query crops are cut, and the correlation of every
key with every batch element's kernels (only the diagonal blocks are read). Ours: text features
cached per goal, only the 36 64x64 windows sampled, one correlation per batch element.

    python bench/finetune.py [--steps 2] [--batch-size 1] [--clip-precision float16] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def plain_transport_logits(agent, img, p0, goals):
    """GenSim's ``TwoStreamTransportLangFusionLat.forward`` as written (full rotations, full correlation)."""
    import torch
    import torch.nn.functional as F

    from sim2real.action import N_ROTATIONS
    from sim2real.policy.rotation import rotate, rotation_angles
    from sim2real.policy.transporter import PAD

    tr = agent.transport
    padded = F.pad(img, (0, 0, PAD, PAD, PAD, PAD), mode="constant")
    images, crops = [], []
    for i in range(padded.shape[0]):
        one = padded[[i]].permute(0, 3, 1, 2)
        pv = (int(p0[i, 0]) + PAD, int(p0[i, 1]) + PAD)
        rot = rotate(one, rotation_angles(N_ROTATIONS), pv, tr.rotation)
        images.append(one)
        crops.append(rot[:, :, pv[0] - PAD:pv[0] + PAD, pv[1] - PAD:pv[1] + PAD])
    agent._text_cache.clear()  # GenSim encodes the goal on every forward
    key = tr.key(torch.cat(images, dim=0), agent.text_features("key", goals))
    query = tr.query(torch.cat(crops, dim=0), agent.text_features("query", goals))
    out = F.conv2d(key, query, padding=(PAD, PAD))
    out = F.interpolate(out, size=(key.shape[-2], key.shape[-1]), mode="bilinear")[:, :, PAD:-PAD, PAD:-PAD]
    n = query.shape[0] // key.shape[0]
    return torch.stack([out[i, i * n:(i + 1) * n] for i in range(out.shape[0])], dim=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--clip-precision", choices=("float16", "float32"), default="float16")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint", help="checkpoint to use (default: a random-weight GenSim one)")
    args = ap.parse_args()

    import torch

    from sim2real.policy.checkpoint import load_checkpoint
    from sim2real.policy.random_checkpoint import write_random_checkpoint
    from sim2real.training import step as S
    from sim2real.training.model import TrainingAgent

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint or write_random_checkpoint(Path(tmp.name) / "random.ckpt", "gensim", seed=0)
    loaded = load_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    samples = []
    for k in range(args.steps * args.batch_size):
        img = np.concatenate([rng.integers(0, 255, (320, 160, 3)), np.repeat(rng.uniform(0, 0.1, (320, 160, 1)), 3, 2)], 2)
        samples.append({"img": img.astype(np.float32), "p0": rng.integers(0, (320, 160)), "p0_theta": 0,
                        "p1": rng.integers(0, (320, 160)), "p1_theta": np.float32(rng.uniform(-3, 3)),
                        "lang_goal": "put the red block in the green bowl"})
    agents = {name: TrainingAgent(loaded, device=args.device, clip_precision=args.clip_precision)
              for name in ("plain", "ours")}
    opts = {name: S.make_optimizers(a, 1e-4) for name, a in agents.items()}
    times = {"plain": [], "ours": []}
    losses = {"plain": [], "ours": []}
    original = S.transport_logits
    for k in range(args.steps):
        batch = S.collate(samples[k * args.batch_size:(k + 1) * args.batch_size], args.device)
        for name in ("plain", "ours"):
            S.transport_logits = plain_transport_logits if name == "plain" else original
            if name == "plain":
                agents[name]._text_cache.clear()
            t = time.perf_counter()
            losses[name].append(S.train_step(agents[name], opts[name], batch))
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
            print(f"step {k + 1} {name:5s}: {times[name][-1]:7.2f} s  losses {losses[name][-1]}", flush=True)
    S.transport_logits = original
    same = losses["plain"] == losses["ours"]
    tp, to = np.mean(times["plain"]), np.mean(times["ours"])
    print(f"\nbatch {args.batch_size}, CLIP {args.clip_precision}, {torch.get_num_threads()} threads, {args.device}")
    print(f"plain GenSim step: {tp:.2f} s/step ({1 / tp:.4f} steps/s)")
    print(f"sim2real.training: {to:.2f} s/step ({1 / to:.4f} steps/s)   ratio {tp / to:.2f}x")
    print(f"identical losses: {same}")


if __name__ == "__main__":
    main()
