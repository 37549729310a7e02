"""The report: Wilson intervals and the exact paired test against known values, and the table of
three synthetic model campaigns against a hand-computed one."""
from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
from scipy.stats import binomtest

from sim2real.errors import InputError
from sim2real.trials.labels import Label
from sim2real.trials.log import TrialLog
from sim2real.trials.report import CSV_COLUMNS, write_report
from sim2real.trials.stats import binomial_two_sided_half, paired_exact_test, wilson_interval

# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, n, low, high", [
    (7, 10, 0.3968, 0.8922),     # the textbook example
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (2, 5, 0.1176, 0.7693),
    (0, 5, 0.0, 0.4345),
    (1, 5, 0.0362, 0.6245),
    (5, 5, 0.5655, 1.0),
])
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


@pytest.mark.parametrize("k, n", [(k, n) for n in (1, 3, 9, 10, 37) for k in range(n + 1)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    ci90 = binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    assert wilson_interval(k, n, 0.9) == pytest.approx((ci90.low, ci90.high), abs=1e-12)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(InputError, match="0 <= successes <= trials"):
        wilson_interval(11, 10)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("k, n", [(k, n) for n in range(0, 26) for k in range(n + 1)])
def test_exact_mcnemar_p_equals_scipy_binomtest(k, n):
    expected = 1.0 if n == 0 else binomtest(k, n, 0.5, alternative="two-sided").pvalue
    assert binomial_two_sided_half(k, n) == pytest.approx(expected, rel=1e-12)


def test_paired_test_known_values():
    # 1 pair only A succeeds, 8 pairs only B: p = 2 * (C(9,0) + C(9,1)) / 2^9 = 20/512
    pairs = [(1, 0)] + [(0, 1)] * 8 + [(1, 1)] * 5 + [(0, 0)] * 3
    r = paired_exact_test(pairs)
    assert (r.n_pairs, r.both, r.neither, r.a_only, r.b_only) == (17, 5, 3, 1, 8)
    assert r.p_value == pytest.approx(20 / 512)
    assert r.difference == pytest.approx(-7 / 17)
    assert paired_exact_test([(1, 1), (0, 0)]).p_value == 1.0  # no discordant pair: no evidence
    assert paired_exact_test([(0, 1)] * 5).p_value == pytest.approx(0.0625)


# ----------------------------------------------------------------------------------------------
# three synthetic models, hand-computed
# ----------------------------------------------------------------------------------------------

TASKS = ("stack-block", "build-wheel", "block-zone")
SUCCESSES = {   # model -> task -> trial indices (of 5) that succeed
    "CLIPort": {"stack-block": [0, 1], "build-wheel": [0], "block-zone": []},
    "GenSim-50": {"stack-block": [0, 1, 2], "build-wheel": [1, 2], "block-zone": [0, 1, 2, 3, 4]},
    "GenSim-70": {"stack-block": [0, 1, 2, 3], "build-wheel": [0, 1, 2, 3, 4], "block-zone": [4]},
}
CATEGORY = {"stack-block": "grasp", "build-wheel": "place", "block-zone": "wrong_object"}


def write_model(root, model: str):
    out = root / model.lower()
    with TrialLog(out, rosbag=False) as log:  # bags are tested in test_rosbag_trials
        for task in TASKS:
            for k in range(5):
                ok = k in SUCCESSES[model][task]
                label = Label("success") if ok else Label("partial" if k == 4 else "failure", CATEGORY[task], "", "op")
                with log.begin(task, k, 100 + k, {"model": model}) as w:
                    w.finish({"success": ok, "steps": 3, "reason": "done", "policy": model.lower(),
                              "label": label.to_dict(), "provenance": {"checkpoint": {"sha256": model.encode().hex()}}})
    return out


@pytest.fixture
def three_models(tmp_path):
    return [write_model(tmp_path, m) for m in SUCCESSES]


HAND_TABLE = """\
| Task | CLIPort | GenSim-50 | GenSim-70 |
|---|---:|---:|---:|
| stack-block | 40.0 (2/5) | 60.0 (3/5) | 80.0 (4/5) |
| build-wheel | 20.0 (1/5) | 40.0 (2/5) | 100.0 (5/5) |
| block-zone | 0.0 (0/5) | 100.0 (5/5) | 20.0 (1/5) |
| **Mean** | **20.0** | **66.7** | **66.7** |"""

HAND_CSV = [  # task, model, k, n, rate, Wilson low, high (4 decimals, from the table of known values)
    ("stack-block", "CLIPort", 2, 5, 0.4, 0.1176, 0.7693), ("stack-block", "GenSim-50", 3, 5, 0.6, 0.2307, 0.8824),
    ("stack-block", "GenSim-70", 4, 5, 0.8, 0.3755, 0.9638), ("build-wheel", "CLIPort", 1, 5, 0.2, 0.0362, 0.6245),
    ("build-wheel", "GenSim-50", 2, 5, 0.4, 0.1176, 0.7693), ("build-wheel", "GenSim-70", 5, 5, 1.0, 0.5655, 1.0),
    ("block-zone", "CLIPort", 0, 5, 0.0, 0.0, 0.4345), ("block-zone", "GenSim-50", 5, 5, 1.0, 0.5655, 1.0),
    ("block-zone", "GenSim-70", 1, 5, 0.2, 0.0362, 0.6245),
]


def test_report_of_three_models_matches_hand_computed_table(three_models, tmp_path):
    rep = write_report(three_models, tmp_path / "report", gallery=False, plots=True)
    md = rep.markdown.read_text()
    assert HAND_TABLE in md
    with open(rep.csv) as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS == ("task", "model", "successes", "trials", "success_rate", "ci_low", "ci_high")
    got = [(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), float(r[5]), float(r[6])) for r in rows[1:]]
    assert got == HAND_CSV
    # CLIPort vs GenSim-50: stack-block 2 both / 0 / 1 / 2 neither -> p 1; build-wheel 0 both, 1 vs 2 -> p 1;
    # block-zone 0 vs 5 -> p = 2/32; overall 1 vs 8 discordant -> p = 20/512 = 0.0391
    assert "### CLIPort vs GenSim-50" in md
    assert "| stack-block | 5 | 2 | 0 | 1 | 2 | -20.0 pp | 1.0000 |" in md
    assert "| build-wheel | 5 | 0 | 1 | 2 | 2 | -20.0 pp | 1.0000 |" in md
    assert "| block-zone | 5 | 0 | 0 | 5 | 0 | -100.0 pp | 0.0625 |" in md
    assert "| **all** | 15 | 2 | 1 | 8 | 4 | -46.7 pp | 0.0391 |" in md
    # GenSim-50 vs GenSim-70 overall: only-50 = {bz 0,1,2,3} = 4, only-70 = {sb 3, bw 0,3,4} = 4 -> p = 1
    assert "| **all** | 15 | 6 | 4 | 4 | 1 | +0.0 pp | 1.0000 |" in md
    assert len(rep.comparisons) == 3
    # failure categories: CLIPort fails 3 stack-block (grasp), 4 build-wheel (place), 5 block-zone (wrong
    # object); a failed trial 4 is labelled partial: CLIPort 3 (one per task), GenSim-50 2, GenSim-70 1
    assert "| outcome: success | 3 | 10 | 10 |" in md
    assert "| outcome: failure | 9 | 3 | 4 |" in md
    assert "| outcome: partial | 3 | 2 | 1 |" in md
    assert "| failure: grasp | 3 | 2 | 1 |" in md
    assert "| failure: place | 4 | 3 | 0 |" in md
    assert "| failure: wrong object | 5 | 0 | 4 |" in md
    assert "| all trials (pooled) | 20.0 [7.0, 45.2] (3/15)" in md
    for png in rep.plots:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_axes_are_readable(three_models, tmp_path, monkeypatch):
    """Labelled axes, 0-100 % scale, a legend with every model and the task names on the x axis."""
    import matplotlib.pyplot as plt

    from sim2real.trials import report as rep_mod

    saved = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    models = [rep_mod.load_model_campaign(d) for d in three_models]
    table = rep_mod.build_table(models)
    rep_mod.plot_success_rates(table, tmp_path / "a.png")
    rep_mod.plot_failures(table, tmp_path / "b.png")
    bars, fails = (fig.axes[0] for fig in saved)
    assert bars.get_ylim() == (0, 105) and "success rate (%)" in bars.get_ylabel() and bars.get_xlabel() == "task"
    assert [t.get_text() for t in bars.get_xticklabels()] == list(TASKS) + ["mean"]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == list(SUCCESSES)
    from matplotlib.container import BarContainer, ErrorbarContainer

    bar_sets = [c for c in bars.containers if isinstance(c, BarContainer)]
    heights = [[round(r.get_height(), 1) for r in c] for c in bar_sets]
    assert heights == [[40.0, 20.0, 0.0], [20.0], [60.0, 40.0, 100.0], [66.7], [80.0, 100.0, 20.0], [66.7]]
    err = [c for c in bars.containers if isinstance(c, ErrorbarContainer)]
    assert len(err) == 3
    segments = err[0].lines[2][0].get_segments()  # CLIPort's vertical error bars
    assert [(round(s[0][1], 2), round(s[1][1], 2)) for s in segments] == [(11.76, 76.93), (3.62, 62.45), (0.0, 43.45)]
    assert fails.get_ylim() == (0, 100) and fails.get_ylabel() and fails.get_xlabel() == "model"
    assert "wrong object" in [t.get_text() for t in fails.get_legend().get_texts()]


def test_report_names_and_errors(three_models, tmp_path):
    rep = write_report(three_models[:2], tmp_path / "r", names=["A", "B"], gallery=False, plots=False)
    assert rep.table.models == ["A", "B"] and rep.plots == []
    with pytest.raises(InputError, match="one name per directory"):
        write_report(three_models, tmp_path / "r", names=["A"], gallery=False)
    with pytest.raises(InputError, match="given twice"):
        write_report([three_models[0], three_models[0]], tmp_path / "r2", gallery=False, plots=False)
    (tmp_path / "rerun").mkdir()
    again = write_model(tmp_path / "rerun", "CLIPort")  # same model name, another directory
    same = write_report([three_models[0], again], tmp_path / "r2", gallery=False, plots=False)
    assert same.table.models == [f"CLIPort ({tmp_path.name}/cliport)", "CLIPort (rerun/cliport)"]


def test_report_reads_a_plain_twin_style_trials_jsonl(tmp_path):
    """A trials.jsonl with only the required keys (no label, no artefacts) is reported the same way."""
    d = tmp_path / "twin"
    d.mkdir()
    lines = [{"task": "stack-block", "trial": k, "seed": k, "success": k < 3, "steps": 2, "reason": "success"
              if k < 3 else "max_steps", "policy": "oracle"} for k in range(4)]
    (d / "trials.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rep = write_report([d], tmp_path / "out", gallery=True, plots=False)
    md = rep.markdown.read_text()
    assert "| stack-block | 75.0 (3/4) |" in md and "| **Mean** | **75.0** |" in md
    assert "| failure: other | 1 |" in md
    assert "artefacts missing" not in (tmp_path / "out/gallery/index.md").read_text()


def test_torn_and_bad_lines_are_listed_by_number(three_models, tmp_path):
    path = three_models[0] / "trials.jsonl"
    path.write_bytes(path.read_bytes() + b'{"task": "stack-bl')
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        md = write_report([three_models[0]], tmp_path / "r", gallery=False, plots=False).markdown.read_text()
    assert "line 16 (torn)" in md and "| **Mean** | **20.0** |" in md
    lines = path.read_text().splitlines()
    lines[3] = "not json"
    path.write_text("\n".join(lines) + "\n")
    from sim2real.trials.log import TrialLogError

    with pytest.raises(TrialLogError, match="line 4 \\(json\\)"):
        write_report([three_models[0]], tmp_path / "r", gallery=False, plots=False)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        md = write_report([three_models[0]], tmp_path / "r", gallery=False, plots=False,
                          allow_bad_lines=True).markdown.read_text()
    assert "line 4 (json)" in md and "| stack-block | 50.0 (2/4) |" in md  # line 4 = stack-block trial 3 (a failure)


def test_gallery_page_per_trial_with_overlays(tmp_path):
    from test_kill_resume import fake_step

    from sim2real.trials.campaign import Campaign, run_campaign
    from sim2real.trials.operator import AutoOperator

    def run_trial(task, trial, seed, on_step):
        for i in range(2):
            step = fake_step(task, trial, seed, i)
            step["action"] = type(step["action"])(step["action"].pick, step["action"].place,
                                                  step["action"].pick_logits,
                                                  np.random.default_rng(i).standard_normal((36, 320, 160)))
            on_step(step)
        return {"success": trial == 0, "steps": 2, "reason": "done"}

    d = tmp_path / "m"
    with TrialLog(d) as log:
        run_campaign(Campaign(tasks=("stack-block",), trials=2), log, run_trial, AutoOperator(), policy="p",
                     progress=False)
    rep = write_report([d], tmp_path / "out", gallery=True, plots=False)
    index = rep.gallery.read_text()
    assert index.count("[page](") == 2
    page = (tmp_path / "out/gallery/p/stack-block/0001.md").read_text()
    assert "stack-block trial 2" in page and "outcome: **failure**" in page
    assert page.count("![") == 2 and "| 0 |" in page and "| 1 |" in page
    from PIL import Image

    img = Image.open(tmp_path / "out/gallery/p/stack-block/0001_s000.png")
    assert img.size[0] > 4 * 320 and img.size[1] > 640
    assert "Gallery" in rep.markdown.read_text()


def test_report_cli_exit_codes(three_models, tmp_path, capsys):
    from sim2real.cli import main

    assert main(["report", *map(str, three_models), "--out", str(tmp_path / "cli"), "--no-gallery"]) == 0
    out = capsys.readouterr().out
    assert "CLIPort vs GenSim-50" in out and "p = 0.0391" in out
    assert (tmp_path / "cli/results.csv").is_file() and (tmp_path / "cli/success_rates.png").is_file()
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "trials.jsonl not found" in capsys.readouterr().err
