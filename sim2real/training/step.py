"""GenSim's training step, pure: a batch of samples -> losses -> one Adam step per module.

Follows ``cliport/agents/transporter.py`` (``training_step``, ``attn_training_step``,
``attn_criterion``, ``transport_training_step``, ``transport_criterion``,
``cross_entropy_with_logits``) and the two-stream lateral modules' ``forward`` for a batch:

* attention: the (B, 320, 160, 6) batch zero-padded to 320x320, rotated by 0 degrees about
  (160, 160) (a resampling, kept for its bits), both streams, ``add``, rotated back, cropped:
  logits (B, 1, 320, 160); label one-hot at (p0, rotation 0);
* transport: padded by 32, key = both streams on the padded images, query = both streams on the
  36 rotated 64x64 crops around each p0 (one batch of B*36), correlation, (B, 36, 320, 160);
  label one-hot at (clamp(p1), bin(p1_theta));
* loss: ``-label * log_softmax`` over the flattened map, **mean over all B*R*H*W elements**;
* attention: backward, Adam step, zero_grad; transport: zero_grad, backward, Adam step
  (two ``torch.optim.Adam(module.parameters(), lr)``; CLIP gets no gradient, so excluding its
  parameters from the optimiser changes nothing).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sim2real.action import N_ROTATIONS
from sim2real.policy.rotation import rotate, rotated_windows, rotation_angles
from sim2real.policy.transporter import PAD
from sim2real.training.model import TrainingAgent
from sim2real.training.sample import rotation_bin


def collate(samples: Sequence[dict], device) -> dict:
    """Stack samples as ``default_collate`` does: img (B,320,160,6) float32, p0/p1 (B,2) int64,
    p1_theta (B,) float32, lang_goal list of str."""
    return {"img": torch.from_numpy(np.stack([s["img"] for s in samples]).astype(np.float32)).to(device),
            "p0": torch.from_numpy(np.stack([s["p0"] for s in samples]).astype(np.int64)),
            "p1": torch.from_numpy(np.stack([s["p1"] for s in samples]).astype(np.int64)),
            "p1_theta": torch.from_numpy(np.stack([s["p1_theta"] for s in samples]).astype(np.float32)),
            "lang_goal": [s["lang_goal"] for s in samples]}


# ------------------------------------------------------------------------------ forward passes
def attention_logits(agent: TrainingAgent, img: torch.Tensor, goals) -> torch.Tensor:
    """(B, 320, 160, 6) -> (B, 1, 320, 160) pick logits, the reference's batch forward."""
    att = agent.attention
    h, w = img.shape[1:3]
    pr, pc = (max(h, w) - h) // 2, (max(h, w) - w) // 2  # (0, 80) for GenSim's 320x160
    x = F.pad(img, (0, 0, pc, pc, pr, pr), mode="constant")
    pivot = (x.shape[1] // 2, x.shape[2] // 2)
    x = x.permute(0, 3, 1, 2)
    if agent.family == "cliport":
        x = x.repeat(1, 1, 1, 1)
    b = x.shape[0]
    x = rotate(x, [0.0] * b, pivot, att.rotation)
    lang = agent.text_features("attention", goals)
    x1, lat = att.attn_stream_one(x)
    logits = x1 + att.attn_stream_two(x, lat, lang)
    logits = rotate(logits, [-0.0] * b, pivot, att.rotation)
    logits = logits[:, :, pr:pr + h, pc:pc + w]
    return logits.reshape(len(logits), -1).view(logits.shape)  # contiguous, as the reference's output


def transport_logits(agent: TrainingAgent, img: torch.Tensor, p0: torch.Tensor, goals) -> torch.Tensor:
    """(B, 320, 160, 6), pick pixels (B, 2) -> (B, 36, 320, 160) place logits."""
    tr = agent.transport
    padded = F.pad(img, (0, 0, PAD, PAD, PAD, PAD), mode="constant")
    images, crops = [], []
    angles = rotation_angles(N_ROTATIONS)
    for i in range(padded.shape[0]):
        one = padded[[i]].permute(0, 3, 1, 2)  # channels-last view, as the reference
        pv = (int(p0[i, 0]) + PAD, int(p0[i, 1]) + PAD)
        rows, cols = slice(pv[0] - PAD, pv[0] + PAD), slice(pv[1] - PAD, pv[1] + PAD)
        images.append(one)
        crops.append(rotated_windows(one, angles, pv, rows, cols, tr.rotation))  # only the windows
    key = tr.key(torch.cat(images, dim=0), agent.text_features("key", goals))
    query = tr.query(torch.cat(crops, dim=0), agent.text_features("query", goals))
    # The reference correlates every key with all B*36 kernels and keeps the diagonal blocks;
    # correlating each key with its own 36 kernels computes exactly those blocks (the same call
    # as the reference's when B = 1) and skips the B*(B-1)*36 maps nobody reads.
    n = query.shape[0] // key.shape[0]
    out = torch.cat([F.conv2d(key[i:i + 1], query[i * n:(i + 1) * n], padding=(PAD, PAD))
                     for i in range(key.shape[0])], dim=0)
    out = F.interpolate(out, size=(key.shape[-2], key.shape[-1]), mode="bilinear")
    return out[:, :, PAD:-PAD, PAD:-PAD].contiguous()


# ------------------------------------------------------------------------------ losses
def cross_entropy_with_logits(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """GenSim's loss: ``-labels * log_softmax`` over each flattened map, mean over every element."""
    b = len(labels)
    return (-labels.view(b, -1) * F.log_softmax(pred.view(b, -1), -1)).mean()


def pick_labels(p0: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) one-hot at each p0 (rotation bin 0: the pick angle is discarded)."""
    label = torch.zeros(like.shape[0], like.shape[2], like.shape[3], 1, dtype=torch.float, device=like.device)
    for i, p in enumerate(p0):
        label[i, int(p[0]), int(p[1]), 0] = 1
    return label.permute((0, 3, 1, 2)).contiguous()


def place_labels(p1: torch.Tensor, p1_theta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, 36, H, W) one-hot at (clamped p1, rotation bin of p1_theta)."""
    b, n, h, w = like.shape
    label = torch.zeros(b, h, w, n, dtype=torch.float, device=like.device)
    for i in range(b):
        r = int(torch.clamp(p1[i, 0], 0, h - 1))
        c = int(torch.clamp(p1[i, 1], 0, w - 1))
        label[i, r, c, rotation_bin(float(p1_theta[i]), n)] = 1
    return label.permute((0, 3, 1, 2)).contiguous()


# ------------------------------------------------------------------------------ optimisers & step
def make_optimizers(agent: TrainingAgent, lr: float) -> dict:
    """One Adam per module (``_optimizers`` of GenSim's agent), default betas/eps."""
    return {"attn": torch.optim.Adam(agent.attention.parameters(), lr=lr),
            "trans": torch.optim.Adam(agent.transport.parameters(), lr=lr)}


def train_step(agent: TrainingAgent, optimizers: dict, batch: dict, transport: bool = True) -> tuple[float, float]:
    """One GenSim ``training_step`` on a collated batch; returns (attention loss, transport loss)
    of the batch before the update. ``transport=False`` trains the pick module alone (a cheaper
    CPU demonstration; the transport loss is then NaN)."""
    agent.train()
    img, goals = batch["img"], batch["lang_goal"]
    pick = attention_logits(agent, img, goals)
    attn_loss = cross_entropy_with_logits(pick, pick_labels(batch["p0"], pick))
    attn_loss.backward()
    optimizers["attn"].step()
    optimizers["attn"].zero_grad()

    if not transport:
        return float(attn_loss.detach()), float("nan")
    place = transport_logits(agent, img, batch["p0"], goals)
    trans_loss = cross_entropy_with_logits(place, place_labels(batch["p1"], batch["p1_theta"], place))
    optimizers["trans"].zero_grad()
    trans_loss.backward()
    optimizers["trans"].step()
    return float(attn_loss.detach()), float(trans_loss.detach())
