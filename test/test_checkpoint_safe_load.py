"""Issue 10: real Lightning checkpoints load without running any pickled code.

A Lightning ``.ckpt`` holds, next to the ``state_dict``, pickled objects in ``callbacks`` and
``hyper_parameters`` (OmegaConf configs, ModelCheckpoint state, AttributeDict). They are built
here from a throw-away module that is removed before loading (as on a machine without Lightning),
including objects whose unpickling would write a marker file if any of their code ran.
"""
import importlib
import json
import os
import sys
import textwrap
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ckpt_factory import _random_entry, load_spec, scene_image  # noqa: E402

from sim2real.errors import CheckpointError  # noqa: E402
from sim2real.policy.checkpoint import (InertObject, SkippedObjectsWarning, TruncatedCheckpointError,  # noqa: E402
                                        UnsafeCheckpointError, read_checkpoint, read_inert)

FAKE_MODULE = '''
import os


def write_marker(path):
    with open(path, "w") as f:
        f.write("pickled code ran")
    return 0


class DictConfig:  # like omegaconf.DictConfig: state restored through __setstate__
    def __init__(self, content):
        self._content = dict(content)

    def __setstate__(self, state):
        write_marker(os.environ["SIM2REAL_TEST_MARKER"] + ".setstate")
        self.__dict__.update(state)


class AttributeDict(dict):  # like lightning's hyper_parameters container (a dict subclass)
    pass


class ModelCheckpoint:
    def __init__(self):
        self.best_model_path = "/runs/epoch=3.ckpt"
        self.best_model_score = None


class Booby:  # unpickling calls write_marker(...) unless the loader refuses to run code
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (write_marker, (self.marker + ".reduce",))


class SystemCall:  # the classic: os.system at load time
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker + ".system",))
'''


def _small_state():
    """A subset of a real GenSim state_dict (a few entries of each dtype), plus a shared-storage view."""
    spec = load_spec("gensim")
    picked = [e for e in spec if "clip_rn50" not in e[0]][:12] + [e for e in spec if "clip_rn50" in e[0]][:3]
    picked += [e for e in spec if e[2] != "float32"][:3]  # float16 CLIP and int64 counters too
    gen = torch.Generator().manual_seed(3)
    state = OrderedDict((k, _random_entry(k, shape, dtype, gen)) for k, shape, dtype in picked)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state["extra.view"] = base.t()  # non-contiguous view
    state["extra.same"] = base  # the same storage twice
    return state


@pytest.fixture()
def lightning_ckpt(tmp_path, monkeypatch):
    """(path, state_dict, marker prefix) of a checkpoint whose extra entries need an absent module."""
    marker = str(tmp_path / "marker")
    monkeypatch.setenv("SIM2REAL_TEST_MARKER", marker)
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "fake_lightning_cb.py").write_text(textwrap.dedent(FAKE_MODULE))
    sys.path.insert(0, str(mod_dir))
    try:
        m = importlib.import_module("fake_lightning_cb")
        state = _small_state()
        hp = m.AttributeDict(lr=1e-4, cfg=m.DictConfig({"train": {"n_rotations": 36}}))
        ckpt = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.9.5", "state_dict": state,
                "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": m.ModelCheckpoint(),
                              "booby": m.Booby(marker), "system": m.SystemCall(marker)},
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
                "hyper_parameters": hp}
        path = tmp_path / "lightning.ckpt"
        torch.save(ckpt, path)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop("fake_lightning_cb", None)
        (mod_dir / "fake_lightning_cb.py").unlink()
    return path, state, marker


def _markers(marker):
    return sorted(p.name for p in Path(marker).parent.glob(Path(marker).name + "*"))


def test_lightning_checkpoint_loads_its_tensors_and_runs_no_pickled_code(lightning_ckpt):
    path, state, marker = lightning_ckpt
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_checkpoint(path)
    assert list(loaded) == list(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
    assert _markers(marker) == []  # neither __reduce__, __setstate__ nor os.system ran
    skipped = [w for w in caught if issubclass(w.category, SkippedObjectsWarning)]
    assert len(skipped) == 1
    text = str(skipped[0].message)
    for name in ("fake_lightning_cb.ModelCheckpoint", "fake_lightning_cb.DictConfig",
                 "fake_lightning_cb.write_marker", "fake_lightning_cb.AttributeDict"):
        assert name in text, text
    assert "system" in text  # os.system is named too (posix.system / nt.system)


def test_inert_records_keep_the_plain_data(lightning_ckpt):
    path, _, marker = lightning_ckpt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = read_inert(path)
    hp = obj["hyper_parameters"]
    assert isinstance(hp, InertObject) and hp.pickled_name == "fake_lightning_cb.AttributeDict"
    assert hp.items["lr"] == 1e-4 and hp.items["cfg"].state["_content"] == {"train": {"n_rotations": 36}}
    cb = obj["callbacks"]["ModelCheckpoint{'monitor': 'val_loss'}"]
    assert cb.state == {"best_model_path": "/runs/epoch=3.ckpt", "best_model_score": None}
    booby = obj["callbacks"]["booby"]
    assert booby.pickled_name == "fake_lightning_cb.write_marker" and booby.args[0].endswith("marker.reduce")
    assert obj["epoch"] == 3 and obj["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-4
    assert _markers(marker) == []


def test_trusted_load_of_a_checkpoint_whose_classes_are_missing_is_not_called_truncated(lightning_ckpt):
    path, state, marker = lightning_ckpt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = read_checkpoint(path, trust=True)
    assert torch.equal(loaded["extra.same"], state["extra.same"]) and _markers(marker) == []


def test_pickled_objects_inside_the_state_dict_are_still_refused(tmp_path, monkeypatch):
    marker = str(tmp_path / "marker")
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "fake_lightning_cb.py").write_text(textwrap.dedent(FAKE_MODULE))
    sys.path.insert(0, str(mod_dir))
    try:
        m = importlib.import_module("fake_lightning_cb")
        path = tmp_path / "bad.ckpt"
        torch.save({"state_dict": {"w": torch.ones(2), "cb": m.Booby(marker)}}, path)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop("fake_lightning_cb", None)
    with pytest.raises(UnsafeCheckpointError, match="--trust-checkpoint"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_checkpoint(path)
    assert _markers(marker) == []


@pytest.mark.parametrize("text", ["not a checkpoint", "hello world", "epoch: 3\n", "", "PK\x03\x04 broken zip"])
@pytest.mark.parametrize("trust", [False, True])
def test_a_text_file_is_a_checkpoint_error(tmp_path, text, trust):
    path = tmp_path / "notes.ckpt"
    path.write_text(text)
    with pytest.raises(TruncatedCheckpointError, match="not a torch checkpoint"):
        read_checkpoint(path, trust=trust)


def test_a_directory_or_a_missing_file_is_a_checkpoint_error(tmp_path):
    for p in (tmp_path, tmp_path / "nope.ckpt"):
        with pytest.raises(CheckpointError):
            read_checkpoint(p)


def test_cli_text_checkpoint_exits_2(tmp_path, capsys):
    from sim2real.cli import main as cli_main

    bad = tmp_path / "notes.ckpt"
    bad.write_text("hello world")
    obs = tmp_path / "obs.npz"
    np.savez(obs, image=scene_image(7))
    rc = cli_main(["act", "--checkpoint", str(bad), "--observation", str(obs), "--goal", "g"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a torch checkpoint" in err and "Traceback" not in err
