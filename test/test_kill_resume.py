"""kill -9 at random points of a campaign, then resume: labelled trials are complete, unique, intact.

The campaign runs in a subprocess (this file is also the driver: ``python test_kill_resume.py OUT``)
with run_campaign + a fast fake run_trial that produces deterministic steps, so every committed
artefact can be regenerated and compared byte for byte. Two kinds of kills:

* random: SIGKILL from outside at a random time while trials are in flight (>= 20 kills);
* injected: the driver SIGKILLs itself at the n-th durable file operation of the log (fsync,
  rename, or half-way through the append to trials.jsonl, which tears the last line).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("stack-block", "build-wheel", "put-block-in-bowl", "block-zone")
STEPS = 3


def campaign(trials: int = 6):
    from sim2real.trials.campaign import Campaign

    return Campaign(tasks=TASKS, name="kill-test", trials=trials, order="randomised", seed=7)


def fake_step(task: str, trial: int, seed: int, i: int) -> dict:
    """Deterministic StepRecord for (task, trial, seed, step)."""
    from sim2real.action import PickPlaceAction, PixelPose
    from sim2real.camera import CameraIntrinsics, RGBDFrame
    from sim2real.heightmap import HeightmapObservation
    from sim2real.workspace import GENSIM_WORKSPACE

    rng = np.random.default_rng([seed, i, zlib.crc32(task.encode()), trial])
    color = rng.integers(0, 256, (320, 160, 3), dtype=np.uint8)
    height = (rng.random((320, 160)) * 0.05).astype(np.float32)
    obs = HeightmapObservation(color, height, GENSIM_WORKSPACE, stamp=float(i))
    depth = (0.5 + rng.random((24, 32))).astype(np.float32)
    frame = RGBDFrame(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), depth,
                      CameraIntrinsics(32, 24, 30.0, 30.0, 16.0, 12.0), stamp=float(i))
    p0 = (int(rng.integers(0, 320)), int(rng.integers(0, 160)))
    p1 = (int(rng.integers(0, 320)), int(rng.integers(0, 160)))
    action = PickPlaceAction(PixelPose.from_pixel(p0, 0.0, height, GENSIM_WORKSPACE),
                             PixelPose.from_pixel(p1, np.pi / 2, height, GENSIM_WORKSPACE),
                             pick_logits=rng.standard_normal((320, 160)).astype(np.float32))
    return {"frames": [frame], "observation": obs, "goal": f"solve {task}", "action": action,
            "safety": {"ok": True, "reasons": []}, "timings": {"policy_s": 0.01},
            "executed": {"pick": (action.pick.xyz, action.pick.quat_xyzw),
                         "place": (action.place.xyz, action.place.quat_xyzw)}, "error": None}


def fake_success(task: str, seed: int) -> bool:
    return (seed + zlib.crc32(task.encode())) % 3 != 0


def driver(out: str) -> None:
    """Run (or resume) the campaign; KILL_AT='op:n' SIGKILLs this process at the n-th such op."""
    from sim2real.trials import log as trial_log
    from sim2real.trials.campaign import run_campaign
    from sim2real.trials.log import TrialLog
    from sim2real.trials.operator import AutoOperator

    step_sleep = float(os.environ.get("STEP_SLEEP", "0"))
    kill_at = os.environ.get("KILL_AT")
    if kill_at:
        _inject(trial_log, *kill_at.split(":"))

    def run_trial(task, trial, seed, on_step):
        print(f"begin {task} {trial}", flush=True)
        for i in range(STEPS):
            on_step(fake_step(task, trial, seed, i))
            time.sleep(step_sleep)
        return {"success": fake_success(task, seed), "steps": STEPS, "reason": "done", "reward": 1.0}

    with TrialLog(out) as log:
        summary = run_campaign(campaign(int(os.environ.get("TRIALS", "6"))), log, run_trial,
                               AutoOperator(), policy="fake-policy", progress=False)
    print(f"complete {summary.complete}", flush=True)


def _inject(trial_log, op: str, n: str) -> None:
    """Wrap one durable operation of the log so that its n-th call kills the process."""
    target = int(n)
    count = {"n": 0}

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(name, before: bool, torn: bool = False):
        orig = getattr(trial_log, name)

        def wrapped(*args):
            is_append = name == "_write_all" and b'"kind":"trial"' in bytes(args[1])
            if name == "_write_all" and not is_append:
                return orig(*args)
            count["n"] += 1
            if count["n"] == target:
                if torn:  # half the line reaches the file, then the process dies
                    os.write(args[0], bytes(args[1][: len(args[1]) // 2]))
                    kill()
                if before:
                    kill()
                out = orig(*args)
                kill()
                return out
            return orig(*args)

        setattr(trial_log, name, wrapped)

    {"fsync": lambda: wrap("_fsync_fd", before=False),
     "rename": lambda: wrap("_rename", before=False),
     "prerename": lambda: wrap("_rename", before=True),
     "append": lambda: wrap("_write_all", before=False, torn=True)}[op]()


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------

def _scan(out: Path):
    from sim2real.trials.log import scan_trials

    if not (out / "trials.jsonl").exists():
        return [], None
    scan = scan_trials(out)
    assert scan.corrupt == [], f"corrupt lines after a kill: {scan.corrupt}"
    return scan.records, scan.torn


def _check_record_intact(out: Path, rec: dict) -> None:
    """The committed artefacts equal a fresh regeneration of the trial (no corruption)."""
    from sim2real.trials.log import load_steps

    trial_dir = out / rec["artefacts"]
    stored = json.loads((trial_dir / "trial.json").read_text())
    assert stored == rec
    steps = load_steps(trial_dir)
    assert len(steps) == rec["steps"] == STEPS
    for s in steps:
        want = fake_step(rec["task"], rec["trial"], rec["seed"], s.index)
        np.testing.assert_array_equal(s.arrays["hm_color"], want["observation"].color)
        np.testing.assert_array_equal(s.arrays["hm_height"], want["observation"].height)
        np.testing.assert_array_equal(s.arrays["frame0_depth"], want["frames"][0].depth)
        np.testing.assert_array_equal(s.arrays["pick_logits"], want["action"].pick_logits.astype(np.float16))
        assert s.meta["action"] == json.loads(json.dumps(want["action"].to_dict()))
    assert rec["success"] == fake_success(rec["task"], rec["seed"])


def _check_final(out: Path, trials: int) -> list:
    from sim2real.trials.log import load_trials

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the finished log must have no torn line left
        records = load_trials(out)
    keys = [(r["task"], r["trial"]) for r in records]
    assert len(keys) == len(set(keys)), "a trial was logged twice"
    assert set(keys) == {(t, k) for t in TASKS for k in range(trials)}
    raw_lines = (out / "trials.jsonl").read_text().splitlines()
    assert len(raw_lines) == len(records)
    for rec in records:
        assert rec["seed"] == 7 + rec["trial"]
        _check_record_intact(out, rec)
    assert list((out / "inflight").iterdir()) == []
    assert list((out / "trials" / ".tmp").iterdir()) == []
    return records


def _run_driver(out: Path, env_extra: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _assert_kept(seen: dict, records: list) -> None:
    now = {(r["task"], r["trial"]): r for r in records}
    for key, rec in seen.items():
        assert key in now, f"labelled trial {key} was lost"
        assert now[key] == rec, f"labelled trial {key} changed"
    seen.update(now)


def test_random_kill9_then_resume_keeps_every_labelled_trial(tmp_path):
    """>= 20 SIGKILLs at random moments of a running campaign; then resume to the end."""
    out = tmp_path / "campaign"
    rng = random.Random(1234)
    # A trial takes >= 3 x 0.05 s and the kill lands < 0.15 s after the first trial began, so a run
    # commits at most one trial: 22 kills can never finish the 40-trial campaign early.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STEP_SLEEP": "0.05", "TRIALS": "10"}
    seen: dict = {}
    kills = mid_trial = 0
    while kills < 22:
        proc = subprocess.Popen([sys.executable, __file__, str(out)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()  # wait until a trial has begun: kills land in a running campaign
        if not line.startswith("begin"):
            proc.wait(timeout=60)
            break  # the campaign is complete: nothing left to interrupt
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        records, _torn = _scan(out)
        mid_trial += int(any(True for _ in (out / "inflight").glob("*.json")))
        _assert_kept(seen, records)
    assert kills >= 20, f"only {kills} kills landed; the campaign finished too fast"
    assert mid_trial >= 10, "kills should mostly interrupt trials in flight"
    final = _run_driver(out, {"STEP_SLEEP": "0", "TRIALS": "10"})
    assert final.returncode == 0, final.stderr
    assert "complete True" in final.stdout
    records = _check_final(out, 10)
    _assert_kept(seen, records)
    assert any(r["retry"] for r in records), "interrupted trials must be redone and marked retry"
    assert all(r["attempt"] >= 2 for r in records if r["retry"])


@pytest.mark.parametrize("points", [
    ["append:1", "append:1", "append:2"],        # torn last line, twice in a row, then a later one
    ["rename:2", "prerename:3", "fsync:5"],      # marker / artefact renames and fsyncs
    ["rename:4", "fsync:17", "append:3", "rename:7"],
])
def test_injected_kill_at_durable_operations(tmp_path, points):
    """SIGKILL exactly at fsync / rename / half-written append; resume repairs and completes."""
    from sim2real.trials.log import scan_trials

    out = tmp_path / "campaign"
    seen: dict = {}
    torn_seen = False
    for point in points:
        result = _run_driver(out, {"KILL_AT": point, "TRIALS": "2"})
        assert result.returncode == -signal.SIGKILL, (point, result.stdout, result.stderr)
        records, torn = _scan(out)
        torn_seen |= torn is not None
        _assert_kept(seen, records)
    if any(p.startswith("append") for p in points):
        assert torn_seen, "a half-written append must leave a torn last line"
    final = _run_driver(out, {"TRIALS": "2"})
    assert final.returncode == 0, final.stderr
    records = _check_final(out, 2)
    _assert_kept(seen, records)
    if torn_seen:
        assert list(out.glob("trials.jsonl.torn-*")), "torn bytes must be kept in a backup file"
        assert scan_trials(out).torn is None


if __name__ == "__main__":
    driver(sys.argv[1])
