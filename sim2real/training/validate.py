"""Held-out error of the model being trained, as GenSim's ``validation_step`` measures it.

Every non-final step of every held-out episode, without augmentation, with the modules in eval
mode (running BatchNorm statistics, as ``validation_step`` sets them): the pick argmax of the
attention map against the demonstrated pick pixel; the place argmax over (row, col, rotation)
of the transport map *conditioned on the demonstrated pick* against the demonstrated place.
Errors are Euclidean pixel distances in millimetres (GenSim logs L1 pixel distances); the
rotation accuracy is the fraction of place argmaxes in the demonstrated rotation bin.
"""
from __future__ import annotations

import numpy as np
import torch

from sim2real.training.sample import make_sample, rotation_bin
from sim2real.workspace import GENSIM_PIXEL_SIZE


def _argmax(logits: torch.Tensor) -> tuple:
    """(row, col[, bin]) of the largest logit of a (R, H, W) map, read in (H, W, R) order as GenSim."""
    conf = logits.permute(1, 2, 0).detach().cpu().numpy()
    return np.unravel_index(np.argmax(conf), conf.shape)


def validate(agent, sources, pixel_size: float = GENSIM_PIXEL_SIZE, transport: bool = True) -> dict:
    """{'pick_err_mm', 'place_err_mm', 'rot_acc', 'n_val'} over every held-out step (place fields
    NaN with ``transport=False``)."""
    from sim2real.training.step import attention_logits, collate, transport_logits

    pick_err, place_err, rot_ok = [], [], []
    agent.eval()
    try:
        with torch.no_grad():
            for src in sources:
                for i in range(src.n):
                    episode = src.episode(i)
                    for obs, act, _, info in episode[:-1]:
                        s = make_sample(src.image(obs, info), act, info, "none")
                        b = collate([s], agent.device)
                        r, c, _ = _argmax(attention_logits(agent, b["img"], b["lang_goal"])[0])
                        pick_err.append(np.hypot(r - s["p0"][0], c - s["p0"][1]))
                        if not transport:
                            continue
                        r, c, k = _argmax(transport_logits(agent, b["img"], b["p0"], b["lang_goal"])[0])
                        place_err.append(np.hypot(r - s["p1"][0], c - s["p1"][1]))
                        rot_ok.append(int(k) == rotation_bin(float(s["p1_theta"])))
    finally:
        agent.train()
    mm = pixel_size * 1000.0
    nan = float("nan")
    return {"pick_err_mm": float(np.mean(pick_err)) * mm,
            "place_err_mm": float(np.mean(place_err)) * mm if place_err else nan,
            "rot_acc": float(np.mean(rot_ok)) if rot_ok else nan, "n_val": len(pick_err)}
