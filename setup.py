"""ament_python package `sim2real`; also installs with plain pip (see Makefile / README)."""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "sim2real"


def tree(src):
    """data_files entries that install ``src/**`` under share/sim2real/src, keeping sub-folders."""
    entries = {}
    for path in glob(os.path.join(src, "**", "*"), recursive=True):
        if os.path.isfile(path):
            entries.setdefault(os.path.join("share", package_name, os.path.dirname(path)), []).append(path)
    return sorted(entries.items())


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench", "bench.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        (os.path.join("share", package_name, "launch"), glob("launch/*.launch.py")),
        *tree("config"),
        *tree("calibration"),
    ],
    package_data={"sim2real.console": ["static/*"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sim2real maintainers",
    maintainer_email="sim2real@example.com",
    description="GenSim / CLIPort policies on a real arm: RealSense -> heightmap -> policy -> MoveIt 2, with a PyBullet twin.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "sim2real = sim2real.cli:main",
            "camera_node = sim2real.ros.nodes.camera:main",
            "heightmap_node = sim2real.ros.nodes.heightmap:main",
            "policy_node = sim2real.ros.nodes.policy:main",
            "executor_node = sim2real.ros.nodes.executor:main",
            "trials_node = sim2real.ros.nodes.trials:main",
            "pipeline_node = sim2real.ros.nodes.pipeline:main",
            "calibration_tf_node = sim2real.ros.nodes.calibration_tf:main",
            "calibrate_node = sim2real.ros.nodes.calibrate:main",
            "twin_node = sim2real.ros.nodes.twin:main",
        ],
    },
)
