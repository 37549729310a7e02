"""kill -9 the real ``sim2real run`` on the twin a few times, resume, then check trials and report."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("stack-block", "put-block-in-bowl")
TRIALS = 3


def _cmd(out: Path) -> list:
    return [sys.executable, "-m", "sim2real", "run", "--task", ",".join(TASKS), "--policy", "oracle",
            "--trials", str(TRIALS), "--order", "randomised", "--seed", "3", "--out", str(out), "--no-progress"]


def test_twin_cli_survives_kill9_and_report_matches_trials(tmp_path):
    pytest.importorskip("pybullet")
    from sim2real.trials.log import load_steps, load_trials, scan_trials

    out = tmp_path / "twin"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    seen: dict = {}
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(_cmd(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        started = time.monotonic()
        for line in proc.stderr:  # wait for the twin to be up, then kill at a random moment
            if line.startswith("twin:") or time.monotonic() - started > 60:
                break
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
        proc.stderr.close()
        if (out / "trials.jsonl").exists():
            scan = scan_trials(out)
            assert scan.corrupt == []
            now = {(r["task"], r["trial"]): r for r in scan.records}
            for key, rec in seen.items():
                assert now.get(key) == rec, f"labelled trial {key} lost or changed by a kill"
            seen.update(now)
    assert kills >= 2
    final = subprocess.run(_cmd(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = load_trials(out)
    keys = [(r["task"], r["trial"]) for r in records]
    assert sorted(keys) == sorted((t, k) for t in TASKS for k in range(TRIALS)) and len(set(keys)) == len(keys)
    assert len((out / "trials.jsonl").read_text().splitlines()) == len(records)
    for key, rec in seen.items():
        assert next(r for r in records if (r["task"], r["trial"]) == key) == rec
    for rec in records:
        assert rec["seed"] == 3 + rec["trial"] and rec["policy"] == "oracle"
        assert json.loads((out / rec["artefacts"] / "trial.json").read_text()) == rec
        steps = load_steps(out / rec["artefacts"])
        assert len(steps) == rec["recorded_steps"] == rec["steps"] >= 1
        assert steps[0].arrays["hm_color"].shape == (320, 160, 3) and steps[0].meta["goal"]
    assert not list((out / "inflight").glob("*.json"))
    from sim2real.trials.rosbag import image_to_array, read_bag

    bag = read_bag(out / records[0]["bag"])  # the twin trial's rosbag2 is readable and holds its steps
    assert len(bag["/sim2real/heightmap/color"]) == records[0]["steps"]
    assert image_to_array(bag["/camera/color/image_raw"][0][2]).shape == (480, 640, 3)

    # the report written by `sim2real run` matches the recorded trials
    with open(out / "results.csv") as f:
        rows = {r["task"]: r for r in csv.DictReader(f)}
    succ = Counter(r["task"] for r in records if r["success"])
    for task in TASKS:
        assert int(rows[task]["successes"]) == succ[task] and int(rows[task]["trials"]) == TRIALS
    report = (out / "report.md").read_text()
    for task in TASKS:
        assert f"| {task} | {100 * succ[task] / TRIALS:.1f} ({succ[task]}/{TRIALS}) |" in report
