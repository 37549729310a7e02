"""Shared test setup: headless plotting, the bench/ reference implementations on the path."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

try:
    from hypothesis import settings

    settings.register_profile("sim2real", deadline=None, max_examples=60)
    settings.load_profile("sim2real")
except ImportError:  # hypothesis is a test dependency; without it the property tests fail loudly
    pass


@pytest.fixture
def repo_root() -> Path:
    """The checkout's root directory."""
    return REPO
