"""Task YAML loading, name resolution and validation (no simulator)."""
import shutil

import pytest

from sim2real.errors import ConfigError, UnknownTaskError
from sim2real.tasks import REAL_WORLD_TASKS, load_all, load_task, resolve, resolve_many, tasks_dir


def test_the_nine_real_world_tasks_load_and_cite_gensim():
    tasks = load_all()
    assert set(REAL_WORLD_TASKS) <= set(tasks)
    for name in REAL_WORLD_TASKS:
        spec = tasks[name]
        assert "cliport/" in spec.source["gensim"], name
        assert spec.goals and spec.objects and spec.language


@pytest.mark.parametrize("typed, name", [("build wheel", "build-wheel"), ("Build_Wheel", "build-wheel"),
                                         ("stack block", "stack-block"), ("pack balls", "pack-spheres"),
                                         ("block-in-bowl-in-zone", "block-in-bowl-in-zone")])
def test_aliases_resolve(typed, name):
    assert resolve(typed).name == name


def test_unknown_task_lists_nearest_names():
    with pytest.raises(UnknownTaskError) as e:
        resolve("buld wheal")
    assert "nearest: build-wheel" in str(e.value)


def test_all_is_the_nine_tasks_in_order():
    assert [s.name for s in resolve_many("all")] == list(REAL_WORLD_TASKS)


def test_pos_eps_follows_gensim_bowl_rule():
    tasks = load_all()
    assert tasks["put-block-in-bowl"].default_pos_eps() == 0.05
    assert tasks["align-block-zone"].default_pos_eps() == 0.01


def test_adding_a_yaml_adds_a_task(tmp_path):
    for f in tasks_dir().glob("*.yaml"):
        shutil.copy(f, tmp_path)
    (tmp_path / "cylinder-zone.yaml").write_text(
        "name: cylinder-zone\naliases: [cylinder in zone]\nlanguage: 'put the {pick} cylinder in the {place} zone'\n"
        "max_steps: 2\ncolors: {pick: [red, blue], place: [green, yellow]}\nobjects:\n"
        "  - {name: zone, kind: zone, color: $place, fixed: true}\n  - {name: cyl, kind: cylinder, color: $pick}\n"
        "goals:\n  - {objects: cyl, targets: {at: zone}}\n")
    tasks = load_all(tmp_path)
    assert resolve("cylinder in zone", tasks).name == "cylinder-zone"


@pytest.mark.parametrize("patch, message", [
    ("color: $pick}", "color: purple-ish}"),
    ("kind: block", "kind: blok"),
    ("max_steps: 3", "max_steps: -1"),
    ("targets: {at: base, stack: true}", "targets: {at: nowhere}"),
    ("language: \"stack the {pick} block on the {place} block\"", "language: \"stack the {nope} block\""),
    ("max_steps: 3", "max_steps: 3\nspeed: 2"),
])
def test_bad_task_yaml_is_a_config_error(tmp_path, patch, message):
    text = (tasks_dir() / "stack-block.yaml").read_text()
    assert patch in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(patch, message, 1))
    with pytest.raises(ConfigError) as e:
        load_task(bad)
    assert str(bad) in str(e.value)
