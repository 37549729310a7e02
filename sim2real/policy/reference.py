"""The reference algorithm, re-implemented plainly: the baseline of ``bench/policy.py``.

It does what the reference agents do on every decision, without any of :class:`Policy`'s
savings: ``torch.load`` of the whole file (no mmap, no safety checks), three separate CLIP
copies in the checkpoint's float16 (each stream owns one, as in ``CLIPLingUNetLat``), the goal
tokenized and encoded by each stream on each call, autograd left on (the agents' ``act()``
runs without ``no_grad``), and the 36 full rotated 384x224 images computed before cropping.
Its outputs are the reference's (bit-identical to the real code on the same machine), so the
tests also use it as an oracle for :class:`Policy`.
"""
from __future__ import annotations

import numpy as np
import torch

from sim2real.policy.checkpoint import CLIP_PREFIXES
from sim2real.policy.clip_rn50 import TextEncoder, VisualTrunk, clip_state, text_state, visual_state
from sim2real.policy.policy import DEFAULT_ROTATION
from sim2real.policy.rotation import rotate, rotation_angles
from sim2real.policy.transporter import (N_ROTATIONS, PAD, Attention, Transport, correlate,
                                         softmax_argmax_pick, softmax_argmax_place)


class _StreamClip:
    """One stream's own CLIP: trunk + text encoder; ``encode_text`` runs on every call."""

    def __init__(self, state: dict, precision: str = "float16"):
        self.visual = VisualTrunk(precision)
        self.visual.load(visual_state(state))
        self.text = TextEncoder()
        self.text.load(text_state(state))

    def __call__(self, x):
        return self.visual(x)


class ReferencePolicy:
    """Attention + transport computed the reference's way. ``act(img, goal) -> dict``."""

    def __init__(self, path, batchnorm: str = "batch", clip_precision: str = "float16"):
        """``clip_precision`` other than the reference's 'float16' exists for tests only."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt["state_dict"] if "state_dict" in ckpt else ckpt
        family = "cliport" if "attention.attn_stream_one.layer5.0.conv1.weight" in state else "gensim"
        self.family, rotation = family, DEFAULT_ROTATION[family]
        self.attention, self.transport = Attention(family, rotation), Transport(family, rotation)
        for prefix, module in (("attention.", self.attention), ("transport.", self.transport)):
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                    if k.startswith(prefix) and ".clip_rn50." not in k})
        self.clips = {name: _StreamClip(clip_state(state, prefix), clip_precision) for name, prefix in CLIP_PREFIXES.items()}
        self.attention.attn_stream_two.attach(self.clips["attention"])
        self.transport.key_stream_two.attach(self.clips["key"])
        self.transport.query_stream_two.attach(self.clips["query"])
        for stream in (self.attention.attn_stream_two, self.transport.key_stream_two,
                       self.transport.query_stream_two):
            stream.set_batch_stats(batchnorm == "batch")
        self.rotation = rotation

    def pick_logits(self, img: np.ndarray, goal: str) -> torch.Tensor:
        lang = self.clips["attention"].text(goal)
        return self.attention(torch.from_numpy(img), lang)

    def place_logits(self, img: np.ndarray, goal: str, p0) -> torch.Tensor:
        tr = self.transport
        padded = tr.padded(torch.from_numpy(img))
        pv = (int(p0[0]) + PAD, int(p0[1]) + PAD)
        rotated = rotate(padded, rotation_angles(N_ROTATIONS), pv, self.rotation)  # all 36, full size
        crops = rotated[:, :, pv[0] - PAD:pv[0] + PAD, pv[1] - PAD:pv[1] + PAD]
        key = tr.key(padded, self.clips["key"].text(goal))
        query = tr.query(crops, self.clips["query"].text(goal))
        return correlate(key, query)

    def act(self, img: np.ndarray, goal: str) -> dict:
        pick_logits = self.pick_logits(img, goal)
        p0 = softmax_argmax_pick(pick_logits)
        place_logits = self.place_logits(img, goal, p0)
        return {"pick": p0, "place": softmax_argmax_place(place_logits),
                "pick_logits": pick_logits.detach().numpy(), "place_logits": place_logits.detach().numpy()}


__all__ = ["ReferencePolicy"]
