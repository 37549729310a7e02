"""The ``cliport`` agent's two modules in training form, built from a checkpoint.

Same module classes and keys as :mod:`sim2real.policy` (so the weights load unchanged), with what
GenSim's ``training_step`` has on top of inference:

* every module in train mode (``attention.train(); transport.train()``): the up-sampling
  blocks' BatchNorm layers normalise with batch statistics *and* update their running
  statistics (momentum 0.1, unbiased variance, ``num_batches_tracked`` + 1);
* each of the three CLIP copies (attention, transport key, transport query) keeps its own
  visual trunk, in train mode too: CLIP's BatchNorm layers update their running statistics
  although CLIP is frozen and runs without autograd (``encode_image`` is under ``no_grad``).
  Their statistics diverge, so the copies cannot share a trunk while training (only the frozen
  float16 weights are shared);
* CLIP's weights stay float16 and get no gradient; the text features come from each copy's own
  text tower (frozen, float16), computed once per goal and cached.

``state_dict()`` returns the checkpoint's keys, in its order, with the reference dtypes.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn

from sim2real.policy.checkpoint import CLIP_PREFIXES, LoadedCheckpoint, expected_entries
from sim2real.policy.clip_rn50 import TextEncoder, VisualTrunk, clip_state, text_state, visual_state
from sim2real.policy.networks import BatchNormEval
from sim2real.policy.policy import DEFAULT_ROTATION
from sim2real.policy.transporter import Attention, Transport

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class TrainableVisualTrunk(VisualTrunk):
    """CLIP's visual trunk as the reference trains it: BatchNorm follows ``train()``, no autograd."""

    def train(self, mode: bool = True):
        nn.Module.train(self, mode)
        return self

    def forward(self, x: torch.Tensor):
        with torch.no_grad():
            return super().forward(x)


class TrainingAgent(nn.Module):
    """``attention`` + ``transport`` with their own CLIP trunks and text towers.

    Attributes:
        family: 'gensim' or 'cliport'.
        trunks: copy name ('attention' | 'key' | 'query') -> TrainableVisualTrunk.
        texts: copy name -> TextEncoder.
    """

    def __init__(self, ckpt: LoadedCheckpoint, device="cpu", clip_precision: str = "float16",
                 rotation: Optional[str] = None):
        super().__init__()
        self.family = ckpt.family
        self.device = torch.device(device)
        rotation = rotation or DEFAULT_ROTATION[ckpt.family]
        state = ckpt.state_dict
        self._template = OrderedDict((k, None) for k in state)  # key order of the checkpoint
        expected = expected_entries(ckpt.family)
        with torch.device("meta"):
            self.attention, self.transport = Attention(ckpt.family, rotation), Transport(ckpt.family, rotation)
        for prefix, module in (("attention.", self.attention), ("transport.", self.transport)):
            own = {k[len(prefix):]: v.to(expected[k][1]).clone() for k, v in state.items()
                   if k.startswith(prefix) and ".clip_rn50." not in k}
            module.load_state_dict(own, strict=True, assign=True)
        for m in self.modules():
            if isinstance(m, BatchNormEval):
                m.train_stats = True
        weights: dict = {}  # frozen fp16 CLIP weights equal across copies are stored once
        self.trunks: dict[str, TrainableVisualTrunk] = {}
        self.texts: dict[str, TextEncoder] = {}
        self._clip_rest: dict[str, dict] = {}
        for name, prefix in CLIP_PREFIXES.items():
            copy = clip_state(state, prefix)
            trunk = TrainableVisualTrunk(clip_precision)
            vis = {k: (v.clone() if k.rsplit(".", 1)[-1] in _BN_BUFFERS else _shared(weights, v))
                   for k, v in visual_state(copy).items()}
            trunk.load(vis, cache={})
            for mod in trunk.visual.modules():  # own, writable running statistics per copy
                for b in _BN_BUFFERS:
                    if hasattr(mod, b) and isinstance(getattr(mod, b), torch.Tensor):
                        setattr(mod, b, getattr(mod, b).clone())
            text = TextEncoder()
            text.load({k: _shared(weights, v) for k, v in text_state(copy).items()})
            self.trunks[name], self.texts[name] = trunk.to(self.device), text.to(self.device).eval()
            # attnpool and logit_scale: unused by the agent, saved back unchanged
            self._clip_rest[name] = {k: v for k, v in copy.items()
                                     if k.startswith("visual.attnpool.") or k == "logit_scale"}
        self.attention.attn_stream_two.attach(self.trunks["attention"])
        self.transport.key_stream_two.attach(self.trunks["key"])
        self.transport.query_stream_two.attach(self.trunks["query"])
        self.attention.to(self.device)
        self.transport.to(self.device)
        self._text_cache: dict = {}
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        for trunk in getattr(self, "trunks", {}).values():
            trunk.train(mode)
        return self

    def text_features(self, copy: str, goals) -> torch.Tensor:
        """(B, 1024) float16 sentence features of ``goals`` from copy ``copy``'s frozen text tower."""
        key = (copy, tuple(goals))
        if key not in self._text_cache:
            enc = self.texts[copy]
            tokens = torch.cat([enc.tokenize(g) for g in goals], dim=0)
            with torch.no_grad():
                self._text_cache[key] = enc.encode_tokens(tokens)
        return self._text_cache[key]

    def state_dict_for_checkpoint(self) -> "OrderedDict[str, torch.Tensor]":
        """Every checkpoint key, in the checkpoint's order, reference dtypes, on the CPU."""
        expected = expected_entries(self.family)
        own = {}
        for prefix, module in (("attention.", self.attention), ("transport.", self.transport)):
            own.update({prefix + k: v for k, v in module.state_dict().items()})
        for name, prefix in CLIP_PREFIXES.items():
            own.update({prefix + "visual." + k: v for k, v in self.trunks[name].visual.state_dict().items()})
            own.update({prefix + k: v for k, v in self.texts[name].text.state_dict().items()})
            own.update({prefix + k: v for k, v in self._clip_rest[name].items()})
        out = OrderedDict()
        for k in self._template:
            out[k] = own[k].detach().to(device="cpu", dtype=expected[k][1]).clone()
        return out


def _shared(cache: dict, t: torch.Tensor) -> torch.Tensor:
    """One tensor object per distinct value of the frozen CLIP weights (saves ~2/3 of CLIP's memory)."""
    key = (tuple(t.shape), t.dtype)
    for cand in cache.get(key, []):
        if cand is t or torch.equal(cand, t):
            return cand
    cache.setdefault(key, []).append(t)
    return t
