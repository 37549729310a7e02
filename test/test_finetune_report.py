"""`sim2real report` pairs a checkpoint before and after fine-tuning on the same seeds."""
import json

import pytest

from sim2real.cli import main as cli_main
from sim2real.trials.report import write_report


def campaign(root, policy, successes, seed0=0, n=10):
    """A twin campaign (trials.jsonl) of ``policy`` on put-block-in-bowl, trial k with seed seed0 + k."""
    root.mkdir(parents=True)
    lines = [{"task": "put-block-in-bowl", "trial": k, "seed": seed0 + k, "success": k in successes, "steps": 1,
              "reason": "success" if k in successes else "max_steps", "policy": str(policy)} for k in range(n)]
    (root / "trials.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_paired_mcnemar_of_two_checkpoints_on_the_same_seeds(tmp_path):
    before = campaign(tmp_path / "before", tmp_path / "start.ckpt", {0})
    after = campaign(tmp_path / "after", tmp_path / "ft" / "last.ckpt", {0, 1, 2, 3, 4, 5, 6, 7})
    rep = write_report([before, after], tmp_path / "rep", names=["before", "after"], gallery=False, plots=False)
    (cmp,) = rep.comparisons
    o = cmp.overall
    assert (o.n_pairs, o.both, o.neither, o.a_only, o.b_only) == (10, 1, 2, 0, 7)
    assert o.p_value == pytest.approx(2 / 2 ** 7)  # exact two-sided McNemar: 7 discordant, all one way
    assert cmp.seed_mismatches == 0
    md = rep.markdown.read_text()
    assert "before" in md and "after" in md


def test_report_counts_seed_mismatches_when_seeds_differ(tmp_path, capsys):
    before = campaign(tmp_path / "before", "a.ckpt", {0}, seed0=0)
    after = campaign(tmp_path / "after", "b.ckpt", {0, 1}, seed0=100)
    rep = write_report([before, after], tmp_path / "rep", names=["before", "after"], gallery=False, plots=False)
    assert rep.comparisons[0].seed_mismatches == 10
    assert cli_main(["report", str(before), str(after), "--out", str(tmp_path / "rep2"), "--no-gallery",
                     "--no-plots"]) == 0
