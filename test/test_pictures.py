"""Pictures people read (issue 11.7): act's affordance PNG oriented and scaled like the heightmap
PNGs with a colour bar (a flat map stays visible), failures.png that says there were none, long
goals wrapped in gallery titles, and output that does not fold at 80 columns off a terminal."""
import numpy as np
import pytest

from sim2real.action import PickPlaceAction, PixelPose
from sim2real.workspace import GENSIM_WORKSPACE


def _action(pick_logits, place_logits):
    height = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    pose = lambda px: PixelPose.from_pixel(px, 0.3, height, GENSIM_WORKSPACE)  # noqa: E731
    return PickPlaceAction(pose((100, 40)), pose((200, 120)), pick_logits=pick_logits, place_logits=place_logits)


def test_affordance_figure_is_in_metres_like_the_heightmap_and_shows_a_flat_map():
    from sim2real.heightmap import HeightmapObservation
    from sim2real.viz import affordance_figure, heightmap_extent

    rows, cols = GENSIM_WORKSPACE.shape
    image = np.zeros((rows, cols, 6), np.float32)
    image[..., :3] = 40
    pick = np.random.default_rng(0).normal(size=(rows, cols)).astype(np.float32)
    flat = np.zeros((36, rows, cols), np.float32)
    fig = affordance_figure(image, _action(pick, flat), title="put the red block in the green bowl " * 4)
    extent = heightmap_extent(HeightmapObservation(np.zeros((rows, cols, 3), np.uint8), image[..., 3]))
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_xlabel()]
    assert len(panels) == 4
    for ax in panels:
        assert ax.get_xlabel() == "x (m)" and ax.get_ylabel() == "y (m)"
        for im in ax.get_images():
            assert tuple(im.get_extent()) == pytest.approx(extent)   # rows are y, columns x: not transposed
            assert im.get_array().shape[:2] == (rows, cols)
    place_ax = panels[3]
    shown = np.asarray(place_ax.get_images()[-1].get_array())
    assert np.allclose(shown, 1.0)                                   # flat: uniformly at the top of the scale
    assert "(flat)" in place_ax.get_title()
    assert len(fig.axes) >= 7                                        # 4 panels + 3 colour bars
    assert "\n" in fig._suptitle.get_text()                         # a long goal wraps


def test_failures_png_says_when_there_are_no_failures(tmp_path):
    from sim2real.trials import report as rep
    from sim2real.trials.labels import Label
    from sim2real.trials.log import TrialLog

    out = tmp_path / "all_ok"
    with TrialLog(out, rosbag=False) as log:
        for k in range(3):
            with log.begin("stack-block", k, k, {}) as w:
                w.finish({"success": True, "steps": 1, "reason": "done", "policy": "p",
                          "label": Label("success").to_dict()})
    fig = rep.failures_figure(rep.build_table([rep.load_model_campaign(out)]))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("no failed or partial trials" in t and "3 trial(s)" in t for t in texts)


def test_long_goals_wrap_in_gallery_titles():
    from PIL import ImageFont

    from sim2real.trials.gallery import wrap_to_width

    font = ImageFont.load_default(size=15)
    goal = "put the red block in the green bowl, then the blue block in the yellow bowl " * 5
    lines = wrap_to_width(goal, font, 600)
    assert len(lines) > 1 and " ".join(lines) == " ".join(goal.split())
    assert all(font.getlength(line) <= 600 for line in lines)


def test_output_off_a_terminal_does_not_fold_at_80_columns(capsys):
    from rich.table import Table

    from sim2real.cli.paths import WIDE_COLUMNS, console

    c = console()
    assert not c.is_terminal and c.width == WIDE_COLUMNS
    t = Table()
    for name in ("task", "a model with a long descriptive name", "another model with a long name", "third"):
        t.add_column(name)
    t.add_row("block-in-bowl-in-zone", "100.0 (10/10)", "90.0 (9/10)", "80.0 (8/10)")
    c.print(t)
    out = capsys.readouterr().out
    assert any("a model with a long descriptive name" in line and "another model" in line for line in out.splitlines())
