"""The CLIPort / GenSim ``cliport`` agent as a pure-torch policy (no ROS, no downloads).

``Policy.from_checkpoint(path, device=..., batchnorm=...)`` then ``policy.act(observation, goal)``.
Modules: ``checkpoint`` (safe loading, family detection, validation), ``clip_rn50`` (open_clip
trunk, text encoder, tokenizer), ``networks`` (the two lateral streams), ``rotation`` (kornia's
rotation numerics in plain torch), ``transporter`` (attention / transport maths), ``policy``
(the ``Policy`` class), ``reference`` (a plain re-implementation of the reference algorithm,
the benchmark's baseline); the affordance picture is ``sim2real.viz.save_affordance_png``.
"""
from sim2real.policy.checkpoint import (CheckpointFamilyError, NonFiniteWeightsError, TruncatedCheckpointError,
                                        UnsafeCheckpointError, detect_family, load_checkpoint)
from sim2real.policy.policy import BATCHNORM_MODES, DEFAULT_BATCHNORM, Policy

__all__ = ["Policy", "BATCHNORM_MODES", "DEFAULT_BATCHNORM", "load_checkpoint", "detect_family",
           "CheckpointFamilyError", "NonFiniteWeightsError", "TruncatedCheckpointError", "UnsafeCheckpointError"]
