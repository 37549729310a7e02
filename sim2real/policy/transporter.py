"""Attention (pick) and transport (place) of the ``cliport`` agent: the exact tensor math.

Attention (``TwoStreamAttentionLangFusionLat``, one rotation):
  (320, 160, 6) image -> zero-pad the columns to a 320x320 square (80 each side) -> rotate by
  0 degrees about (160, 160) (still a resampling, kept for its bits) -> stream one
  (ResNet45, 1 channel) + stream two (CLIP LingUNet, 1 channel) -> ``add`` -> rotate back by
  -0 degrees -> crop columns 80:240 -> (320, 160) logits.

Transport (``TwoStreamTransportLangFusionLat``, 36 rotations, 64-pixel crops):
  pad 32 pixels on every side (384x224); key = both streams on the padded image, fused by a
  ReLU + 1x1 conv (3 channels); the padded image rotated by k*10 degrees about
  p0 + 32 and cropped to the 64x64 window centred there gives 36 crops; query = both streams
  on the crops (one batch of 36), fused the same way; the logits are ``conv2d(key, query,
  padding=32)`` (1, 36, 385, 225), bilinearly resized to 384x224 and cropped back to
  (36, 320, 160).

The tensors keep the reference's memory layouts (the padded transport image is a permuted
NHWC tensor, i.e. channels-last) because the CPU conv kernels choose their algorithm, and so
their rounding, from the layout; the correlation is also ~300x faster channels-last.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sim2real.action import N_ROTATIONS
from sim2real.policy.networks import FusionConv, ResNet45Lat, StreamTwo
from sim2real.policy.rotation import rotate, rotated_windows, rotation_angles

IN_SHAPE = (320, 160, 6)
CROP_SIZE = 64
PAD = CROP_SIZE // 2


class Attention(nn.Module):
    """Pick module: image + sentence feature -> (320, 160) logits (before softmax)."""

    def __init__(self, family: str, rotation: str):
        super().__init__()
        self.family, self.rotation = family, rotation
        self.attn_stream_one = ResNet45Lat(family, 1)
        self.attn_stream_two = StreamTwo(family, 1)
        side = max(IN_SHAPE[:2])
        self.pad_rc = ((side - IN_SHAPE[0]) // 2, (side - IN_SHAPE[1]) // 2)  # (0, 80)

    def _input(self, img: torch.Tensor) -> torch.Tensor:
        """(320,160,6) -> rotated (1, 6, 320, 320), built the way each reference builds it."""
        pr, pc = self.pad_rc
        x = F.pad(img[None], (0, 0, pc, pc, pr, pr), mode="constant")  # [1 H W 6]
        pivot = (x.shape[1] // 2, x.shape[2] // 2)
        x = x.permute(0, 3, 1, 2)
        if self.family == "cliport":
            x = x.repeat(1, 1, 1, 1)
        return rotate(x, [0.0], pivot, self.rotation), pivot

    def forward(self, img: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        x, pivot = self._input(img)
        x1, lat = self.attn_stream_one(x)
        x2 = self.attn_stream_two(x, lat, lang)
        logits = x1 + x2
        logits = rotate(logits, [-0.0], pivot, self.rotation)
        pr, pc = self.pad_rc
        return logits[0, 0, pr:pr + IN_SHAPE[0], pc:pc + IN_SHAPE[1]]


class Transport(nn.Module):
    """Place module: image + pick pixel + sentence feature -> (36, 320, 160) logits."""

    def __init__(self, family: str, rotation: str):
        super().__init__()
        self.family, self.rotation = family, rotation
        self.key_stream_one = ResNet45Lat(family, 3)
        self.key_stream_two = StreamTwo(family, 3)
        self.query_stream_one = ResNet45Lat(family, 3)
        self.query_stream_two = StreamTwo(family, 3)
        self.fusion_key = FusionConv(3)
        self.fusion_query = FusionConv(3)

    def padded(self, img: torch.Tensor) -> torch.Tensor:
        """(320,160,6) -> (1, 6, 384, 224) channels-last view, as both references build it."""
        return F.pad(img[None], (0, 0, PAD, PAD, PAD, PAD), mode="constant").permute(0, 3, 1, 2)

    def crops(self, padded: torch.Tensor, p0) -> torch.Tensor:
        """The 36 rotated 64x64 windows around ``p0`` (row, col): (36, 6, 64, 64)."""
        pv = (int(p0[0]) + PAD, int(p0[1]) + PAD)
        rows, cols = slice(pv[0] - PAD, pv[0] + PAD), slice(pv[1] - PAD, pv[1] + PAD)
        return rotated_windows(padded, rotation_angles(N_ROTATIONS), pv, rows, cols, self.rotation)

    def key(self, padded: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        out_one, lat = self.key_stream_one(padded)
        return self.fusion_key(out_one, self.key_stream_two(padded, lat, lang))

    def query(self, crops: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        out_one, lat = self.query_stream_one(crops)
        return self.fusion_query(out_one, self.query_stream_two(crops, lat, lang))

    def forward(self, img: torch.Tensor, p0, lang: torch.Tensor) -> torch.Tensor:
        padded = self.padded(img)
        return correlate(self.key(padded, lang), self.query(self.crops(padded, p0), lang))


def correlate(key: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate the key map (1, 3, H+64, W+64) with the 36 kernels: (36, H, W) logits."""
    out = F.conv2d(key, kernel, padding=(PAD, PAD))
    out = F.interpolate(out, size=(key.shape[-2], key.shape[-1]), mode="bilinear")
    return out[0, :, PAD:-PAD, PAD:-PAD]


def softmax_argmax_pick(logits: torch.Tensor):
    """(row, col) of the reference's ``argmax(softmax(pick_logits))``, first index on ties."""
    prob = F.softmax(logits.reshape(1, -1), dim=-1).reshape(logits.shape)
    conf = prob.detach().cpu().numpy()[:, :, None]
    r, c, _ = np.unravel_index(np.argmax(conf), conf.shape)
    return int(r), int(c)


def softmax_argmax_place(logits: torch.Tensor):
    """(row, col, rotation bin) of ``argmax`` over the (H, W, 36) softmax, as ``act()`` does."""
    prob = F.softmax(logits.reshape(1, -1), dim=-1).reshape(logits.shape)
    conf = np.transpose(prob.detach().cpu().numpy(), (1, 2, 0))
    r, c, k = np.unravel_index(np.argmax(conf), conf.shape)
    return int(r), int(c), int(k)
