"""The fine-tuning loop: sample -> GenSim training step -> metrics, checkpoints, resume.

Reading order: :func:`finetune` opens the demonstrations and the checkpoint, restores a previous
run's state when resuming, then repeats ``next_batch -> train_step -> log -> maybe save`` and
writes the final checkpoint and the loss curve.

Sampling (GenSim's ``RavensDataset`` behind a shuffling ``DataLoader``): every epoch visits the
episodes of all ``--demos`` folders once in a random order, in batches of ``batch_size`` (the
last batch of an epoch may be smaller, as ``drop_last=False`` makes it); each element is a random
step of its episode other than the final entry, made into a sample by
:func:`sim2real.training.sample.make_sample`. Random numbers: one ``numpy.random.RandomState(seed)``
(epoch permutation, step choice, augmentation, in that order per element) and one
``random.Random(seed)`` (the depth noise level). With ``--seed 0`` and batch size 1 the first
sample is episode ``RandomState(0).permutation(N)[0]``, step ``choice(range(T))`` of it.
"""
from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from sim2real.errors import InputError

RESUME_FILE = "resume.pt"
METRICS_FILE = "metrics.csv"
LAST_CKPT = "last.ckpt"
CURVE_PNG = "loss_curve.png"
METRIC_COLUMNS = ("step", "attn_loss", "transport_loss", "kind", "episodes",
                  "pick_err_mm", "place_err_mm", "rot_acc", "n_val")
LIGHTNING_VERSION = "1.9.5"
"""Written into checkpoints as ``pytorch-lightning_version`` (the release line GenSim's code targets)."""


@dataclass
class FinetuneConfig:
    checkpoint: str
    demos: list
    out: str
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    augment: str = "gensim"
    val: list = field(default_factory=list)
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    save_every: int = 100
    val_every: int = 100
    clip_precision: str = "float16"
    threads: int = 0
    progress: bool = True
    modules: str = "both"
    """'both' (GenSim's step) or 'attention' (the pick module alone: a cheaper CPU demonstration)."""


@dataclass
class EpisodeSource:
    """Episodes of one folder: ``n``, ``episode(i)`` -> [(obs, act, reward, info)], ``image(obs, info)``."""
    name: str
    n: int
    episode: Callable
    image: Callable


def open_sources(folders: Sequence[str]) -> list[EpisodeSource]:
    """One source per GenSim-format folder (validated on open; DatasetError otherwise)."""
    from sim2real.demos.dataset import DemoDataset

    out = []
    for f in folders:
        ds = DemoDataset(f)
        if ds.n_episodes == 0:
            raise InputError(f"{f}: no episodes; record some with `sim2real demos --out {f}`")
        out.append(EpisodeSource(str(f), ds.n_episodes, ds.episode, ds.image))
    return out


# ------------------------------------------------------------------------------------ sampling
class Sampler:
    """GenSim's epoch-shuffled sampling of (episode, step) with the module doc's random streams."""

    def __init__(self, sources: Sequence[EpisodeSource], batch_size: int, augment: str, seed: int):
        self.sources, self.batch_size, self.augment = list(sources), batch_size, augment
        self.index = [(s, i) for s in range(len(self.sources)) for i in range(self.sources[s].n)]
        self.rng, self.py_rng = np.random.RandomState(seed), random.Random(seed)
        self.order: list[int] = []
        self.pos = 0
        self.epoch = 0
        self._cache: dict = {}

    def _episode(self, s: int, i: int) -> list:
        if (s, i) not in self._cache:
            self._cache[(s, i)] = self.sources[s].episode(i)
        return self._cache[(s, i)]

    def next_batch(self) -> tuple[list[dict], list[str]]:
        """(samples, 'source:episode:step' tags) of the next batch."""
        from sim2real.training.sample import make_sample

        if self.pos >= len(self.order):
            if self.order:
                self.epoch += 1
            self.order, self.pos = [int(k) for k in self.rng.permutation(len(self.index))], 0
        picks = self.order[self.pos:self.pos + self.batch_size]
        self.pos += len(picks)
        samples, tags = [], []
        for k in picks:
            s, i = self.index[k]
            episode = self._episode(s, i)
            if len(episode) < 2:
                raise InputError(f"{self.sources[s].name}: episode {i} has no action (fewer than 2 entries)")
            t = int(self.rng.choice(range(len(episode) - 1)))
            obs, act, _, info = episode[t]
            img = self.sources[s].image(obs, info)
            samples.append(make_sample(img, act, info, self.augment, self.rng, self.py_rng))
            _check_in_frame(samples[-1], img.shape, f"{self.sources[s].name} episode {i} step {t}")
            tags.append(f"{s}:{i}:{t}")
        return samples, tags

    def state(self) -> dict:
        name, keys, pos, has_gauss, gauss = self.rng.get_state()
        return {"np": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
                "py": _py_state(self.py_rng.getstate()), "order": list(self.order), "pos": self.pos,
                "epoch": self.epoch}

    def restore(self, st: dict) -> None:
        n = st["np"]
        self.rng.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        v, internal, g = st["py"]
        self.py_rng.setstate((v, tuple(internal), g))
        self.order, self.pos, self.epoch = list(st["order"]), int(st["pos"]), int(st["epoch"])


def _py_state(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _check_in_frame(sample: dict, shape, where: str) -> None:
    r, c = (int(v) for v in sample["p0"])
    if not (0 <= r < shape[0] and 0 <= c < shape[1]):
        raise InputError(f"{where}: the pick position maps to pixel {(r, c)}, outside the {shape[0]}x{shape[1]} "
                         "heightmap; the demonstration is outside GenSim's workspace (re-record it)")


# ------------------------------------------------------------------------------------ files
def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def lightning_checkpoint(state_dict, step: int, epoch: int, extra: dict) -> dict:
    """What GenSim's ``trainer.save_checkpoint`` holds that its ``agent.load`` and our Policy read,
    plain types only (loads with ``weights_only=True``)."""
    return {"epoch": epoch, "global_step": step, "pytorch-lightning_version": LIGHTNING_VERSION,
            "state_dict": state_dict, "optimizer_states": [], "lr_schedulers": [], "sim2real_finetune": extra}


class MetricsLog:
    """metrics.csv, one row per optimiser step (+ validation rows); flushed every row."""

    def __init__(self, path: Path, keep_until: Optional[int]):
        self.path = path
        rows = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
        self.rows = rows
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, METRIC_COLUMNS)

    def write(self, row: dict) -> None:
        row = {k: row.get(k, "") for k in METRIC_COLUMNS}
        self.rows.append({k: str(v) for k, v in row.items()})
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def plot_curve(rows: list, path: Path) -> None:
    """Loss (log scale) per step and, when present, validation pixel errors."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [r for r in rows if r["kind"] == "train"]
    va = [r for r in rows if r["kind"] == "val"]
    fig, axes = plt.subplots(1, 2 if va else 1, figsize=(11 if va else 6, 4), squeeze=False)
    ax = axes[0][0]
    steps = [int(r["step"]) for r in tr]
    ax.plot(steps, [float(r["attn_loss"]) for r in tr], label="attention (pick)")
    ax.plot(steps, [float(r["transport_loss"]) for r in tr], label="transport (place)")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (GenSim's mean cross-entropy)")
    ax.legend()
    if va:
        ax = axes[0][1]
        vs = [int(r["step"]) for r in va]
        ax.plot(vs, [float(r["pick_err_mm"]) for r in va], "o-", label="pick error (mm)")
        ax.plot(vs, [float(r["place_err_mm"]) for r in va], "o-", label="place error (mm)")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("held-out pixel error (mm)")
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ the loop
def _check_config(cfg: FinetuneConfig) -> None:
    from sim2real.training.sample import AUGMENTATIONS

    if cfg.steps < 1:
        raise InputError(f"--steps must be at least 1, got {cfg.steps}")
    if cfg.batch_size < 1 or cfg.batch_size % 36 == 0:
        raise InputError(f"--batch-size must be >= 1 and not a multiple of 36 (GenSim's language repeat "
                         f"mistakes such a batch for transport crops), got {cfg.batch_size}")
    if not (cfg.lr > 0 and np.isfinite(cfg.lr)):
        raise InputError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.augment not in AUGMENTATIONS:
        raise InputError(f"--augment must be one of {AUGMENTATIONS}, got {cfg.augment!r}")
    if cfg.save_every < 1 or cfg.val_every < 1:
        raise InputError("--save-every and --val-every must be at least 1")
    if cfg.modules not in ("both", "attention"):
        raise InputError(f"--modules must be 'both' or 'attention', got {cfg.modules!r}")
    if cfg.clip_precision not in ("float16", "float32"):
        raise InputError(f"--clip-precision must be float16 (GenSim's, exact) or float32, got {cfg.clip_precision!r}")


def _resume_signature(cfg: FinetuneConfig) -> dict:
    """Settings a resumed run must share with the run it continues."""
    keys = ("checkpoint", "demos", "batch_size", "lr", "augment", "seed", "clip_precision", "modules")
    return {k: (str(v) if k == "checkpoint" else ([str(x) for x in v] if isinstance(v, list) else v))
            for k, v in asdict(cfg).items() if k in keys}


def finetune(cfg: FinetuneConfig, sources: Optional[list] = None, val_sources: Optional[list] = None,
             on_step: Optional[Callable] = None) -> dict:
    """Run (or resume) a fine-tuning; returns {'step', 'attn_loss', 'transport_loss', 'out'}.

    ``sources`` / ``val_sources`` replace ``cfg.demos`` / ``cfg.val`` (tests use in-memory episodes).
    """
    from sim2real.policy.checkpoint import load_checkpoint
    from sim2real.policy.policy import _device
    from sim2real.training.model import TrainingAgent
    from sim2real.training.step import collate, make_optimizers, train_step
    from sim2real.training.validate import validate

    _check_config(cfg)
    device = _device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    sources = sources if sources is not None else open_sources(cfg.demos)
    val_sources = val_sources if val_sources is not None else (open_sources(cfg.val) if cfg.val else [])
    resume_path = out / RESUME_FILE
    state = None
    if cfg.resume and resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state["signature"] != _resume_signature(cfg):
            raise InputError(f"{out} holds a run with other settings ({state['signature']}); resume with the same "
                             "--checkpoint/--demos/--batch-size/--lr/--augment/--seed, or use a new --out")
    elif (out / METRICS_FILE).is_file() and not cfg.resume:
        raise InputError(f"{out} already holds a fine-tuning run; pass --resume to continue it or choose a new --out")
    ckpt = load_checkpoint(cfg.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    agent = TrainingAgent(ckpt, device=device, clip_precision=cfg.clip_precision)
    optimizers = make_optimizers(agent, cfg.lr)
    sampler = Sampler(sources, cfg.batch_size, cfg.augment, cfg.seed)
    step = 0
    if state is not None:
        _load_agent_state(agent, state["state_dict"])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        sampler.restore(state["sampler"])
        step = int(state["step"])
    log = MetricsLog(out / METRICS_FILE, keep_until=step)
    extra = {"source_checkpoint": str(cfg.checkpoint), "demos": [s.name for s in sources], "lr": cfg.lr,
             "batch_size": cfg.batch_size, "augment": cfg.augment, "seed": cfg.seed}
    bar = _progress(cfg, step)
    last = (float("nan"), float("nan"))
    try:
        while step < cfg.steps:
            samples, tags = sampler.next_batch()
            last = train_step(agent, optimizers, collate(samples, device), transport=cfg.modules == "both")
            step += 1
            log.write({"step": step, "attn_loss": repr(last[0]), "transport_loss": repr(last[1]),
                       "kind": "train", "episodes": " ".join(tags)})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(attn=f"{last[0]:.3g}", transport=f"{last[1]:.3g}")
            if val_sources and (step % cfg.val_every == 0 or step == cfg.steps):
                v = validate(agent, val_sources, transport=cfg.modules == "both")
                log.write({"step": step, "kind": "val", **v})
            if step % cfg.save_every == 0 or step == cfg.steps:
                sd = agent.state_dict_for_checkpoint()
                ck = lightning_checkpoint(sd, step, sampler.epoch, {**extra, "step": step})
                if step % cfg.save_every == 0:
                    (out / "checkpoints").mkdir(exist_ok=True)
                    atomic_save(ck, out / "checkpoints" / f"step{step:06d}.ckpt")
                atomic_save(ck, out / LAST_CKPT)
                atomic_save({"step": step, "state_dict": sd, "signature": _resume_signature(cfg),
                             "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                             "sampler": sampler.state()}, resume_path)
                plot_curve(log.rows, out / CURVE_PNG)
            if on_step is not None:
                on_step(step, last)
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return {"step": step, "attn_loss": last[0], "transport_loss": last[1], "out": str(out)}


def _load_agent_state(agent, sd: dict) -> None:
    """Put a saved checkpoint state back into the agent's modules and CLIP trunks' BN buffers."""
    from sim2real.policy.checkpoint import CLIP_PREFIXES

    for prefix, module in (("attention.", agent.attention), ("transport.", agent.transport)):
        own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and ".clip_rn50." not in k}
        module.load_state_dict(own, strict=True)
    for name, prefix in CLIP_PREFIXES.items():
        vis = agent.trunks[name].visual
        for k, t in vis.state_dict().items():
            if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
                t.copy_(sd[prefix + "visual." + k])


def _progress(cfg: FinetuneConfig, start: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, desc="finetune", unit="step", dynamic_ncols=True)
