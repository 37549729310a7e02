"""Demonstrations: record them in the twin, store and read them in GenSim's dataset format.

* :mod:`sim2real.demos.dataset` -- the on-disk format and its safe reader (pure numpy; the API
  the fine-tuner and the operator console use);
* :mod:`sim2real.demos.pickling` -- the allow-list unpickler and a NumPy-1 compatible writer;
* :mod:`sim2real.demos.record` -- oracle demonstrations in the twin (PyBullet).
"""
from sim2real.demos.dataset import (FIELDS, OBS_EXTRA, VIEWS, DemoDataset, camera_obs, episode_filename,
                                    gensim_cameras, restricted_load, save_episode)
from sim2real.errors import DatasetError

__all__ = ["FIELDS", "VIEWS", "OBS_EXTRA", "DatasetError", "DemoDataset", "camera_obs", "episode_filename",
           "gensim_cameras", "restricted_load", "save_episode"]
