"""The console's HTTP API on 127.0.0.1 (a ray-cast camera and a recording robot): demonstrations
through the plan -> envelope -> robot path, the token, the control lease, stop, trial labels."""
import json
import threading
import time

import numpy as np
import pytest

from sim2real.console.access import ControlLease
from sim2real.console.app import create_app
from sim2real.console.server import ConsoleServer
from test_console_support import box_pixel, http, make_station, pixel_center_click

A, B = "tab-aaaaaaaa", "tab-bbbbbbbb"
HA, HB = {"X-Client-Id": A}, {"X-Client-Id": B}


@pytest.fixture
def console(tmp_path, request):
    kw = getattr(request, "param", {})
    station = make_station(tmp_path, move_duration_s=kw.get("move_duration_s", 0.0))
    server = ConsoleServer(create_app(station, token=kw.get("token")), "127.0.0.1", 0).start()
    yield station, server.url
    server.stop()
    station.close()


def state(url, headers=None):
    status, body = http(url + "api/state", headers=headers)
    assert status == 200
    return body


def click(url, pixel, seq, headers=HA):
    return http(url + "api/demo/click", "POST", {**pixel_center_click(pixel, (320, 160)), "seq": seq}, headers)


def take(url, client=A):
    return http(url + "api/control/acquire", "POST", {"client": client})


def draft_a_step(url):
    """Take control, set a goal and click a pick (box 0) and a place (box 3) on the current frame."""
    take(url)
    http(url + "api/demo/goal", "POST", {"goal": "anything"}, HA)
    seq = state(url)["frame"]["seq"]
    click(url, box_pixel(0), seq)
    click(url, box_pixel(3), seq)


def test_two_clicked_steps_become_a_demo_episode_through_the_robot(console, tmp_path):
    from sim2real.demos.dataset import DemoDataset

    station, url = console
    assert take(url)[0] == 200
    assert http(url + "api/demo/goal", "POST", {"goal": "move the red block onto the yellow zone"}, HA)[0] == 200
    red, blue = box_pixel(0), box_pixel(1)
    zone = box_pixel(3)
    targets = [(red, zone, 9), (blue, (zone[0] - 10, zone[1]), 4)]
    for pick, place, rot in targets:
        seq = state(url)["frame"]["seq"]
        assert click(url, pick, seq)[1]["expecting"] == "place"
        assert click(url, place, seq)[1]["complete"]
        assert http(url + "api/demo/rotate", "POST", {"bin": rot}, HA)[1]["rotation"] == rot
        prop = state(url)["proposal"]
        assert prop["verdict"]["ok"] and [w["segment"] for w in prop["waypoints"]][:2] == ["approach", "descend"]
        n_before = len(station.robot.commands)
        status, body = http(url + "api/demo/confirm", "POST", {}, HA)
        assert status == 200, body
        sent = [c for c in station.robot.commands[n_before:] if c["cmd"] == "move_to"]
        # exactly the previewed plan's motion waypoints were sent
        motions = [w for w in prop["waypoints"] if w["tool"] is None]
        assert np.allclose([c["xyz"] for c in sent], [w["xyz"] for w in motions], atol=1e-9)
    assert state(url)["demo"]["n_steps"] == 2
    status, body = http(url + "api/demo/done", "POST", {}, HA)
    assert status == 200 and body == {"index": 0, "steps": 2}
    ds = DemoDataset(tmp_path / "demos")
    assert ds.view == "camera" and ds.n_episodes == 1
    entries = ds.episode(0)
    assert len(entries) == 3 and entries[-1][1] is None
    pick0 = entries[0][1]["pose0"][0]
    assert np.allclose(pick0[:2], [0.45, -0.15], atol=0.004) and pick0[2] == pytest.approx(0.04, abs=0.004)
    assert all(e[3]["lang_goal"] == "move the red block onto the yellow zone" for e in entries)
    img = ds.image(entries[0][0], entries[0][3])
    assert img.shape == (320, 160, 6) and img[..., 3].max() == pytest.approx(0.12, abs=0.004)


def test_undo_removes_the_last_step_and_discard_forgets_the_episode(console):
    station, url = console
    draft_a_step(url)
    assert http(url + "api/demo/confirm", "POST", {}, HA)[0] == 200
    assert http(url + "api/demo/undo", "POST", {}, HA)[0] == 200
    assert state(url)["demo"]["n_steps"] == 0
    assert http(url + "api/demo/undo", "POST", {}, HA)[0] == 400
    assert http(url + "api/demo/done", "POST", {}, HA)[0] == 400  # nothing to save


def test_an_unsafe_click_is_refused_and_the_arm_never_moves(console):
    station, url = console
    take(url)
    seq = state(url)["frame"]["seq"]
    click(url, (0, 0), seq)      # x 0.25, y -0.5: 0.56 m from the base: inside the reach ...
    click(url, (319, 159), seq)  # ... x 0.75, y 0.5: 0.9 m from the base: beyond the 0.85 m reach
    prop = state(url)["proposal"]
    assert not prop["verdict"]["ok"] and any("reach" in r for r in prop["verdict"]["reasons"])
    status, body = http(url + "api/demo/confirm", "POST", {}, HA)
    assert status == 409 and "did not move" in body["error"]
    assert [c for c in station.robot.commands if c["cmd"] != "stop"] == []


@pytest.mark.parametrize("console", [{"token": "s3cret-token-0123456789"}], indirect=True)
def test_without_the_token_a_request_gets_nothing_and_moves_nothing(console):
    station, url = console
    tok = {"Authorization": "Bearer s3cret-token-0123456789"}
    for path, method, body in [("", "GET", None), ("api/state", "GET", None), ("static/console.js", "GET", None),
                               ("api/frame/1/camera", "GET", None), ("api/control/acquire", "POST", {"client": A}),
                               ("api/demo/click", "POST", {"x": 1, "y": 1, "width": 160, "height": 320, "seq": 1}),
                               ("api/demo/confirm", "POST", {}), ("api/stop", "POST", {})]:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            status, got = http(url + path, method, body, {**HA, **headers})
            assert (status, got) == (401, None), path
        status, _ = http(url + path + "?token=nope", method, body, HA)
        assert status == 401
    assert station.robot.commands == [] and station.draft.pick is None
    # with the token: header, query or the page's cookie
    assert http(url + "api/state", headers=tok)[0] == 200
    assert http(url + "api/state?token=s3cret-token-0123456789")[0] == 200
    assert http(url + "api/control/acquire", "POST", {"client": A}, tok)[0] == 200
    # the websocket needs it too
    import asyncio

    import websockets

    async def ws(query):
        try:
            async with websockets.connect(url.replace("http", "ws") + "ws" + query, open_timeout=5) as conn:
                return json.loads(await asyncio.wait_for(conn.recv(), 5))
        except (websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidStatus):
            return None

    assert asyncio.run(ws("?client=" + A)) is None
    assert asyncio.run(ws("?client=" + A + "&token=s3cret-token-0123456789"))["frame"]["seq"] > 0


def test_only_the_tab_holding_control_acts_and_any_tab_may_stop(console):
    station, url = console
    assert take(url, A)[0] == 200 and take(url, B)[0] == 409
    seq = state(url)["frame"]["seq"]
    assert click(url, box_pixel(0), seq, HB)[0] == 409
    assert station.draft.pick is None
    assert click(url, box_pixel(0), seq, HA)[0] == 200
    assert state(url, HA)["control"] == {"held": True, "you": True}
    assert state(url, HB)["control"] == {"held": True, "you": False}
    n = station.robot.stopped
    assert http(url + "api/stop", "POST", {}, HB)[0] == 200 and station.robot.stopped == n + 1
    http(url + "api/control/release", "POST", {"client": A})
    assert take(url, B)[0] == 200


@pytest.mark.parametrize("console", [{"move_duration_s": 0.4}], indirect=True)
def test_stop_interrupts_a_running_step_which_is_then_not_recorded(console):
    station, url = console
    draft_a_step(url)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http(url + "api/demo/confirm", "POST", {}, HA)))
    t.start()
    t0 = time.monotonic()
    while not any(c["cmd"] == "move_to" for c in station.robot.commands):
        assert time.monotonic() - t0 < 10
        time.sleep(0.01)
    t_stop = time.monotonic()
    assert http(url + "api/stop", "POST", {}, HB)[0] == 200  # from another tab, no lease needed
    t.join(10)
    status, body = out["r"]
    assert status == 409 and body["type"] == "MotionStopped"
    assert time.monotonic() - t_stop < 0.4 + 0.3  # the motion ended early, not after the whole plan
    moves = [c for c in station.robot.commands if c["cmd"] == "move_to"]
    assert len(moves) == 1  # the first waypoint was interrupted; nothing after it was sent
    assert state(url)["demo"]["n_steps"] == 0


def test_the_websocket_pushes_new_frames_and_state(console):
    import asyncio

    import websockets

    station, url = console

    async def frames():
        seqs = set()
        async with websockets.connect(url.replace("http", "ws") + "ws?client=" + A, open_timeout=5) as conn:
            t0 = time.monotonic()
            while len(seqs) < 3 and time.monotonic() - t0 < 10:
                seqs.add(json.loads(await asyncio.wait_for(conn.recv(), 5))["frame"]["seq"])
        return seqs

    assert len(asyncio.run(frames())) >= 3
    seq = state(url)["frame"]["seq"]
    status, jpeg = http(url + f"api/frame/{seq}/camera")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    assert http(url + "api/frame/999999/camera")[0] == 404


def test_campaign_labels_over_http_are_written_once(tmp_path):
    from sim2real.console.campaign_runner import CampaignRunner
    from sim2real.tasks import resolve
    from sim2real.trials.campaign import Campaign
    from sim2real.trials.log import load_trials

    class Still:
        name = "still"

        def act(self, obs, goal, **kw):  # pick and place on the red block: a safe, plannable step
            from sim2real.console.clicks import ClickDraft
            from sim2real.console.proposal import action_from_draft

            return action_from_draft(ClickDraft(box_pixel(0), box_pixel(3)), obs.height, obs.workspace)

    station = make_station(tmp_path, policy=Still(), task=resolve("stack-block"))
    campaign = Campaign(tasks=("stack-block",), name="c", trials=2, order="blocked", seed=0, max_steps=1)
    runner = CampaignRunner(station, campaign, tmp_path / "run", {"stack-block": resolve("stack-block")}, "still",
                            "carol").start()
    server = ConsoleServer(create_app(station, lease=ControlLease()), "127.0.0.1", 0).start()
    url = server.url
    try:
        take(url)
        # the template names scene colours: the operator types the goal before the first trial
        assert http(url + "api/demo/goal", "POST", {"goal": "stack the red block on the blue block"}, HA)[0] == 200

        def prompt(kind):
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                t = state(url)["trial"]
                if t and t["kind"] == kind:
                    return t
                time.sleep(0.02)
            raise AssertionError(kind)

        for outcome in ("failure", "success"):
            p = prompt("reset")
            assert http(url + "api/trial/answer", "POST", {"key": p["key"], "reset": True}, HA)[0] == 200
            p = prompt("label")
            body = {"key": p["key"], "outcome": outcome, "category": "grasp" if outcome == "failure" else None}
            assert http(url + "api/trial/answer", "POST", body, HB)[0] == 409  # a watching tab cannot label
            first = http(url + "api/trial/answer", "POST", body, HA)[1]
            again = http(url + "api/trial/answer", "POST", {**body, "outcome": "partial"}, HA)[1]  # reload re-send
            assert not first["duplicate"] and again["duplicate"] and again["label"]["outcome"] == outcome
        t0 = time.monotonic()
        while runner.alive():
            assert time.monotonic() - t0 < 20
            time.sleep(0.05)
        view = state(url)["campaign"]
        assert view["total"]["done"] == 2 and view["total"]["successes"] == 1
    finally:
        server.stop()
        runner.stop()
        station.close()
    records = load_trials(tmp_path / "run")
    assert [(r["trial"], r["label"]["outcome"], r["label"]["by"]) for r in records] == [(0, "failure", "carol"),
                                                                                        (1, "success", "carol")]
    assert records[0]["goal"] == "stack the red block on the blue block"


def test_a_loaded_policys_suggestion_fills_the_draft_and_its_affordances_are_served(tmp_path):
    import cv2

    from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin

    pick_px, place_px, rot = box_pixel(0), box_pixel(3), 5

    class Peaked:
        name = "peaked"

        def act(self, obs, goal, **kw):
            pick_logits = np.full(obs.height.shape, -10.0, np.float32)
            pick_logits[pick_px] = 10.0
            place_logits = np.full((36,) + obs.height.shape, -10.0, np.float32)
            place_logits[rot][place_px] = 10.0
            return PickPlaceAction(PixelPose.from_pixel(pick_px, 0.0, obs.height, obs.workspace),
                                   PixelPose.from_pixel(place_px, theta_from_bin(rot), obs.height, obs.workspace),
                                   pick_logits, place_logits)

    station = make_station(tmp_path, policy=Peaked())
    station.set_goal("put the red block on the yellow zone")
    server = ConsoleServer(create_app(station), "127.0.0.1", 0).start()
    url = server.url
    try:
        take(url)
        status, body = http(url + "api/demo/suggest", "POST", {}, HA)
        assert status == 200 and body == {"pick": list(pick_px), "place": list(place_px), "rotation": rot}
        s = state(url)
        assert s["draft"]["complete"] and s["proposal"]["verdict"]["ok"] and s["suggestion"]["pick"]
        for kind, peak in (("pick", pick_px), ("place", place_px)):
            status, png = http(url + f"api/frame/{s['suggestion']['seq']}/{kind}")
            img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            assert img.shape == (320, 160, 4)
            assert np.unravel_index(np.argmax(img[..., 3]), img.shape[:2]) == tuple(peak)
    finally:
        server.stop()
        station.close()


def test_stop_while_the_step_re_observes_means_the_arm_never_starts(console):
    station, url = console
    draft_a_step(url)
    read = station.camera.read
    in_capture = threading.Event()

    def slow_read(timeout_s=1.0):  # the confirm's re-observation takes a while
        in_capture.set()
        time.sleep(0.5)
        return read(timeout_s)

    station.camera.read = slow_read
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http(url + "api/demo/confirm", "POST", {}, HA)))
    t.start()
    assert in_capture.wait(10)
    assert http(url + "api/stop", "POST", {}, HA)[0] == 200
    t.join(10)
    station.camera.read = read
    assert out["r"][0] == 409 and out["r"][1]["type"] == "MotionStopped"
    assert [c for c in station.robot.commands if c["cmd"] == "move_to"] == []


def test_stop_between_two_motions_of_a_step_holds_the_arm_there(console):
    """STOP pressed while no motion runs (here: as the tool engages) still ends the step: no lift, no
    transit, no homing, nothing released; the next confirmed step moves again."""
    station, url = console
    draft_a_step(url)
    inner = station.robot.robot
    engage = inner.set_suction

    def engage_then_stop(on):
        engage(on)
        if on:
            inner.set_suction = engage
            station.stop()  # what the STOP request does, between the descent and the lift

    inner.set_suction = engage_then_stop
    status, body = http(url + "api/demo/confirm", "POST", {}, HA)
    assert status == 409 and body["type"] == "MotionStopped"
    cmds = [c["cmd"] for c in inner.commands]
    after = cmds[cmds.index("set_suction"):]
    assert "move_to" not in after and "home" not in after and inner.state().suction is True
    assert station.robot.tripped


def test_run_console_stop_replies_before_it_interrupts_the_run(tmp_path):
    """`sim2real run --operator console`: STOP ends the campaign at once, and interrupts the run (which
    ends the process, page server included) only after the reply is sent, so the tab sees its 200."""
    from sim2real.console.run_operator import OperatorStation
    from sim2real.trials.operator import CampaignStopped, ConsoleOperator

    def campaign_stopped(operator):
        with pytest.raises(CampaignStopped):
            operator.start_trial("stack-block", 0, 1, seed=0)  # returns at once only when stopped
        return True

    replied, interrupted = threading.Event(), threading.Event()
    order = []

    def interrupt():  # waits for the tab to have its reply: it never comes if this runs during the request
        order.append(("interrupt after the reply", replied.wait(5.0)))
        interrupted.set()

    operator = ConsoleOperator("erin")
    station = OperatorStation(operator, tmp_path, ["stack-block"], 1, interrupt=lambda: order.append("too soon"))
    station.stop()
    assert campaign_stopped(operator) and order == []  # stop() alone never interrupts

    station = OperatorStation(ConsoleOperator("erin"), tmp_path, ["stack-block"], 1, interrupt=interrupt)
    server = ConsoleServer(create_app(station), "127.0.0.1", 0).start()
    try:
        status, body = http(server.url + "api/stop", "POST", {})
        replied.set()
        assert status == 200 and body == {"stopped": True}
        assert interrupted.wait(10)
        assert campaign_stopped(station.operator) and order == [("interrupt after the reply", True)]
    finally:
        server.stop()
