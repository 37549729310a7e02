"""``Policy``: a GenSim / CLIPort checkpoint that turns a heightmap and a goal into a pick and place.

    policy = Policy.from_checkpoint("gensim.ckpt", device="cpu", batchnorm="batch")
    action = policy.act(observation, "put the red block in the green bowl")
    action.pick.pixel, action.place.theta, action.place.xyz, action.place_logits.shape

BatchNorm modes (only the ``DoubleConv`` blocks of stream two's up-sampling path have
BatchNorm layers that matter; stream one was trained with ``batchnorm: False`` and CLIP's own
BatchNorms stay in eval mode in every reference run because ``build_model()`` returns
``model.eval()``):

* ``"batch"`` (default): the reference evaluation (``eval.py`` -> ``agent.act``) never calls
  ``.eval()``, so those layers normalise with the statistics of the batch being processed:
  the single padded image for attention and key, the 36 crops together for the query. This is
  the setting of the published success rates.
* ``"running"``: eval mode, the checkpoint's running statistics.

Neither mode changes any weight or buffer, so every call is deterministic.

Speed, without changing the maths: one CLIP tensor is stored once when the three copies hold
equal values (checked tensor by tensor), text features are computed once per goal and cached,
everything runs under ``torch.inference_mode``, and only the 36 64x64 windows of the rotated
images that the transport crops are sampled.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.errors import InputError
from sim2real.policy.checkpoint import CLIP_PREFIXES, LoadedCheckpoint, expected_entries, load_checkpoint
from sim2real.policy.clip_rn50 import TextEncoder, VisualTrunk, clip_state, text_state, visual_state
from sim2real.policy.rotation import CONVENTIONS, KORNIA_0_4, KORNIA_0_5
from sim2real.policy.transporter import (IN_SHAPE, N_ROTATIONS, Attention, Transport, correlate,
                                         softmax_argmax_pick, softmax_argmax_place)
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

BATCHNORM_MODES = ("batch", "running")
DEFAULT_BATCHNORM = "batch"
CLIP_PRECISIONS = ("auto", "float16", "float16-emulated", "float32")
DEFAULT_ROTATION = {"gensim": KORNIA_0_5, "cliport": KORNIA_0_4}
"""Rotation numerics per family: the kornia release each reference's code runs with."""


def resolve_clip_precision(precision: str, device: torch.device, batchnorm: str = DEFAULT_BATCHNORM) -> str:
    """'auto' -> 'float16', the reference's own arithmetic, on every device.

    'float16-emulated' (~3.9x faster per decision on CPU) is opt-in: measured against the real reference
    code it stayed within the tolerances (1e-4 pick, 1e-2 place) with running statistics only
    by a factor of 1-2 on some random checkpoints (place logits of 1e4 leave float32 sums no
    room), and left them with batch statistics, which amplify its one-ulp differences.
    """
    if precision not in CLIP_PRECISIONS:
        raise InputError(f"clip precision must be one of {CLIP_PRECISIONS}, got {precision!r}")
    return "float16" if precision == "auto" else precision


def _dedupe(tensors_per_copy: dict[str, dict]) -> dict[str, dict]:
    """Make equal tensors of the copies the same tensor object, so each is stored once."""
    names = list(tensors_per_copy)
    first = tensors_per_copy[names[0]]
    out = {names[0]: dict(first)}
    for name in names[1:]:
        out[name] = {k: (first[k] if torch.equal(v, first[k]) else v) for k, v in tensors_per_copy[name].items()}
    return out


def _to_device(per_copy: dict[str, dict], device: torch.device) -> dict[str, dict]:
    """Move tensors to ``device`` keeping shared tensors shared."""
    moved: dict[int, torch.Tensor] = {}

    def move(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in moved:
            moved[id(t)] = t.to(device)
        return moved[id(t)]

    return {n: {k: move(v) for k, v in t.items()} for n, t in per_copy.items()}


def _groups(per_copy: dict[str, dict]) -> dict[str, str]:
    """copy name -> name of the first copy whose tensors are all the very same objects."""
    names, owner = list(per_copy), {}
    for name in names:
        owner[name] = next((o for o in names[:names.index(name)]
                            if all(per_copy[name][k] is per_copy[o][k] for k in per_copy[name])), name)
    return owner


class Policy:
    """A loaded ``cliport`` agent. Build it with :meth:`from_checkpoint`.

    Attributes:
        family: 'gensim' or 'cliport'.
        batchnorm: 'batch' or 'running' (see the module docstring).
        clip_precision: 'float16', 'float16-emulated' or 'float32'.
        rotation: rotation numerics, 'kornia-0.4' or 'kornia-0.5+'.
        device: torch device.
        workspace: the heightmap's workspace (pixels -> metres).
    """

    def __init__(self, attention: Attention, transport: Transport, text_encoders: dict, family: str,
                 batchnorm: str, clip_precision: str, device: torch.device, workspace: Workspace,
                 shared_clip: dict):
        self.attention, self.transport = attention, transport
        self._text = text_encoders  # stream name -> TextEncoder (possibly the same object)
        self._text_cache: dict = {}
        self.family, self.clip_precision, self.device = family, clip_precision, device
        self.rotation = attention.rotation
        self.workspace = workspace
        self.shared_clip = shared_clip
        self.batchnorm = None
        self.set_batchnorm(batchnorm)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], device: Union[str, torch.device] = "cpu",
                        batchnorm: str = DEFAULT_BATCHNORM, clip_precision: str = "auto",
                        rotation: Optional[str] = None, trust: bool = False,
                        workspace: Workspace = GENSIM_WORKSPACE) -> "Policy":
        """Load and validate a checkpoint (family detected from its keys and shapes).

        Args:
            path: Lightning ``.ckpt`` of the 'cliport' agent (GenSim or CLIPort).
            device: 'cpu' or 'cuda' (or a torch.device).
            batchnorm: 'batch' (reference evaluation, default) or 'running' (eval mode).
            clip_precision: 'auto', 'float16', 'float16-emulated' or 'float32' (see clip_rn50).
            rotation: rotation numerics; None picks the family's reference ('kornia-0.5+' for
                GenSim, 'kornia-0.4' for CLIPort).
            trust: allow checkpoints that need pickle code execution.
        Raises:
            CheckpointError (and subclasses) for unreadable, unsafe, unknown or corrupt files.
        """
        device = _device(device)  # fail before reading a gigabyte
        if batchnorm not in BATCHNORM_MODES:
            raise InputError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
        return cls.from_loaded(load_checkpoint(path, trust=trust), device=device, batchnorm=batchnorm,
                               clip_precision=clip_precision, rotation=rotation, workspace=workspace)

    @classmethod
    def from_loaded(cls, ckpt: LoadedCheckpoint, device="cpu", batchnorm: str = DEFAULT_BATCHNORM,
                    clip_precision: str = "auto", rotation: Optional[str] = None,
                    workspace: Workspace = GENSIM_WORKSPACE) -> "Policy":
        """Build from an already validated :class:`LoadedCheckpoint`."""
        device = _device(device)
        precision = resolve_clip_precision(clip_precision, device, batchnorm)
        rotation = rotation or DEFAULT_ROTATION[ckpt.family]
        if rotation not in CONVENTIONS:
            raise InputError(f"rotation must be one of {CONVENTIONS}, got {rotation!r}")
        state = ckpt.state_dict
        with torch.device("meta"):
            attention, transport = Attention(ckpt.family, rotation), Transport(ckpt.family, rotation)
        expected = expected_entries(ckpt.family)
        for prefix, module in (("attention.", attention), ("transport.", transport)):
            # cast like load_state_dict into the reference's parameters would (e.g. a half export)
            own = {k[len(prefix):]: (v if v.dtype == expected[k][1] else v.to(expected[k][1]))
                   for k, v in state.items() if k.startswith(prefix) and ".clip_rn50." not in k}
            module.load_state_dict(own, strict=True, assign=True)
        copies = {name: clip_state(state, prefix) for name, prefix in CLIP_PREFIXES.items()}
        trunks, shared_visual = _build_visual(copies, precision, device)
        texts, shared_text = _build_text(copies, device)
        attention.attn_stream_two.attach(trunks["attention"])
        transport.key_stream_two.attach(trunks["key"])
        transport.query_stream_two.attach(trunks["query"])
        attention.to(device).eval()
        transport.to(device).eval()
        shared = {"visual_trunks": shared_visual, "text_encoders": shared_text}
        return cls(attention, transport, texts, ckpt.family, batchnorm, precision, device, workspace, shared)

    def set_batchnorm(self, mode: str) -> None:
        """Switch between 'batch' and 'running' statistics (see the module docstring)."""
        if mode not in BATCHNORM_MODES:
            raise InputError(f"batchnorm must be one of {BATCHNORM_MODES}, got {mode!r}")
        for stream in (self.attention.attn_stream_two, self.transport.key_stream_two,
                       self.transport.query_stream_two):
            stream.set_batch_stats(mode == "batch")
        self.batchnorm = mode

    # ---------------------------------------------------------------- inference
    def text_features(self, goal: str, stream: str = "attention") -> torch.Tensor:
        """(1, 1024) float16 CLIP sentence feature of ``goal`` for ``stream``, cached per goal."""
        encoder = self._text[stream]
        key = (id(encoder), goal)
        if key not in self._text_cache:
            with torch.inference_mode():
                self._text_cache[key] = encoder(goal)
        return self._text_cache[key]

    def image(self, observation) -> np.ndarray:
        """The (320, 160, 6) float32 policy input of a HeightmapObservation or an image array."""
        if hasattr(observation, "color") and hasattr(observation, "height"):
            from sim2real.heightmap import policy_input
            img = policy_input(observation)
        else:
            img = np.asarray(observation)
        if img.shape != IN_SHAPE:
            raise InputError(f"policy input must be {IN_SHAPE} (RGB 0-255 + height x3), got {img.shape}")
        img = img.astype(np.float32, copy=False)
        if not np.all(np.isfinite(img)):
            raise InputError("policy input contains NaN or inf; fill heightmap holes before acting")
        return img

    def pick_logits(self, observation, goal: str) -> torch.Tensor:
        """(320, 160) float32 attention logits before softmax."""
        img = torch.from_numpy(np.ascontiguousarray(self.image(observation))).to(self.device)
        with torch.inference_mode():
            return self.attention(img, self.text_features(goal, "attention")).float()

    def place_logits(self, observation, goal: str, p0) -> torch.Tensor:
        """(36, 320, 160) float32 transport logits before softmax, conditioned on pick pixel p0."""
        p0 = _check_pixel(p0)
        img = torch.from_numpy(np.ascontiguousarray(self.image(observation))).to(self.device)
        return self._place(img, self._key(img, goal), goal, p0)

    def _key(self, img: torch.Tensor, goal: str) -> torch.Tensor:
        """Transport key map (1, 3, 384, 224); it does not depend on the pick pixel."""
        lang = self.text_features(goal, "key")
        with torch.inference_mode():
            return self.transport.key(self.transport.padded(img), lang)

    def _place(self, img: torch.Tensor, key: torch.Tensor, goal: str, p0) -> torch.Tensor:
        lang = self.text_features(goal, "query")
        with torch.inference_mode():
            tr = self.transport
            return correlate(key, tr.query(tr.crops(tr.padded(img), p0), lang)).float()

    def act(self, observation, goal: str, p0=None) -> PickPlaceAction:
        """Pick and place for ``goal`` on ``observation`` (HeightmapObservation or (320,160,6)).

        ``p0`` (row, col) overrides the pick pixel the transport is conditioned on. Poses: pixel
        (row, col), theta = k * 2pi/36, xyz with z from the heightmap at the pixel, quaternion
        of Euler (0, 0, -theta) -- as the reference agents' ``act()``.

        With float16 CLIP on the CPU, the transport's key map (independent of the pick) is
        computed in a second thread while the attention runs: CPU float16 convolutions of a
        single image use one core.
        """
        img_np = self.image(observation)
        p0 = None if p0 is None else _check_pixel(p0)
        img = torch.from_numpy(np.ascontiguousarray(img_np)).to(self.device)
        for stream in ("attention", "key", "query"):
            self.text_features(goal, stream)  # fill the cache before any thread reads it
        if self.clip_precision == "float16" and self.device.type == "cpu":
            with ThreadPoolExecutor(max_workers=1) as pool:
                key_future = pool.submit(self._key, img, goal)
                pick_logits = self.pick_logits(img_np, goal)
                key = key_future.result()
        else:
            pick_logits = self.pick_logits(img_np, goal)
            key = self._key(img, goal)
        pick_px = softmax_argmax_pick(pick_logits)
        p0_px = pick_px if p0 is None else p0
        place_logits = self._place(img, key, goal, p0_px)
        r, c, k = softmax_argmax_place(place_logits)
        height = img_np[:, :, 3]
        pick = PixelPose.from_pixel(p0_px, 0.0, height, self.workspace)
        place = PixelPose.from_pixel((r, c), theta_from_bin(k, N_ROTATIONS), height, self.workspace)
        info = {"family": self.family, "batchnorm": self.batchnorm, "clip_precision": self.clip_precision,
                "place_rotation_bin": k, "attention_argmax": list(pick_px)}
        return PickPlaceAction(pick, place, pick_logits.cpu().numpy(), place_logits.cpu().numpy(), info)


def _device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device}")
    return device


def _check_pixel(p) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in p)
    except (TypeError, ValueError):
        raise InputError(f"pixel must be (row, col) integers, got {p!r}") from None
    if not (0 <= r < IN_SHAPE[0] and 0 <= c < IN_SHAPE[1]):
        raise InputError(f"pixel {(r, c)} is outside the {IN_SHAPE[0]}x{IN_SHAPE[1]} heightmap")
    return r, c


def _build_visual(copies: dict, precision: str, device) -> tuple[dict, int]:
    """One VisualTrunk per distinct copy; equal tensors stored once. Returns (trunks, n distinct)."""
    per_copy = _to_device(_dedupe({n: visual_state(c) for n, c in copies.items()}), device)
    owner, cache, trunks = _groups(per_copy), {}, {}
    for name, tensors in per_copy.items():
        if owner[name] != name:
            trunks[name] = trunks[owner[name]]
            continue
        trunk = VisualTrunk(precision)
        trunk.load(tensors, cache)
        trunks[name] = trunk
    return trunks, len({id(t) for t in trunks.values()})


def _build_text(copies: dict, device) -> tuple[dict, int]:
    per_copy = _to_device(_dedupe({n: text_state(c) for n, c in copies.items()}), device)
    owner = _groups(per_copy)
    encoders = {}
    for name, tensors in per_copy.items():
        if owner[name] != name:
            encoders[name] = encoders[owner[name]]
            continue
        enc = TextEncoder()
        enc.load(tensors)
        encoders[name] = enc.to(device).eval()
    return encoders, len({id(e) for e in encoders.values()})
