"""Camera-to-robot calibration: ChArUco board, hand-eye, table plane and workspace frame, checks.

Modules (each a pure core plus small helpers that talk to ports):

* :mod:`~sim2real.calibration.storage` - the calibration YAML (load/save, validated).
* :mod:`~sim2real.calibration.board` - the ChArUco board: config, printable PDF/PNG, detection, pose.
* :mod:`~sim2real.calibration.render` - exact projective rendering of the board (tests, twin).
* :mod:`~sim2real.calibration.handeye` - eye-to-hand / eye-in-hand solve, residuals, outliers.
* :mod:`~sim2real.calibration.collect` - pose generation and sample collection through the ports.
* :mod:`~sim2real.calibration.table` - RANSAC table plane and the workspace frame.
* :mod:`~sim2real.calibration.check` - check image and heightmap statistics.
* :mod:`~sim2real.calibration.touch` - touch test.
* :mod:`~sim2real.calibration.synthetic` - exact pinhole camera + ideal arm as ports (tests, ``--robot synthetic``).
* :mod:`~sim2real.calibration.twin_rig` - a textured board held by the PyBullet twin arm (``--robot sim``).
"""
