"""`sim2real console` as a command on the twin: the acceptance command collects a demonstration
that the demos dataset reads; bad arguments are one line and exit 2; --require-token guards it.
Everything binds 127.0.0.1 (port 0: any free port)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from subprocess_support import default_sigint
from test_console_support import http

A = {"X-Client-Id": "tab-cli-aaaaaa"}


def start_console(tmp_path, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    log = open(tmp_path / "console.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "sim2real", "console", "--robot", "sim", "--task",
                             "put-block-in-bowl", "--port", "0", "--frame-period", "0.3", *extra],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            preexec_fn=default_sigint)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:  # the twin starts in ~10 s; the shared CI machine can be slow
        log.seek(0)
        m = re.search(r"(http://127\.0\.0\.1:\d+/)(\?token=\S+)?", log.read())
        if m:
            return proc, m.group(1), m.group(2)
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"console exited: {log.read()}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGABRT)  # faulthandler prints every thread's stack into the log
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    raise AssertionError(f"console did not start within 300 s: {log.read()[-6000:]}")


def stop_console(proc):
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


@pytest.mark.slow
def test_the_acceptance_command_collects_a_demo_the_dataset_reads(tmp_path):
    from sim2real.demos.dataset import DemoDataset

    demos = tmp_path / "put-block-in-bowl-train"
    proc, url, _ = start_console(tmp_path, "--demos-out", str(demos), "--policy", "oracle", "--seed", "4")
    try:
        assert http(url + "api/control/acquire", "POST", {"client": A["X-Client-Id"]})[0] == 200
        status, page = http(url)
        assert status == 200 and b"STOP" in page
        # the oracle fills the draft (pick, place, rotation) through the same plan and envelope as a click
        assert http(url + "api/demo/suggest", "POST", {}, A)[0] == 200
        assert http(url + "api/state")[1]["proposal"]["verdict"]["ok"]
        status, body = http(url + "api/demo/confirm", "POST", {}, A, timeout=120)
        assert status == 200 and body["steps"] == 1
        status, body = http(url + "api/demo/done", "POST", {}, A, timeout=120)
        assert status == 200 and body == {"index": 0, "steps": 1}
    finally:
        assert stop_console(proc) == 0
    ds = DemoDataset(demos)
    assert ds.n_episodes == 1 and ds.view == "camera" and ds.episode_ids == [(0, 4)]
    entries = ds.episode(0)
    assert len(entries) == 2 and entries[1][2] > 0 and "bowl" in entries[0][3]["lang_goal"]


@pytest.mark.slow
def test_require_token_guards_every_request(tmp_path):
    proc, url, token_query = start_console(tmp_path, "--require-token")
    try:
        assert token_query  # printed with the address
        token = token_query.split("=", 1)[1]
        assert http(url)[0] == 401 and http(url + "api/state")[0] == 401
        assert http(url + "api/stop", "POST", {})[0] == 401
        assert http(url + "api/state", headers={"Authorization": "Bearer " + token})[0] == 200
    finally:
        assert stop_console(proc) == 0


@pytest.mark.parametrize("args, message", [
    (["--task", "no-such-task"], "no-such-task"),
    (["--task", "stack-block", "--campaign", "config/campaign.yaml"], "--out"),
    (["--task", "stack-block", "--robot", "sim", "--camera", "realsense"], "drop --camera"),
    (["--task", "stack-block", "--robot", "dry-run", "--policy", "oracle"], "oracle"),
    (["--task", "stack-block", "--host", "0.0.0.0", "--token-file", "/nonexistent/token"], "token-file"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message, capsys):
    from sim2real.cli import main

    assert main(["console", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def start_run(tmp_path, out):
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "sim2real", "run", "--robot", "sim", "--task", "stack-block",
                             "--operator", "console", "--console-port", "0", "--operator-name", "erin",
                             "--trials", "1", "--policy", "oracle", "--out", str(out), "--no-progress"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True, preexec_fn=default_sigint)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        log.seek(0)
        m = re.search(r"operator console on (http://127\.0\.0\.1:\d+/)", log.read())
        if m:
            return proc, m.group(1), log
        assert proc.poll() is None, log.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("run did not start its console")


def prompt(url, kind, timeout=300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, s = http(url + "api/state")
        if status == 200 and s["trial"] and s["trial"]["kind"] == kind:
            return s["trial"]
        time.sleep(0.1)
    raise AssertionError(f"no {kind} prompt")


@pytest.mark.slow
def test_sim2real_run_with_the_console_as_operator_labels_through_the_trial_log(tmp_path):
    from sim2real.trials.log import load_trials

    proc, url, log = start_run(tmp_path, tmp_path / "run")
    try:
        status, page = http(url)
        assert status == 200 and b"STOP" in page
        assert http(url + "api/demo/click", "POST", {"x": 1, "y": 1, "width": 2, "height": 2, "seq": 1}, A)[0] == 404
        assert http(url + "api/control/acquire", "POST", {"client": A["X-Client-Id"]})[0] == 200
        reset = prompt(url, "reset")
        assert http(url + "api/trial/answer", "POST", {"key": reset["key"], "reset": True}, A)[0] == 200
        label = prompt(url, "label")
        assert label["suggested_outcome"] in ("success", "failure")
        body = {"key": label["key"], "outcome": "partial", "category": "place", "note": "tilted"}
        assert not http(url + "api/trial/answer", "POST", body, A)[1]["duplicate"]
        assert http(url + "api/trial/answer", "POST", {**body, "outcome": "success"}, A)[1]["duplicate"]
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    records = load_trials(tmp_path / "run")
    assert len(records) == 1 and records[0]["label"] == {"outcome": "partial", "category": "place", "note": "tilted",
                                                         "by": "erin"}


@pytest.mark.slow
def test_stop_on_the_run_console_interrupts_the_run_and_records_nothing(tmp_path):
    from sim2real.trials.log import scan_trials

    proc, url, log = start_run(tmp_path, tmp_path / "run")
    try:
        prompt(url, "reset")
        assert http(url + "api/stop", "POST", {})[0] == 200  # any tab; no lease needed
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    assert rc in (0, 130), log.read()
    assert not (tmp_path / "run" / "trials.jsonl").exists() or scan_trials(tmp_path / "run").records == []


def test_a_checkpoint_policy_takes_the_shared_policy_options(tmp_path, capsys):
    """console --policy FILE loads with act/run's options (--batchnorm, --clip-precision, ...): a file that is
    no checkpoint is a one-line refusal, exit 2 (it was an AttributeError before the options were shared)."""
    from sim2real.cli import main

    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    assert main(["console", "--task", "stack-block", "--policy", str(bad), "--batchnorm", "running",
                 "--clip-precision", "float32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.ckpt" in err[0]
