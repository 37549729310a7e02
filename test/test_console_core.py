"""The console's pure core: clicks -> pixels -> poses, rotation bins, the safety gate, the demo
episode buffer, the control lease and token, progress, and the ConsoleOperator's idempotent labels."""
import math
import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.action import N_ROTATIONS, PixelPose, quat_xyzw_from_theta, theta_from_bin
from sim2real.console.access import ControlLease, needs_token, read_token_file, token_ok
from sim2real.console.clicks import ClickDraft, bin_from_drag, canvas_to_pixel, rotation_marker, tool_direction
from sim2real.console.demo_buffer import DemoEpisode
from sim2real.console.progress import campaign_progress
from sim2real.console.proposal import action_from_draft, approved_plan, plans_agree, propose
from sim2real.errors import InputError, SafetyError
from sim2real.motion import MotionConfig, estimate_held_height, plan_from_action
from sim2real.robot import DryRunRobot
from sim2real.safety import SafetyEnvelope, check_plan
from sim2real.trials.operator import CampaignStopped, ConsoleOperator
from sim2real.trials.stats import wilson_interval
from sim2real.workspace import GENSIM_WORKSPACE

WS = GENSIM_WORKSPACE


def flat_height(value=0.0, box=None):
    h = np.full(WS.shape, value, np.float32)
    if box is not None:
        (r0, r1, c0, c1), z = box
        h[r0:r1, c0:c1] = z
    return h


# ------------------------------------------------------------------------------------------------
# clicks
# ------------------------------------------------------------------------------------------------

def test_canvas_to_pixel_scales_the_drawn_image_onto_the_grid():
    assert canvas_to_pixel(0, 0, 160, 320, WS.shape) == (0, 0)
    assert canvas_to_pixel(159.99, 319.99, 160, 320, WS.shape) == (319, 159)
    # drawn at 1.875x: the centre of cell (100, 50)
    s = 1.875
    assert canvas_to_pixel((50 + 0.5) * s, (100 + 0.5) * s, 160 * s, 320 * s, WS.shape) == (100, 50)


@pytest.mark.parametrize("x, y, w, h", [(-1, 5, 160, 320), (5, 320, 160, 320), (float("nan"), 1, 160, 320),
                                        (1, 1, 0, 320), (1, 1, 160, float("inf"))])
def test_canvas_to_pixel_refuses_points_off_the_image(x, y, w, h):
    with pytest.raises(InputError):
        canvas_to_pixel(x, y, w, h, WS.shape)


def test_tool_direction_is_the_x_axis_of_the_quaternion_the_arm_gets():
    for k in range(N_ROTATIONS):
        q = quat_xyzw_from_theta(theta_from_bin(k))
        x_axis = Rotation.from_quat(q).apply([1.0, 0.0, 0.0])  # base frame (x, y, z)
        d_row, d_col = tool_direction(k)
        # image rows are y, columns are x
        assert d_col == pytest.approx(x_axis[0], abs=1e-12) and d_row == pytest.approx(x_axis[1], abs=1e-12)


def test_a_drag_along_a_bins_direction_gives_that_bin_and_near_directions_round():
    for k in range(N_ROTATIONS):
        d_row, d_col = tool_direction(k)
        assert bin_from_drag(30 * d_row, 30 * d_col) == k
        # 4 degrees off still rounds to k (bins are 10 degrees wide)
        theta = theta_from_bin(k) + math.radians(4)
        assert bin_from_drag(-math.sin(theta), math.cos(theta)) == k
    with pytest.raises(InputError):
        bin_from_drag(0.0, 0.0)


def test_rotation_marker_starts_at_the_place_cell_centre():
    (r0, c0), (r1, c1) = rotation_marker((10, 20), 9, length_px=10)
    assert (r0, c0) == (10.5, 20.5)
    assert (r1 - r0, c1 - c0) == pytest.approx((-10.0, 0.0), abs=1e-9)  # bin 9 = 90 deg: tool x along -y


def test_clicks_set_pick_then_place_then_start_over():
    d = ClickDraft()
    assert d.expecting == "pick"
    d = d.click((5, 6), frame_seq=3)
    assert (d.pick, d.place, d.expecting) == ((5, 6), None, "place")
    d = d.click((7, 8), frame_seq=3)
    assert d.complete and d.place == (7, 8) and d.expecting == "pick"
    d = d.rotate(-1)
    assert d.rotation == 35
    d = d.click((1, 1), frame_seq=3)  # a third click is a new pick
    assert (d.pick, d.place, d.rotation) == ((1, 1), None, 35)
    # a place click on a newer frame moves the draft to that frame (pick and place share one observation)
    d = d.click((2, 2), frame_seq=4)
    assert (d.pick, d.place, d.frame_seq) == ((1, 1), (2, 2), 4)
    with pytest.raises(InputError):
        d.with_rotation(2.5)


# ------------------------------------------------------------------------------------------------
# proposal: the policy path, and the gate
# ------------------------------------------------------------------------------------------------

def test_a_clicked_step_is_planned_exactly_as_a_policy_action():
    height = flat_height(0.0, ((100, 112, 60, 72), 0.04))
    draft = ClickDraft((105, 65), (200, 80), 7, frame_seq=1)
    motion, env = MotionConfig(), SafetyEnvelope()
    prop = propose(draft, height, WS, motion, env)
    pick = PixelPose.from_pixel((105, 65), 0.0, height, WS)
    place = PixelPose.from_pixel((200, 80), theta_from_bin(7), height, WS)
    assert np.allclose(prop.action.pick.xyz, pick.xyz) and np.allclose(prop.action.place.quat_xyzw, place.quat_xyzw)
    held = estimate_held_height(height, (105, 65), WS.pixel_size)
    expected = plan_from_action(prop.action, motion, held)
    assert [w.to_dict() for w in prop.plan] == [w.to_dict() for w in expected]
    assert prop.verdict == check_plan(expected, env.with_workspace(WS)) and prop.verdict.ok
    assert prop.action.pick.xyz[2] == pytest.approx(0.04, abs=1e-6)


def test_an_incomplete_draft_cannot_be_planned():
    with pytest.raises(InputError, match="place"):
        action_from_draft(ClickDraft((1, 1), None), flat_height(), WS)


def test_an_unsafe_click_is_refused_and_nothing_reaches_the_robot():
    env = SafetyEnvelope(reach_max_m=0.6)  # the far corner (x 0.75, y 0.5) is 0.9 m from the base
    prop = propose(ClickDraft((160, 80), (319, 159), 0), flat_height(), WS, MotionConfig(), env)
    assert not prop.verdict.ok and any("reach" in r for r in prop.verdict.reasons)
    robot = DryRunRobot()
    with pytest.raises(SafetyError, match="did not move"):
        approved_plan(prop, env, WS)
    assert robot.commands == []


def test_the_gate_rechecks_with_the_current_envelope():
    prop = propose(ClickDraft((160, 80), (170, 80), 0), flat_height(0.02), WS, MotionConfig(), SafetyEnvelope())
    assert prop.verdict.ok and len(approved_plan(prop, SafetyEnvelope(), WS)) == 8
    with pytest.raises(SafetyError):  # the same plan under a stricter envelope (max speed below the plan's)
        approved_plan(prop, SafetyEnvelope(max_speed=0.01), WS)


def test_plans_agree_within_the_tolerance_only():
    a = propose(ClickDraft((160, 80), (170, 80), 0), flat_height(0.0), WS, MotionConfig(), SafetyEnvelope())
    b = propose(ClickDraft((160, 80), (170, 80), 0), flat_height(0.01), WS, MotionConfig(), SafetyEnvelope())
    c = propose(ClickDraft((160, 80), (170, 80), 0), flat_height(0.05), WS, MotionConfig(), SafetyEnvelope())
    assert plans_agree(a, b) and not plans_agree(a, c)


# ------------------------------------------------------------------------------------------------
# the demonstration episode
# ------------------------------------------------------------------------------------------------

def _obs(v):
    return {"color": np.full((1, 4, 4, 3), v, np.uint8), "depth": np.zeros((1, 4, 4), np.float32)}


def test_episode_entries_follow_gensims_reward_shift_and_final_entry():
    height = flat_height()
    a1 = action_from_draft(ClickDraft((160, 80), (170, 80), 3), height, WS)
    a2 = action_from_draft(ClickDraft((150, 70), (180, 90), 0), height, WS)
    ep = DemoEpisode(seed=7)
    ep.set_goal("put the red block in the green bowl")
    ep.append(_obs(1), a1, 0.5, {"rotation_bin": 3})
    ep.append(_obs(2), a2, 0.5, {"rotation_bin": 0})
    entries = ep.entries(_obs(3))
    assert [e[2] for e in entries] == [0.0, 0.5, 0.5]  # the reward of the previous step, 0 first
    assert entries[-1][1] is None and all(e[3]["lang_goal"] == ep.goal for e in entries)
    assert np.allclose(entries[0][1]["pose0"][0], a1.pick.xyz) and np.allclose(entries[0][1]["pose1"][1],
                                                                                 a1.place.quat_xyzw)
    assert ep.undo().info["rotation_bin"] == 0 and len(ep.steps) == 1


def test_episode_refuses_empty_goals_templates_and_empty_episodes():
    ep = DemoEpisode()
    for bad in ("", "put the {pick} block in the {place} bowl"):
        with pytest.raises(InputError):
            ep.set_goal(bad)
    with pytest.raises(InputError, match="goal"):
        ep.append(_obs(0), action_from_draft(ClickDraft((1, 1), (2, 2)), flat_height(), WS))
    with pytest.raises(InputError, match="undo"):
        ep.undo()
    with pytest.raises(InputError, match="at least one step"):
        ep.entries(_obs(0))


def test_saved_episode_is_read_back_by_the_demos_dataset(tmp_path):
    from sim2real.demos.dataset import DemoDataset

    ep = DemoEpisode(seed=3)
    ep.set_goal("stack the blocks")
    a = action_from_draft(ClickDraft((160, 80), (170, 80), 5), flat_height(), WS)
    ep.append(_obs(1), a, 1.0)
    assert ep.save(tmp_path / "d", _obs(2)) == 0
    ds = DemoDataset(tmp_path / "d")
    assert ds.episode_ids == [(0, 3)]
    entries = ds.episode(0)
    assert len(entries) == 2 and entries[1][2] == 1.0 and entries[0][3]["lang_goal"] == "stack the blocks"
    assert np.allclose(entries[0][1]["pose1"][1], a.place.quat_xyzw)


# ------------------------------------------------------------------------------------------------
# who may act
# ------------------------------------------------------------------------------------------------

def test_token_needed_off_loopback_and_compared_exactly(tmp_path):
    assert not needs_token("127.0.0.1") and needs_token("0.0.0.0") and needs_token("192.168.1.5")
    assert token_ok(None, None) and token_ok("abc", "abc")
    assert not token_ok(None, "abc") and not token_ok("", "abc") and not token_ok("abd", "abc")
    (tmp_path / "t").write_text("short\n")
    with pytest.raises(InputError, match="16"):
        read_token_file(tmp_path / "t")
    (tmp_path / "t").write_text("0123456789abcdefXYZ\n")
    assert read_token_file(tmp_path / "t") == "0123456789abcdefXYZ"


def test_one_client_holds_control_until_it_lapses():
    now = [0.0]
    lease = ControlLease(ttl_s=10, clock=lambda: now[0])
    assert lease.acquire("tab-aaaaaaaa") and not lease.acquire("tab-bbbbbbbb")
    assert lease.holds("tab-aaaaaaaa") and not lease.holds("tab-bbbbbbbb")
    now[0] = 8.0
    assert lease.touch("tab-aaaaaaaa") and not lease.touch("tab-bbbbbbbb")
    now[0] = 17.0  # 9 s after the heartbeat: still held; a reload (same id) keeps it
    assert lease.acquire("tab-aaaaaaaa") and not lease.acquire("tab-bbbbbbbb")
    now[0] = 28.0  # lapsed
    assert lease.holder() is None and lease.acquire("tab-bbbbbbbb")
    lease.lapse_soon("tab-bbbbbbbb", grace_s=2)  # its page closed (or is reloading)
    now[0] = 29.0
    assert lease.acquire("tab-bbbbbbbb")  # the reloaded page is back in time: it keeps control
    lease.lapse_soon("tab-bbbbbbbb", grace_s=2)
    now[0] = 31.5
    assert lease.holder() is None and lease.acquire("tab-aaaaaaaa")  # a closed page frees it after the grace
    with pytest.raises(InputError):
        lease.acquire("x")


# ------------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------------

def test_progress_counts_labels_and_uses_wilson_intervals():
    recs = [{"task": "a", "label": {"outcome": o}} for o in ("success", "failure", "partial", "success")]
    recs += [{"task": "b", "label": {"outcome": "success"}}]
    p = campaign_progress(recs, ["a", "b", "c"], 10)
    rows = {r["task"]: r for r in p["tasks"]}
    assert (rows["a"]["done"], rows["a"]["successes"]) == (4, 2)  # partial is not a success
    assert rows["a"]["ci"] == list(wilson_interval(2, 4))
    assert rows["c"]["done"] == 0 and rows["c"]["rate"] is None and rows["c"]["ci"] == [0.0, 1.0]
    assert p["total"]["done"] == 5 and p["total"]["planned"] == 30 and p["total"]["ci"] == list(wilson_interval(3, 5))


# ------------------------------------------------------------------------------------------------
# ConsoleOperator: a label is taken once, whoever sends it how often
# ------------------------------------------------------------------------------------------------

class _Result:
    success, steps, reason, reward, info = None, 2, "done", None, {}


def _wait_pending(op, kind, timeout=5.0):
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        p = op.pending()
        if p is not None and p["kind"] == kind:
            return p
        time.sleep(0.005)
    raise AssertionError(f"no {kind} prompt")


def test_console_operator_takes_each_answer_once_and_refuses_stale_keys():
    op = ConsoleOperator("alice")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("label", op.label("stack-block", 0, _Result())))
    t.start()
    p = _wait_pending(op, "label")
    with pytest.raises(InputError):  # a bad label stores nothing and keeps the prompt
        op.answer(p["key"], outcome="maybe")
    assert op.pending()["key"] == p["key"]
    first = op.answer(p["key"], outcome="failure", category="grasp", note="slipped")
    again = op.answer(p["key"], outcome="success")  # a reloaded tab re-sending, or a second tab
    t.join(5)
    assert not first["duplicate"] and again["duplicate"] and again["label"] == first["label"]
    assert out["label"].outcome == "failure" and out["label"].category == "grasp" and out["label"].by == "alice"
    with pytest.raises(InputError, match="no longer asked"):
        op.answer("someone-elses-key", outcome="success")


def test_two_tabs_answering_at_once_store_exactly_one_label():
    op = ConsoleOperator()
    results = []
    t = threading.Thread(target=lambda: results.append(op.label("t", 1, _Result())))
    t.start()
    key = _wait_pending(op, "label")["key"]
    answers, barrier = [], threading.Barrier(8)

    def tab(outcome):
        barrier.wait()
        answers.append(op.answer(key, outcome=outcome, category=None if outcome == "success" else "other"))

    tabs = [threading.Thread(target=tab, args=("success" if i % 2 else "failure",)) for i in range(8)]
    for x in tabs:
        x.start()
    for x in tabs:
        x.join(5)
    t.join(5)
    assert sum(not a["duplicate"] for a in answers) == 1
    assert len({a["label"]["outcome"] for a in answers}) == 1 and results[0].outcome == answers[0]["label"]["outcome"]


def test_console_operator_reset_prompt_and_stop():
    op = ConsoleOperator()
    t = threading.Thread(target=lambda: op.start_trial("t", 0, 3, seed=5))
    t.start()
    p = _wait_pending(op, "reset")
    assert "trial 1/3" in p["text"] and p["seed"] == 5
    with pytest.raises(InputError):
        op.answer(p["key"], outcome="success")
    assert op.answer(p["key"], reset=True)["kind"] == "reset"
    t.join(5)
    errors = []

    def wait():
        try:
            op.start_trial("t", 1, 3, seed=6)
        except CampaignStopped as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    _wait_pending(op, "reset")
    op.stop()
    t.join(5)
    assert errors and op.pending() is None


def test_labels_reach_the_trial_log_once_through_the_campaign_loop(tmp_path):
    from sim2real.episode import EpisodeResult
    from sim2real.trials.campaign import Campaign, run_campaign
    from sim2real.trials.log import TrialLog, load_trials

    op = ConsoleOperator("bob")
    campaign = Campaign(tasks=("stack-block",), name="c", trials=2, order="blocked", seed=0)
    log = TrialLog(tmp_path / "run")
    done = threading.Event()

    def loop():
        try:
            run_campaign(campaign, log, lambda task, trial, seed: EpisodeResult(None, 1, "done"), op,
                         policy="p", progress=False)
        finally:
            done.set()

    threading.Thread(target=loop, daemon=True).start()
    for outcome in ("success", "failure"):
        op.answer(_wait_pending(op, "reset")["key"], reset=True)
        key = _wait_pending(op, "label")["key"]
        op.answer(key, outcome=outcome, category=None if outcome == "success" else "place")
        assert op.answer(key, outcome="partial", category="other")["duplicate"]  # page reloaded, re-sent
    assert done.wait(10)
    log.close()
    records = load_trials(tmp_path / "run")
    assert [(r["trial"], r["label"]["outcome"], r["label"]["by"]) for r in records] == [(0, "success", "bob"),
                                                                                        (1, "failure", "bob")]


def test_the_core_imports_no_web_framework_or_hardware():
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('fastapi', 'uvicorn', 'starlette', 'pydantic', 'selenium', 'pybullet',"
            " 'rclpy', 'pyrealsense2', 'torch'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import sim2real.console.clicks, sim2real.console.proposal, sim2real.console.demo_buffer\n"
            "import sim2real.console.access, sim2real.console.progress, sim2real.trials.operator\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
