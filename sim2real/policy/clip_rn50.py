"""CLIP RN50 from open_clip's modules, with the reference's numerics. Nothing is downloaded.

The reference builds OpenAI's CLIP with ``build_model()``, which calls ``convert_weights()``:
conv, linear and attention-projection weights and ``text_projection`` become float16, norms and
embeddings stay float32, and every CLIP op runs in float16 -- on CPU as well. Here the RN50
visual trunk (``open_clip.modified_resnet.ModifiedResNet``), the text transformer
(``open_clip.transformer.TextTransformer``) and the BPE tokenizer (``open_clip.tokenizer``) come
from open_clip; the weights come from the checkpoint only.

Visual precision (``VisualTrunk.precision``):

* ``"float16"``: the reference's own path, op for op in float16. Bit-identical on the same
  machine, but CPU float16 convolutions are slow (about 8 s per trunk pass here).
* ``"float16-emulated"``: float32 kernels on float16-valued weights, with every activation
  rounded to float16 after each op, exactly where the reference rounds. BatchNorm, pooling,
  ReLU and additions then give the same bits as float16; a convolution differs only where the
  float32 sum lands within rounding noise of a float16 rounding boundary (about 0.1 % of the
  outputs, by one float16 ulp). Same speed as float32.
* ``"float32"``: plain float32 (no rounding); what a float32 re-export of CLIP would compute.

The text encoder always runs the reference's float16 path: it is cheap (one sentence) and the
policy caches its output per goal.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from sim2real.compat import import_open_clip
from sim2real.errors import InputError

VISUAL_PRECISIONS = ("float16", "float16-emulated", "float32")
CONTEXT_LENGTH = 77
_LAYERS = (3, 4, 6, 3)  # RN50


def _round16(x: torch.Tensor) -> torch.Tensor:
    return x.half().float()


def _to_reference_dtypes(module: nn.Module) -> None:
    """``convert_weights()`` of OpenAI CLIP: conv/linear/MHA projections (and text_projection)
    to float16, everything else as it is."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.weight.data = m.weight.data.half()
            if m.bias is not None:
                m.bias.data = m.bias.data.half()
        if isinstance(m, nn.MultiheadAttention):
            for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                         "in_proj_bias", "bias_k", "bias_v"):
                t = getattr(m, attr, None)
                if t is not None:
                    t.data = t.data.half()
        if getattr(m, "text_projection", None) is not None and isinstance(m.text_projection, nn.Parameter):
            m.text_projection.data = m.text_projection.data.half()


class VisualTrunk(nn.Module):
    """The RN50 trunk up to layer4 (``prepool_im``): (B, 3, H, W) -> (layer4, 8 feature maps).

    ``visual`` is open_clip's ``ModifiedResNet`` (its attention pool is unused and dropped).
    """

    def __init__(self, precision: str = "float16"):
        super().__init__()
        if precision not in VISUAL_PRECISIONS:
            raise ValueError(f"visual precision must be one of {VISUAL_PRECISIONS}, got {precision!r}")
        open_clip = import_open_clip()
        with torch.device("meta"):
            visual = open_clip.modified_resnet.ModifiedResNet(layers=list(_LAYERS), output_dim=1024, heads=32,
                                                              image_size=224, width=64)
        visual.attnpool = None
        _to_reference_dtypes(visual)
        self.visual = visual
        self.precision = precision

    def load(self, state: dict, cache: Optional[dict] = None) -> None:
        """Assign the ``visual.*`` tensors (attnpool ignored).

        Each tensor is first cast to the reference dtype (an fp32 checkpoint entry is rounded to
        fp16 exactly as ``load_state_dict`` into the reference's fp16 parameter would), then to
        float32 unless the precision is 'float16'. ``cache`` (id of source tensor -> converted
        tensor) lets several trunks share one converted copy of equal tensors.
        """
        cache = {} if cache is None else cache
        tensors = {}
        for k, ref in self.visual.state_dict().items():
            src = state["visual." + k]
            if id(src) not in cache:
                t = src.to(ref.dtype) if src.dtype != ref.dtype else src
                if self.precision != "float16" and t.dtype == torch.float16:
                    t = t.float()
                cache[id(src)] = t
            tensors[k] = cache[id(src)]
        self.visual.load_state_dict(tensors, strict=True, assign=True)
        self.visual.eval()

    def train(self, mode: bool = True):
        """CLIP's BatchNorms stay in eval mode whatever the caller asks (as in the reference)."""
        super().train(mode)
        self.visual.eval()
        return self

    def forward(self, x: torch.Tensor):
        v = self.visual
        emulate = self.precision == "float16-emulated"
        r = _round16 if emulate else (lambda t: t)
        x = x.type(torch.float16) if self.precision == "float16" else x.float()
        if emulate:
            x = _round16(x)
        im = []
        for conv, bn in ((v.conv1, v.bn1), (v.conv2, v.bn2), (v.conv3, v.bn3)):
            x = F.relu(r(bn(r(conv(x)))))
            im.append(x)
        x = r(v.avgpool(x))
        im.append(x)
        for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
            for block in layer:
                x = _bottleneck(block, x, r)
            im.append(x)
        return x, im


def _bottleneck(b, x: torch.Tensor, r: Callable) -> torch.Tensor:
    """open_clip ``Bottleneck.forward`` with rounding points (identity unless emulating fp16)."""
    out = F.relu(r(b.bn1(r(b.conv1(x)))))
    out = F.relu(r(b.bn2(r(b.conv2(out)))))
    out = r(b.avgpool(out))
    out = r(b.bn3(r(b.conv3(out))))
    if b.downsample is not None:
        ds = b.downsample
        identity = r(ds[2](r(ds[1](r(ds[0](x))))))
    else:
        identity = x
    out = r(out + identity)
    return F.relu(out)


class TextEncoder(nn.Module):
    """CLIP's text transformer + tokenizer: goal string -> (1, 1024) sentence feature (float16).

    Runs ``encode_text_with_embeddings`` of the reference: float16 tokens and positions, 12
    residual blocks (LayerNorm in float32, attention through ``F.multi_head_attention_forward``
    in sequence-first layout with a float16 causal mask, QuickGELU MLP), final LayerNorm, the
    end-of-text token's feature times ``text_projection``.
    """

    def __init__(self):
        super().__init__()
        open_clip = import_open_clip()
        from open_clip.transformer import LayerNormFp32, QuickGELU, TextTransformer
        with torch.device("meta"):
            text = TextTransformer(context_length=CONTEXT_LENGTH, vocab_size=49408, width=512, heads=8,
                                   layers=12, output_dim=1024, act_layer=QuickGELU, norm_layer=LayerNormFp32)
        _to_reference_dtypes(text)
        self.text = text
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer()

    def load(self, state: dict) -> None:
        own = self.text.state_dict()
        tensors = OrderedDict()
        for k, ref in own.items():
            t = state[k]
            tensors[k] = t.to(ref.dtype) if t.dtype != ref.dtype else t
        self.text.load_state_dict(tensors, strict=True, assign=True)
        mask = torch.empty(CONTEXT_LENGTH, CONTEXT_LENGTH).fill_(float("-inf")).triu_(1)
        self.text.attn_mask = mask

    def tokenize(self, goal: str) -> torch.Tensor:
        """(1, 77) int64 tokens; a goal longer than 75 BPE tokens is an InputError (as CLIP's)."""
        if not isinstance(goal, str) or not goal.strip():
            raise InputError(f"the goal must be a non-empty string, got {goal!r}")
        tokens = [self.tokenizer.sot_token_id] + self.tokenizer.encode(goal) + [self.tokenizer.eot_token_id]
        if len(tokens) > CONTEXT_LENGTH:
            raise InputError(f"goal {goal!r} is {len(tokens)} CLIP tokens long; the limit is "
                             f"{CONTEXT_LENGTH} (shorten the instruction)")
        out = torch.zeros(1, CONTEXT_LENGTH, dtype=torch.long)
        out[0, :len(tokens)] = torch.tensor(tokens)
        return out

    def forward(self, goal: str) -> torch.Tensor:
        return self.encode_tokens(self.tokenize(goal))

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 77) int64 tokens -> (B, 1024) float16 sentence features (one batched pass, as the
        reference's ``encode_text`` of a list of goals)."""
        t = self.text
        tokens = tokens.to(t.positional_embedding.device)
        dtype = torch.float16
        x = t.token_embedding(tokens).type(dtype)
        x = x + t.positional_embedding.type(dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        mask = t.attn_mask.to(dtype=dtype, device=x.device)
        for blk in t.transformer.resblocks:
            x = x + _self_attention(blk.attn, blk.ln_1(x), mask)
            x = x + blk.mlp(blk.ln_2(x))
        x = x.permute(1, 0, 2)
        x = t.ln_final(x).type(dtype)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ t.text_projection


def _self_attention(attn: nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``nn.MultiheadAttention(x, x, x, need_weights=False, attn_mask=mask)`` in the slow
    (reference) path, for sequence-first ``x``."""
    out, _ = F.multi_head_attention_forward(
        x, x, x, attn.embed_dim, attn.num_heads, attn.in_proj_weight, attn.in_proj_bias,
        attn.bias_k, attn.bias_v, attn.add_zero_attn, attn.dropout, attn.out_proj.weight,
        attn.out_proj.bias, training=False, key_padding_mask=None, need_weights=False,
        attn_mask=mask, average_attn_weights=True, is_causal=False)
    return out


def clip_state(state_dict: dict, prefix: str) -> dict:
    """The entries of one CLIP copy, with ``prefix`` (e.g. 'attention.attn_stream_two.clip_rn50.')
    removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def text_state(clip: dict) -> dict:
    """The text-tower entries of a CLIP copy (everything but ``visual.*`` and ``logit_scale``)."""
    return {k: v for k, v in clip.items() if not k.startswith("visual.") and k != "logit_scale"}


def visual_state(clip: dict) -> dict:
    return {k: v for k, v in clip.items() if k.startswith("visual.")}

