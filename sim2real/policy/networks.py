"""The two lateral streams of the ``cliport`` agent, for both checkpoint families.

Stream one is ``ResNet45_10s`` (a plain ResNet encoder-decoder without BatchNorm; the training
config sets ``batchnorm: False``); it returns its output and the decoder's inputs, the *lateral*
features. Stream two is ``CLIPLingUNetLat``: the CLIP RN50 trunk (frozen), language fusion by
multiplication with projected CLIP sentence features, bilinear up-sampling blocks whose
``DoubleConv`` still carries BatchNorm, and lateral fusion with stream one.

Module and attribute names equal the reference's so that checkpoint keys load as they are.
The forward passes repeat the reference's operations in the same order, on tensors with the
same memory layout, because the CPU convolution kernels (oneDNN) pick their summation order
from the layout: the same ops on the same layouts give the same bits.

Family differences (see ``../shared/spec/README.md``):

* ``cliport`` (cliport/cliport): stream one has ``layer5``/``layer6``; stream two maps CLIP's
  2048 channels to 1024 and decodes with ``up1``, ``up2``, ``up3`` and ``lat_fusion1..6``.
* ``gensim`` (liruiw/GenSim): no ``layer5``/``layer6``; ``conv1`` maps 2048 -> 256, then only
  ``lang_fuser3`` -> ``up3`` (x2 up-sampling, zero-padded, centred, to the size of CLIP's
  layer1 map) -> ``lat_fusion3``. ``lang_proj1``/``lang_proj2`` exist but are unused.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

# Pre-processing statistics of cliport.utils.utils.preprocess, defined once in sim2real.normalisation.
from sim2real.normalisation import (CLIP_COLOR_MEAN, CLIP_COLOR_STD, TRANSPORTER_COLOR_MEAN, TRANSPORTER_COLOR_STD,
                                    TRANSPORTER_DEPTH_MEAN, TRANSPORTER_DEPTH_STD)

FAMILIES = ("gensim", "cliport")


def preprocess(img: torch.Tensor, dist: str) -> torch.Tensor:
    """Normalise a (B, 6, H, W) RGB(0-255)+height image like the reference's ``preprocess``.

    ``dist`` is 'transporter' (stream one) or 'clip' (stream two); heights always use the
    transporter statistics. The arithmetic order (``/255``, ``-mean``, ``/std``) is kept.
    """
    color_mean = CLIP_COLOR_MEAN if dist == "clip" else TRANSPORTER_COLOR_MEAN
    color_std = CLIP_COLOR_STD if dist == "clip" else TRANSPORTER_COLOR_STD

    def stat(values) -> torch.Tensor:  # float64 numbers cast to the image dtype, as the reference
        t = torch.tensor(values, dtype=torch.float64).to(device=img.device, dtype=img.dtype)
        return t.reshape(1, -1, 1, 1) if t.dim() else t.reshape(1, 1, 1, 1)

    img = img.clone()
    img[:, :3, :, :] = (img[:, :3, :, :] / 255 - stat(color_mean)) / stat(color_std)
    img[:, 3:, :, :] = (img[:, 3:, :, :] - stat(TRANSPORTER_DEPTH_MEAN)) / stat(TRANSPORTER_DEPTH_STD)
    return img


# --------------------------------------------------------------------------------------------
# Stream one: ResNet45_10s
# --------------------------------------------------------------------------------------------

class IdentityBlock(nn.Module):
    """Bottleneck residual block without BatchNorm (keys conv1, conv2, conv3)."""

    def __init__(self, in_planes: int, filters, kernel_size: int = 3, final_relu: bool = True):
        super().__init__()
        f1, f2, f3 = filters
        self.final_relu = final_relu
        self.conv1 = nn.Conv2d(in_planes, f1, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(f1, f2, kernel_size=kernel_size, padding=1, bias=False)
        self.conv3 = nn.Conv2d(f2, f3, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        out += x
        return F.relu(out) if self.final_relu else out


class ConvBlock(nn.Module):
    """Bottleneck block with a 1x1 projection shortcut, without BatchNorm."""

    def __init__(self, in_planes: int, filters, kernel_size: int = 3, stride: int = 1,
                 final_relu: bool = True):
        super().__init__()
        f1, f2, f3 = filters
        self.final_relu = final_relu
        self.conv1 = nn.Conv2d(in_planes, f1, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(f1, f2, kernel_size=kernel_size, stride=stride, padding=1, bias=False)
        self.conv3 = nn.Conv2d(f2, f3, kernel_size=1, bias=False)
        self.shortcut = nn.Sequential(nn.Conv2d(in_planes, f3, kernel_size=1, stride=stride, bias=False),
                                      nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        out += self.shortcut(x)
        return F.relu(out) if self.final_relu else out


def _stage(cin: int, cout: int, stride: int = 1, up: bool = False) -> nn.Sequential:
    layers = [ConvBlock(cin, [cout] * 3, stride=stride), IdentityBlock(cout, [cout] * 3)]
    if up:
        layers.append(nn.UpsamplingBilinear2d(scale_factor=2))
    return nn.Sequential(*layers)


class ResNet45Lat(nn.Module):
    """``ResNet45_10s``: (B, 6, H, W) image -> ((B, out, H, W) map, lateral features).

    The lateral list holds the input of every decoder stage (6 in 'cliport', 5 in 'gensim').
    """

    def __init__(self, family: str, output_dim: int):
        super().__init__()
        self.family = family
        self.conv1 = nn.Sequential(nn.Conv2d(6, 64, kernel_size=3, stride=1, padding=1),
                                   nn.Identity(), nn.ReLU(True))
        self.layer1 = _stage(64, 64)
        self.layer2 = _stage(64, 128, stride=2)
        self.layer3 = _stage(128, 256, stride=2)
        self.layer4 = _stage(256, 512, stride=2)
        if family == "cliport":
            self.layer5 = _stage(512, 1024, stride=2)
            self.layer6 = _stage(1024, 512, up=True)
        self.layer7 = _stage(512, 256, up=True)
        self.layer8 = _stage(256, 128, up=True)
        self.layer9 = _stage(128, 64, up=True)
        self.layer10 = _stage(64, 32, up=True)
        self.conv2 = nn.Sequential(ConvBlock(32, [16, 16, output_dim], final_relu=False),
                                   IdentityBlock(output_dim, [16, 16, output_dim], final_relu=False))

    def forward(self, x: torch.Tensor):
        x = preprocess(x, dist="transporter")
        in_shape = x.shape
        encoder = [self.conv1, self.layer1, self.layer2, self.layer3, self.layer4]
        decoder = [self.layer7, self.layer8, self.layer9, self.layer10, self.conv2]
        if self.family == "cliport":
            encoder.append(self.layer5)
            decoder.insert(0, self.layer6)
        for layer in encoder:
            x = layer(x)
        lat = []
        for layer in decoder:
            lat.append(x)
            x = layer(x)
        x = F.interpolate(x, size=(in_shape[-2], in_shape[-1]), mode="bilinear")
        return x, lat


# --------------------------------------------------------------------------------------------
# Stream two: CLIPLingUNetLat decoder (the CLIP trunk and text encoder live in clip_rn50.py)
# --------------------------------------------------------------------------------------------

class BatchNormEval(nn.BatchNorm2d):
    """BatchNorm2d whose statistics are chosen per call, never updated.

    ``batch_stats=False``: running statistics (eval mode). ``batch_stats=True``: the batch's own
    mean and biased variance, as a module left in train mode computes them -- but the running
    buffers are not touched, so repeated calls give the same result.
    """

    batch_stats: bool = False
    train_stats: bool = False
    """Training (sim2real.training): in train mode behave as ``nn.BatchNorm2d`` -- batch statistics
    and running-statistics updates, as the reference's layers do in ``training_step``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.train_stats and self.training:
            return super().forward(x)
        if self.batch_stats:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


class DoubleConv(nn.Module):
    """(conv 3x3 -> BN -> ReLU) x 2, with the BatchNorm the reference forgot to remove."""

    def __init__(self, cin: int, cout: int, mid: int):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, kernel_size=3, padding=1), BatchNormEval(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, kernel_size=3, padding=1), BatchNormEval(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Up(nn.Module):
    """x2 bilinear up-sampling (align_corners=True), centred zero-pad to the skip's size,
    concatenation ``[skip, x]`` and a DoubleConv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(cin, cout, cin // 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy = x2.size()[2] - x1.size()[2]
        dx = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class FusionConvLat(nn.Module):
    """Lateral fusion: ReLU then 1x1 conv of ``[x1; x2]``."""

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(True), nn.Conv2d(input_dim, output_dim, kernel_size=1, bias=False))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x1, x2], dim=1))


class FusionConv(nn.Module):
    """Stream fusion of the transport: ReLU then 1x1 conv of ``[x1; x2]`` (2C -> C)."""

    def __init__(self, input_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(True), nn.Conv2d(input_dim * 2, input_dim, kernel_size=1, bias=False))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x1, x2], dim=1))


def _lang_mult(x: torch.Tensor, lang: torch.Tensor, proj: nn.Linear, family: str) -> torch.Tensor:
    """Language fusion by multiplication (``FusionMult``) with the projected sentence feature.

    GenSim repeats the sentence feature once per crop *before* projecting it (a 36-row matmul);
    cliport projects one row and tiles it. The values agree; the matmul shapes are kept anyway.
    """
    if family == "gensim":
        if x.shape[0] > 8 and x.shape[0] % 36 == 0:
            lang = lang.repeat_interleave(36, dim=0)
        l2 = proj(lang).unsqueeze(-1).unsqueeze(-1).repeat(1, 1, x.shape[-2], x.shape[-1])
    else:
        l2 = proj(lang).unsqueeze(-1).unsqueeze(-1).repeat(x.shape[0], 1, x.shape[-2], x.shape[-1])
    return x * l2


class CLIPLingUNetLatDecoder(nn.Module):
    """Everything of ``CLIPLingUNetLat`` except the CLIP model itself.

    ``decode(clip_out, clip_im, lang, lat, out_hw)``: CLIP layer4 output (B, 2048, h, w) and its
    intermediate maps, the sentence feature (1, 1024) float32, the lateral features of stream
    one, and the output size; returns (B, output_dim, H, W).
    """

    def __init__(self, family: str, output_dim: int):
        super().__init__()
        self.family = family
        self.lang_proj1 = nn.Linear(1024, 1024)
        self.lang_proj2 = nn.Linear(1024, 512)
        self.lang_proj3 = nn.Linear(1024, 256)
        if family == "cliport":
            self.conv1 = nn.Sequential(nn.Conv2d(2048, 1024, 3, stride=1, padding=1, bias=False), nn.ReLU(True))
            self.up1 = Up(2048, 512)
            self.lat_fusion1 = FusionConvLat(1024 + 512, 512)
            self.up2 = Up(1024, 256)
            self.lat_fusion2 = FusionConvLat(512 + 256, 256)
        else:
            self.conv1 = nn.Sequential(nn.Conv2d(2048, 256, 3, stride=1, padding=1, bias=False), nn.ReLU(True))
        self.up3 = Up(512, 128)
        self.lat_fusion3 = FusionConvLat(256 + 128, 128)
        self.layer1 = nn.Sequential(ConvBlock(128, [64] * 3), IdentityBlock(64, [64] * 3),
                                    nn.UpsamplingBilinear2d(scale_factor=2))
        self.lat_fusion4 = FusionConvLat(128 + 64, 64)
        self.layer2 = nn.Sequential(ConvBlock(64, [32] * 3), IdentityBlock(32, [32] * 3),
                                    nn.UpsamplingBilinear2d(scale_factor=2))
        self.lat_fusion5 = FusionConvLat(64 + 32, 32)
        self.layer3 = nn.Sequential(ConvBlock(32, [16] * 3), IdentityBlock(16, [16] * 3),
                                    nn.UpsamplingBilinear2d(scale_factor=2))
        self.lat_fusion6 = FusionConvLat(32 + 16, 16)
        self.conv2 = nn.Sequential(nn.Conv2d(16, output_dim, kernel_size=1))

    def set_batch_stats(self, on: bool) -> None:
        """Choose the statistics of the up-sampling blocks' BatchNorm layers."""
        for m in self.modules():
            if isinstance(m, BatchNormEval):
                m.batch_stats = on

    def decode(self, x, im, lang, lat, out_hw):
        lang = lang.to(dtype=x.dtype)
        x = self.conv1(x)
        if self.family == "cliport":
            x = _lang_mult(x, lang, self.lang_proj1, self.family)
            x = self.up1(x, im[-2])
            x = self.lat_fusion1(x, lat[-6])
            x = _lang_mult(x, lang, self.lang_proj2, self.family)
            x = self.up2(x, im[-3])
            x = self.lat_fusion2(x, lat[-5])
        x = _lang_mult(x, lang, self.lang_proj3, self.family)
        x = self.up3(x, im[-4])
        x = self.lat_fusion3(x, lat[-4])
        x = self.layer1(x)
        x = self.lat_fusion4(x, lat[-3])
        x = self.layer2(x)
        x = self.lat_fusion5(x, lat[-2])
        x = self.layer3(x)
        x = self.lat_fusion6(x, lat[-1])
        x = self.conv2(x)
        return F.interpolate(x, size=out_hw, mode="bilinear")


class StreamTwo(CLIPLingUNetLatDecoder):
    """``CLIPLingUNetLat``: the CLIP trunk (attached by the loader, possibly shared) + decoder.

    ``clip_trunk(x)`` returns (layer4 output, intermediate maps) of CLIP's visual trunk. It is
    kept out of the module tree so that several streams can share one trunk.
    """

    def __init__(self, family: str, output_dim: int):
        super().__init__(family, output_dim)
        object.__setattr__(self, "clip_trunk", None)

    def attach(self, trunk: Callable) -> None:
        object.__setattr__(self, "clip_trunk", trunk)

    def forward(self, x: torch.Tensor, lat, lang: torch.Tensor) -> torch.Tensor:
        x = preprocess(x, dist="clip")
        in_type, in_shape = x.dtype, x.shape
        x = x[:, :3]
        x, im = self.clip_trunk(x)
        x = x.to(in_type)
        return self.decode(x, im, lang, lat, (in_shape[-2], in_shape[-1]))
