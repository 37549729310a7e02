"""Fine-tuning a GenSim / CLIPort ``cliport`` checkpoint on demonstrations, as GenSim trains it.

Modules: ``sample`` (GenSim's ``process_sample``, ``perturb`` and sim-to-real augmentation),
``model`` (the agent's modules in training form, CLIP frozen in float16, three CLIP copies),
``step`` (batch forward passes, GenSim's loss, one Adam per module: the maths, pure),
``validate`` (held-out pick/place error), ``loop`` (sampling, metrics, checkpoints, resume).
CLI: ``sim2real finetune`` (``sim2real/cli/finetune.py``); docs: ``docs/finetune.md``.
"""
from sim2real.training.loop import FinetuneConfig, finetune

__all__ = ["FinetuneConfig", "finetune"]
