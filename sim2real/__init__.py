"""sim2real: run GenSim / CLIPort transporter policies on a real arm (or its digital twin).

Pipeline: RGB-D capture -> heightmap -> policy -> pick/place poses -> safety -> motion -> trial log.
The core has no ROS import; ROS 2 nodes live in ``sim2real.ros``.
"""
__version__ = "0.1.0"
