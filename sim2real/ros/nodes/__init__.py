"""Thin ROS 2 nodes. Each module has a ``main()`` console entry; rclpy is imported inside it.

camera (pyrealsense2 -> Images + CameraInfo), heightmap (RGB-D + TF -> heightmap Images),
policy (goal + heightmap -> pick/place PoseArray + overlay), executor (PoseArray -> MoveIt,
modes auto / confirm / dry_run), trials (services: start / label / done -> trial log),
pipeline (heightmap + policy + executor in one process), calibration_tf (calibration -> static TF).
"""
