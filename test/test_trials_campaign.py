"""Campaign protocol (YAML + overrides, order, seeds), the campaign loop, operators, provenance."""
from __future__ import annotations

import hashlib
import io
import threading
from types import SimpleNamespace

import pytest
import yaml
from rich.console import Console

from sim2real.errors import ConfigError, InputError
from sim2real.trials.campaign import Campaign, CampaignError, run_campaign
from sim2real.trials.labels import FAILURE_CATEGORIES, Label
from sim2real.trials.log import TrialLog, load_trials
from sim2real.trials.operator import AutoOperator, CampaignStopped, CLIOperator, Operator, ServiceOperator
from sim2real.trials.provenance import collect_provenance, git_describe, sha256_file

GENSIM_REAL_TASKS = ["stack-block", "build-wheel", "put-block-in-bowl", "pair-blocks-on-line", "pack-spheres",
                     "block-zone", "block-tower-corner", "block-in-bowl-in-zone", "align-block-zone"]


def result(success, reason="done", steps=1, reward=None, **info):
    return SimpleNamespace(success=success, reason=reason, steps=steps, reward=reward, info=info)


def quiet():
    return Console(file=io.StringIO(), width=120)


# ----------------------------------------------------------------------------------------------
# protocol
# ----------------------------------------------------------------------------------------------

def test_shipped_campaign_is_gensim_9_by_10_blocked(repo_root):
    c = Campaign.from_yaml(repo_root / "config/campaign.yaml")
    assert list(c.tasks) == GENSIM_REAL_TASKS and c.trials == 10 and c.order == "blocked"
    plan = c.plan()
    assert len(plan) == 90
    assert [(p.task, p.trial) for p in plan[:11]] == [("stack-block", k) for k in range(10)] + [("build-wheel", 0)]
    assert all(p.seed == c.seed + p.trial for p in plan)
    assert [p.position for p in plan] == list(range(90))


def test_randomised_order_is_a_deterministic_permutation_with_the_same_seeds(repo_root):
    blocked = Campaign.from_yaml(repo_root / "config/campaign.yaml")
    rand = Campaign.from_yaml(repo_root / "config/campaign.yaml", ["order=randomized"])
    assert rand.order == "randomised"
    a, b = rand.plan(), Campaign.from_yaml(repo_root / "config/campaign.yaml", {"order": "randomised"}).plan()
    assert a == b
    assert sorted((p.task, p.trial, p.seed) for p in a) == sorted((p.task, p.trial, p.seed) for p in blocked.plan())
    assert [(p.task, p.trial) for p in a] != [(p.task, p.trial) for p in blocked.plan()]
    assert Campaign.from_yaml(repo_root / "config/campaign.yaml", {"order": "randomised", "seed": 1}).plan() != a


def test_overrides_mapping_ignores_none_and_strings_are_yaml(repo_root):
    c = Campaign.from_yaml(repo_root / "config/campaign.yaml",
                           {"trials": 3, "tasks": ["build-wheel", "stack-block"], "order": None, "seed": None})
    assert c.tasks == ("build-wheel", "stack-block") and c.trials == 3 and c.order == "blocked" and c.seed == 0
    c2 = Campaign.from_yaml(repo_root / "config/campaign.yaml", ["trials=2", "tasks=[a, b]", "max_steps=8"])
    assert c2.tasks == ("a", "b") and c2.trials == 2 and c2.max_steps == 8
    assert c2.with_overrides({"tasks": "x,y"}).tasks == ("x", "y")


@pytest.mark.parametrize("change, message", [
    ({"order": "shuffled"}, "order: must be one of"),
    ({"trials": 0}, "trials: must be a whole number >= 1"),
    ({"trials": 2.5}, "trials"),
    ({"tasks": []}, "tasks: list at least one task"),
    ({"tasks": ["a", "a"]}, "listed twice"),
    ({"tasks": ["Build Wheel", "build-wheel"]}, "same directory name"),
    ({"seed": -1}, "seed"),
    ({"max_steps": 0}, "max_steps"),
    ({"trails": 3}, "unknown key"),
])
def test_bad_campaign_yaml_names_the_key_and_fix(tmp_path, change, message):
    data = {"name": "x", "tasks": ["a", "b"], "trials": 2, "order": "blocked", "seed": 0}
    data.update(change)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as e:
        Campaign.from_yaml(path)
    assert str(path) in str(e.value)


def test_override_without_equals_sign_is_rejected(repo_root):
    with pytest.raises(CampaignError, match="key=value"):
        Campaign.from_yaml(repo_root / "config/campaign.yaml", ["trials"])


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------

def test_run_campaign_labels_every_trial_and_resume_skips_them(tmp_path):
    camp = Campaign(tasks=("a", "b"), trials=3, order="randomised", seed=5)
    calls = []

    def run_trial(task, trial, seed, on_step):
        calls.append((task, trial, seed))
        on_step({"goal": f"do {task}", "safety": {"ok": True, "reasons": []}})
        return result(seed % 2 == 0, "done" if seed % 2 == 0 else "safety_stop", 1, info={"goal": f"do {task}"})

    prov = {"checkpoint": {"sha256": "ab" * 32}}
    with TrialLog(tmp_path) as log:
        summary = run_campaign(camp, log, run_trial, AutoOperator(), policy="cliport", provenance=prov,
                               console=quiet())
    assert summary.complete and len(summary.committed) == 6 and summary.skipped == 0
    assert calls == [(p.task, p.trial, p.seed) for p in camp.plan()]
    recs = load_trials(tmp_path)
    assert {(r["task"], r["trial"]) for r in recs} == {(t, k) for t in "ab" for k in range(3)}
    for r in recs:
        assert r["success"] == (r["seed"] % 2 == 0)
        assert r["label"]["category"] == (None if r["success"] else "safety_stop")
        assert r["policy"] == r["model"] == "cliport" and r["goal"] == f"do {r['task']}"
        assert r["provenance"] == prov and r["campaign"] == "campaign" and r["recorded_steps"] == 1
    assert summary.success_by_task() == {"a": (1, 3), "b": (1, 3)}  # seeds 5, 6, 7: only 6 is even
    calls.clear()
    with TrialLog(tmp_path) as log:
        again = run_campaign(camp, log, run_trial, AutoOperator(), policy="cliport", provenance=prov,
                             console=quiet())
    assert calls == [] and again.skipped == 6 and again.complete


def test_resume_with_a_different_protocol_or_checkpoint_is_refused(tmp_path):
    camp = Campaign(tasks=("a",), trials=1)
    run = lambda task, trial, seed: (result(True), [])  # noqa: E731  (the tuple form of run_trial)
    with TrialLog(tmp_path) as log:
        run_campaign(camp, log, run, AutoOperator(), provenance={"checkpoint": {"sha256": "1" * 64}},
                     console=quiet())
        with pytest.raises(CampaignError, match="seed: 0 -> 5"):
            run_campaign(Campaign(tasks=("a",), trials=1, seed=5), log, run, AutoOperator(),
                         provenance={"checkpoint": {"sha256": "1" * 64}}, console=quiet())
        with pytest.raises(CampaignError, match="checkpoint"):
            run_campaign(camp, log, run, AutoOperator(), provenance={"checkpoint": {"sha256": "2" * 64}},
                         console=quiet())
        with pytest.raises(CampaignError, match="checkpoint"):  # e.g. the oracle resumed into a checkpoint's dir
            run_campaign(camp, log, run, AutoOperator(), provenance={}, console=quiet())
        with pytest.raises(CampaignError, match="policy 'policy'"):
            run_campaign(camp, log, run, AutoOperator(), policy="oracle", console=quiet())
        # more trials extend the campaign (issue 11.6); fewer are refused
        more = run_campaign(Campaign(tasks=("a",), trials=2), log, run, AutoOperator(),
                            provenance={"checkpoint": {"sha256": "1" * 64}}, console=quiet())
        assert [r["trial"] for r in log.records()] == [0, 1] and more.planned == 2
        with pytest.raises(CampaignError, match="trials: 2 -> 1"):
            run_campaign(camp, log, run, AutoOperator(), provenance={"checkpoint": {"sha256": "1" * 64}},
                         console=quiet())


def test_crash_inside_run_trial_stops_campaign_and_trial_is_retried(tmp_path):
    camp = Campaign(tasks=("a",), trials=3)
    state = {"fail_at": 1}

    def run_trial(task, trial, seed):
        if trial == state["fail_at"]:
            raise RuntimeError("robot e-stop")
        return result(True)

    with TrialLog(tmp_path) as log:
        with pytest.raises(RuntimeError, match="e-stop"):
            run_campaign(camp, log, run_trial, AutoOperator(), console=quiet())
        assert log.in_flight() == [("a", 1)]
    state["fail_at"] = None
    with TrialLog(tmp_path) as log:
        summary = run_campaign(camp, log, run_trial, AutoOperator(), console=quiet())
    assert summary.complete and summary.retried == 1
    recs = {r["trial"]: r for r in load_trials(tmp_path)}
    assert recs[1]["retry"] and recs[1]["attempt"] == 2 and not recs[2]["retry"]


def test_operator_stop_leaves_the_rest_for_resume(tmp_path):
    camp = Campaign(tasks=("a",), trials=3)
    answers = io.StringIO("\n" "s\n" "\n" "q\n")  # trial 1: Enter, outcome s, empty note; trial 2: quit
    op = CLIOperator("ana", console=quiet(), stream=answers)
    with TrialLog(tmp_path) as log:
        summary = run_campaign(camp, log, lambda t, k, s: result(True), op, console=quiet())
    assert summary.stopped and not summary.complete and len(summary.committed) == 1
    assert load_trials(tmp_path)[0]["label"] == {"outcome": "success", "category": None, "note": "", "by": "ana"}


# ----------------------------------------------------------------------------------------------
# operators
# ----------------------------------------------------------------------------------------------

def test_cli_operator_prompts_reset_and_labels_with_category_and_note():
    out = io.StringIO()
    answers = io.StringIO("\n" "maybe\n" "p\n" "gravity\n" "2\n" "grabbed the blue one\n")
    op = CLIOperator("ana", console=Console(file=out, width=200), stream=answers)
    assert isinstance(op, Operator)
    op.start_trial("build-wheel", 3, 10, seed=3)
    label = op.label("build-wheel", 3, result(None, "max_steps", 8))
    assert label == Label("partial", "wrong_object", "grabbed the blue one", "ana")
    text = out.getvalue()
    assert "Reset the scene for build-wheel, trial 4/10" in text
    assert "unknown outcome 'maybe'" in text and "unknown failure category 'gravity'" in text
    assert "2) wrong object" in text


def test_cli_operator_default_label_follows_the_success_check():
    op = CLIOperator("ana", console=quiet(), stream=io.StringIO("\n\n\n"))
    # failure default + category default from the end reason (safety_stop), empty note
    assert op.label("a", 0, result(False, "safety_stop")) == Label("failure", "safety_stop", "", "ana")


def test_auto_operator_labels_from_the_success_check():
    auto = AutoOperator()
    assert auto.label("a", 0, result(True)).outcome == "success"
    assert auto.label("a", 0, result(False, "ik_failed")) == Label("failure", "planning", auto.label(
        "a", 0, result(False, "ik_failed")).note, "auto")
    assert auto.label("a", 0, result(False, "max_steps", reward=0.5)).outcome == "partial"
    assert auto.label("a", 0, result(False, "max_steps", failure_category="wrong object")).category == "wrong_object"
    assert auto.label("a", 0, {"success": False, "reason": "weird"}).category == "other"
    with pytest.raises(InputError, match="no success verdict"):
        auto.label("a", 0, result(None))


def test_service_operator_is_driven_from_another_thread():
    prompts = []
    op = ServiceOperator("ros", on_prompt=prompts.append, timeout_s=5)
    got = {}

    def loop():
        op.start_trial("a", 0, 2, seed=0)
        got["label"] = op.label("a", 0, result(None))

    t = threading.Thread(target=loop)
    t.start()
    _wait_until(lambda: op.waiting_for == "reset")
    op.confirm_reset()
    _wait_until(lambda: op.waiting_for == "label")
    with pytest.raises(InputError):
        op.submit_label("failure", "gravity")
    op.submit_label("failure", "grasp", "slipped")
    t.join(5)
    assert got["label"] == Label("failure", "grasp", "slipped", "ros")
    assert prompts[0].startswith("reset the scene for a, trial 1/2")
    op2 = ServiceOperator(timeout_s=0.05)
    with pytest.raises(CampaignStopped, match="no reset"):
        op2.start_trial("a", 0, 1, seed=0)


def _wait_until(cond, timeout=5.0):
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end
        time.sleep(0.005)


def test_label_rules():
    assert Label("s").outcome == "success" and Label("f", "6").category == "safety_stop"
    assert len(FAILURE_CATEGORIES) == 7
    with pytest.raises(InputError, match="no failure category"):
        Label("success", "grasp")


# ----------------------------------------------------------------------------------------------
# provenance
# ----------------------------------------------------------------------------------------------

def test_provenance_hashes_files_and_records_versions(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights" * 1000)
    calib = tmp_path / "cal.yaml"
    calib.write_text("name: twin\nT_base_camera: [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\n")
    prov = collect_provenance(checkpoint=ckpt, calibration=calib, robot_config=calib, operator="ana")
    assert prov["checkpoint"]["sha256"] == hashlib.sha256(b"weights" * 1000).hexdigest() == sha256_file(ckpt)
    assert prov["calibration"]["sha256"] == hashlib.sha256(calib.read_bytes()).hexdigest()
    assert prov["calibration"]["content"]["name"] == "twin"
    assert prov["operator"] == "ana" and prov["package_version"] and prov["git_describe"] == git_describe()
    assert collect_provenance(checkpoint_sha256="f" * 64)["checkpoint"] == {"path": None, "sha256": "f" * 64}
    with pytest.raises(InputError, match="not found"):
        collect_provenance(calibration=tmp_path / "missing.yaml")


def test_cli_operator_end_of_input_stops_instead_of_looping(tmp_path):
    op = CLIOperator("ana", console=quiet(), stream=io.StringIO("\nf\n"))  # input ends before the category
    op.start_trial("a", 0, 1, seed=0)
    with pytest.raises(CampaignStopped, match="end of file"):
        op.label("a", 0, result(False, "max_steps"))
    with TrialLog(tmp_path) as log:
        summary = run_campaign(Campaign(tasks=("a",), trials=2), log, lambda t, k, s: result(True),
                               CLIOperator("ana", console=quiet(), stream=io.StringIO("")), console=quiet())
    assert summary.stopped and summary.committed == []
