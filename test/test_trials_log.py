"""The crash-safe trial log: commit protocol, repairs on open, bad lines reported by number."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sim2real.action import PickPlaceAction, PixelPose
from sim2real.heightmap import HeightmapObservation
from sim2real.trials import log as trial_log
from sim2real.trials.labels import Label
from sim2real.trials.log import (TornRecordWarning, TrialLog, TrialLogError, load_steps, load_trials, scan_trials,
                                 validate_record)
from sim2real.workspace import GENSIM_WORKSPACE


def record(success=True, **kw):
    label = Label("success") if success else Label("failure", "grasp", "dropped it", "ana")
    return {"success": success, "steps": 2, "reason": "done", "policy": "p", "label": label.to_dict(), **kw}


def commit(log, task, trial, seed=0, success=True, steps=()):
    with log.begin(task, trial, seed, {"model": "m"}) as w:
        for s in steps:
            w.add_step(s)
        return w.finish(record(success))


def test_one_json_object_per_finished_trial_and_nothing_else(tmp_path):
    with TrialLog(tmp_path) as log:
        commit(log, "stack-block", 0)
        w = log.begin("stack-block", 1, 1)  # in flight: must not appear in trials.jsonl
        commit(log, "build-wheel", 0, success=False)
        lines = (tmp_path / "trials.jsonl").read_text().splitlines()
        assert [json.loads(x)["task"] for x in lines] == ["stack-block", "build-wheel"]
        for line in lines:
            rec = json.loads(line)
            for key in ("task", "trial", "seed", "success", "steps", "reason", "policy", "label", "provenance"
                        if "provenance" in rec else "label"):
                assert key in rec
        assert log.in_flight() == [("stack-block", 1)]
        w.abort("test")
    recs = load_trials(tmp_path)
    assert [(r["task"], r["trial"], r["success"]) for r in recs] == [("stack-block", 0, True), ("build-wheel", 0, False)]
    assert recs[1]["label"] == {"outcome": "failure", "category": "grasp", "note": "dropped it", "by": "ana"}
    assert recs[0]["artefacts"] == "trials/stack-block/0000"
    assert json.loads((tmp_path / "trials/stack-block/0000/trial.json").read_text()) == recs[0]


def test_resume_redoes_in_flight_trial_as_retry_and_never_logs_twice(tmp_path):
    with TrialLog(tmp_path) as log:
        commit(log, "a", 0)
        log.begin("a", 1, 1)  # the process "dies" here
    with TrialLog(tmp_path) as log:
        assert log.labelled_keys() == {("a", 0)}
        assert log.in_flight() == [("a", 1)]
        with pytest.raises(TrialLogError, match="already labelled"):
            log.begin("a", 0, 0)
        w = log.begin("a", 1, 1)
        assert w.retry and w.attempt == 2
        rec = w.finish(record())
        assert rec["retry"] is True and rec["attempt"] == 2
        assert log.in_flight() == []
    assert len(load_trials(tmp_path)) == 2
    assert not any((tmp_path / "trials" / ".tmp").iterdir())


def test_exception_inside_writer_aborts_and_keeps_trial_in_flight(tmp_path):
    with TrialLog(tmp_path) as log:
        with pytest.raises(RuntimeError):
            with log.begin("a", 0, 0):
                raise RuntimeError("camera unplugged")
        assert log.in_flight() == [("a", 0)]
        marker = json.loads(next((tmp_path / "inflight").glob("*.json")).read_text())
        assert "camera unplugged" in marker["last_error"]
    assert not any((tmp_path / "trials" / ".tmp").iterdir())


def test_torn_last_line_is_reported_by_line_then_repaired_without_losing_records(tmp_path):
    with TrialLog(tmp_path) as log:
        commit(log, "a", 0)
        commit(log, "a", 1)
        log.begin("a", 2, 2)
    path = tmp_path / "trials.jsonl"
    good = path.read_bytes()
    partial = json.dumps({**record(), "task": "a", "trial": 2, "seed": 2}).encode()[:40]
    path.write_bytes(good + partial)
    scan = scan_trials(tmp_path)
    assert scan.torn is not None and scan.torn.line == 3 and scan.corrupt == []
    with pytest.warns(TornRecordWarning, match="line 3"):
        recs = load_trials(tmp_path)
    assert len(recs) == 2
    with pytest.warns(TornRecordWarning, match="line 3"):
        log = TrialLog(tmp_path)
    with log:
        assert any("line 3" in r for r in log.repairs)
        assert log.in_flight() == [("a", 2)]
        commit(log, "a", 2)
    assert path.read_bytes().startswith(good)
    backups = list(tmp_path.glob("trials.jsonl.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == partial
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["trial"] for r in load_trials(tmp_path)] == [0, 1, 2]


def test_complete_record_missing_only_its_newline_is_kept(tmp_path):
    with TrialLog(tmp_path) as log:
        commit(log, "a", 0)
    path = tmp_path / "trials.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert scan_trials(tmp_path).issues == []
    with TrialLog(tmp_path) as log:
        assert log.labelled_keys() == {("a", 0)}
        commit(log, "a", 1)
    assert len(path.read_text().splitlines()) == 2


def test_bad_lines_in_the_middle_are_reported_by_number_never_dropped(tmp_path):
    with TrialLog(tmp_path) as log:
        for k in range(4):
            commit(log, "a", k)
    path = tmp_path / "trials.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-5] + "garbage"                       # not JSON
    broken = json.loads(lines[2])
    del broken["seed"]
    lines[2] = json.dumps(broken)                              # JSON but not a record
    lines.append(lines[3])                                     # duplicate of line 4
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrialLogError) as e:
        load_trials(tmp_path)
    msg = str(e.value)
    assert "line 2 (json)" in msg and "line 3 (invalid)" in msg and "'seed'" in msg
    assert "line 5 (duplicate)" in msg and "first on line 4" in msg
    with pytest.warns(UserWarning, match="3 bad line"):
        assert len(load_trials(tmp_path, strict=False)) == 2
    with pytest.raises(TrialLogError, match="line 2"):
        TrialLog(tmp_path)  # resuming on a corrupt log refuses instead of guessing


@pytest.mark.parametrize("bad, message", [
    ({"success": "yes"}, "'success' must be bool"),
    ({"trial": -1}, ">= 0"),
    ({"kind": "begin"}, "kind"),
    ({"label": {"outcome": "failure", "category": "gravity"}}, "unknown failure category"),
    ({"success": True, "label": {"outcome": "failure", "category": "grasp"}}, "contradicts"),
])
def test_validate_record_names_the_problem(bad, message):
    rec = {**record(), "task": "a", "trial": 0, "seed": 0, **bad}
    with pytest.raises(TrialLogError, match=message):
        validate_record(rec)


def test_roll_forward_commits_a_trial_renamed_but_not_appended(tmp_path, monkeypatch):
    with TrialLog(tmp_path) as log:
        commit(log, "a", 0)
        w = log.begin("a", 1, 1)
        monkeypatch.setattr(trial_log.TrialLog, "_append", lambda self, rec: (_ for _ in ()).throw(SystemExit))
        with pytest.raises(SystemExit):
            w.finish(record(success=False))
        monkeypatch.undo()
    assert (tmp_path / "trials/a/0001/trial.json").is_file()
    assert [r["trial"] for r in load_trials(tmp_path)] == [0]
    with TrialLog(tmp_path) as log:
        assert log.labelled_keys() == {("a", 0), ("a", 1)}
        assert log.in_flight() == []
        assert any("renamed but not logged" in r for r in log.repairs)
    recs = load_trials(tmp_path)
    assert recs[1]["trial"] == 1 and recs[1]["retry"] is False and recs[1]["success"] is False


def test_second_writer_on_same_directory_is_refused(tmp_path):
    with TrialLog(tmp_path):
        code = ("import sys; sys.path.insert(0, %r)\nfrom sim2real.trials.log import TrialLog, TrialLogError\n"
                "try:\n    TrialLog(%r)\nexcept TrialLogError as e:\n    print('refused', e)\n") % (
                    str(os.getcwd()), str(tmp_path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(trial_log.Path(trial_log.__file__).parents[2])})
        assert "refused" in out.stdout and "another process" in out.stdout
    TrialLog(tmp_path).close()  # released after close


def test_steps_round_trip_arrays_and_logit_summaries(tmp_path):
    rng = np.random.default_rng(0)
    height = (rng.random((320, 160)) * 0.1).astype(np.float32)
    obs = HeightmapObservation(rng.integers(0, 255, (320, 160, 3), dtype=np.uint8), height, GENSIM_WORKSPACE, 3.0)
    pick_logits = np.full((320, 160), -10.0, np.float32)
    pick_logits[10, 20] = 5.0
    place_logits = rng.standard_normal((36, 320, 160)).astype(np.float32)
    place_logits[7, 100, 50] = 50.0
    action = PickPlaceAction(PixelPose.from_pixel((10, 20), 0.0, height, GENSIM_WORKSPACE),
                             PixelPose.from_pixel((100, 50), 7 * np.pi / 18, height, GENSIM_WORKSPACE),
                             pick_logits, place_logits, info={"pick_object": 4})
    seg = np.zeros((320, 160), np.int32)
    seg[5:15, 15:25] = 4
    step = {"observation": obs, "goal": "stack the red block", "action": action, "segmentation": seg,
            "safety": {"ok": False, "reasons": ["place z below floor"]}, "timings": {"policy_s": np.float64(0.25)},
            "executed": {"pick": (action.pick.xyz, action.pick.quat_xyzw), "place": None}, "error": "stopped"}
    with TrialLog(tmp_path, logits="full") as log:
        with log.begin("a", 0, 0) as w:
            w.add_step(step)
            rec = w.finish(record())
    (s,) = load_steps(tmp_path / rec["artefacts"])
    np.testing.assert_array_equal(s.observation().color, obs.color)
    np.testing.assert_array_equal(s.observation().height, height)
    np.testing.assert_array_equal(s.arrays["segmentation"], seg)
    assert s.arrays["place_logits"].shape == (36, 320, 160)
    assert s.arrays["place_logits_rot"][100, 50] == 7
    assert s.meta["pick_logits"]["top"][0]["index"] == [10, 20]
    assert s.meta["place_logits"]["top"][0]["index"] == [7, 100, 50]
    from scipy.special import softmax
    from scipy.stats import entropy

    assert s.meta["pick_logits"]["entropy"] == pytest.approx(entropy(softmax(pick_logits.astype(np.float64).ravel())))
    assert s.meta["pick_logits"]["top"][0]["p"] == pytest.approx(softmax(pick_logits.astype(np.float64).ravel()).max())
    assert s.meta["safety"] == {"ok": False, "reasons": ["place z below floor"]}
    assert s.meta["timings"] == {"policy_s": 0.25}
    assert s.meta["executed"]["pick"]["xyz"] == pytest.approx(list(action.pick.xyz))
    assert s.meta["executed"]["place"] is None
    assert s.meta["action"]["place"]["pixel"] == [100, 50]
    assert s.meta["action_info"] == {"pick_object": 4}
    assert s.meta["error"] == "stopped" and s.meta["goal"] == "stack the red block"
    assert rec["goal"] == "stack the red block"


def test_unstorable_values_raise_instead_of_writing_repr(tmp_path):
    with TrialLog(tmp_path) as log:
        with log.begin("a", 0, 0) as w:
            with pytest.raises(TrialLogError, match="cannot store a object"):
                w.finish({**record(), "extra": object()})
