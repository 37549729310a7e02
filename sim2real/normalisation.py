"""The simulator's input statistics: what GenSim's / CLIPort's ``preprocess`` normalises with.

One definition, used by the policy (to normalise its input exactly as the reference does) and by
the calibration check (to warn when a real heightmap is far from what the policy saw). No torch
import, so the check stays light.
"""

TRANSPORTER_COLOR_MEAN = (0.18877631, 0.18877631, 0.18877631)
"""Mean of colour / 255 per channel (R, G, B) in the transporter (ResNet) stream."""

TRANSPORTER_COLOR_STD = (0.07276466, 0.07276466, 0.07276466)
"""Std of colour / 255 per channel in the transporter stream."""

TRANSPORTER_DEPTH_MEAN = 0.00509261
"""Mean height in metres above the table."""

TRANSPORTER_DEPTH_STD = 0.00903967
"""Std of the height in metres."""

CLIP_COLOR_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""CLIP's image mean per channel (the CLIP stream)."""

CLIP_COLOR_STD = (0.26862954, 0.26130258, 0.27577711)
"""CLIP's image std per channel."""
