"""The console in a real browser (headless Debian Chromium through Selenium) on the digital twin:
a 2-step demonstration by clicking with a reload in the middle, stop during a motion, a trial
labelled in two tabs, and screenshots checked for the heightmap and the overlay.

Skipped with the reason when /usr/bin/chromium or /usr/bin/chromedriver is missing
(``apt-get install -y chromium chromium-driver``). Everything listens on and talks to 127.0.0.1.
"""
from dataclasses import replace
import time

import numpy as np
import pytest

from test_console_support import browser_missing, make_driver

pytestmark = [pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "browser present"),
              pytest.mark.slow]

TASK = "put-block-in-bowl"


@pytest.fixture(scope="module")
def twin_console(tmp_path_factory):
    from sim2real.console.app import create_app
    from sim2real.console.server import ConsoleServer
    from sim2real.console.station import Rig, Station
    from sim2real.tasks import resolve
    from sim2real.twin import Twin, load_twin_config

    def connect():
        # TinyRenderer: this pytest process may already hold the twin's EGL context, made on the
        # main thread by an earlier test, and EGL crashes when another thread renders with it
        twin = Twin(load_twin_config(), renderer="tiny")
        return Rig(twin.camera, twin.robot, twin.workspace, twin.envelope, twin.config.motion, twin.reachable, twin,
                   twin.close)

    out = tmp_path_factory.mktemp("console")
    station = Station(connect, robot_kind="sim", frame_period_s=0.3, task=resolve(TASK), demos_out=out / "demos",
                      policy="oracle", seed=3).start()
    server = ConsoleServer(create_app(station), "127.0.0.1", 0).start()
    driver = make_driver()
    driver.set_page_load_timeout(30)
    yield station, server.url, driver, out
    driver.quit()
    server.stop()
    station.close()


# ------------------------------------------------------------------------------------------------
# helpers: the page as a person uses it
# ------------------------------------------------------------------------------------------------

def wait(driver, cond, timeout=30.0, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: cond(d), message=what)


def text(driver, id_):
    return driver.find_element("id", id_).text


def open_page(driver, url):
    driver.get(url)
    wait(driver, lambda d: int(d.execute_script("return Number(document.body.dataset.shownSeq || 0)")) > 0,
         what="first frame displayed")
    wait(driver, lambda d: "you control" in text(d, "control-text"), what="control")


def canvas_offset(canvas, pixel, shape=(320, 160)):
    """Offset from the canvas centre (Selenium 4) of heightmap cell ``pixel``'s centre."""
    w, h = canvas.size["width"], canvas.size["height"]
    x = (pixel[1] + 0.5) * w / shape[1]
    y = (pixel[0] + 0.5) * h / shape[0]
    return int(round(x - w / 2)), int(round(y - h / 2))


def click_cell(driver, pixel):
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "heightmap-color")
    dx, dy = canvas_offset(canvas, pixel)
    ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).click().perform()


def drag_from(driver, pixel, d_x, d_y):
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "heightmap-color")
    dx, dy = canvas_offset(canvas, pixel)
    ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).click_and_hold().move_by_offset(
        d_x, d_y).release().perform()


def oracle_step(station):
    """(pick pixel, place pixel, rotation bin) of the twin oracle's next step on the current frame."""
    from sim2real.oracle import OraclePolicy

    a = OraclePolicy(station.instance).act(station.snapshot.obs, station.episode.goal)
    return tuple(a.pick.pixel), tuple(a.place.pixel), int(round(a.place.theta / (2 * np.pi / 36))) % 36


def screenshot_of(driver, element):
    """(H, W, 3) uint8 RGB crop of a page screenshot at ``element``."""
    import cv2

    png = np.frombuffer(driver.get_screenshot_as_png(), np.uint8)
    img = cv2.imdecode(png, cv2.IMREAD_COLOR)[..., ::-1]
    r = element.rect
    return img[int(r["y"]):int(r["y"] + r["height"]), int(r["x"]):int(r["x"] + r["width"])]


def near_color(img, center, rgb, radius=14, tol=40):
    """Number of pixels within ``radius`` of ``center`` (x, y) whose colour is within ``tol`` of ``rgb``."""
    x, y = int(center[0]), int(center[1])
    win = img[max(0, y - radius):y + radius, max(0, x - radius):x + radius].astype(int)
    return int(np.sum(np.all(np.abs(win - np.array(rgb)) <= tol, axis=-1)))


def confirm_and_wait(driver, station, n_steps):
    wait(driver, lambda d: d.find_element("id", "btn-confirm").is_enabled(), what="confirm enabled (safe plan)")
    driver.find_element("id", "btn-confirm").click()
    wait(driver, lambda d: text(d, "step-count") == str(n_steps), timeout=120, what=f"{n_steps} step(s) recorded")


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------

def test_collect_a_two_step_demo_by_clicking_with_a_reload_in_the_middle(twin_console):
    from selenium.webdriver.common.action_chains import ActionChains

    from sim2real.console.clicks import bin_from_drag
    from sim2real.demos.dataset import DemoDataset

    station, url, driver, out = twin_console
    open_page(driver, url)
    assert station.episode.goal and "{" not in station.episode.goal  # the twin's instance goal is preset
    pick, place, rot = oracle_step(station)

    # step 1: click pick, click place, set the rotation by a drag then keys
    click_cell(driver, pick)
    wait(driver, lambda d: text(d, "expecting") == "place", what="pick registered")
    click_cell(driver, place)
    wait(driver, lambda d: station.draft.complete, what="place registered")
    assert (station.draft.pick, station.draft.place) == (pick, place)
    drag_from(driver, place, 0, -40)  # straight up the image (-row): the tool x axis along -y = 90 degrees
    wait(driver, lambda d: station.draft.rotation == bin_from_drag(-1.0, 0.0) == 9, what="drag rotation")
    for _ in range(2):
        ActionChains(driver).send_keys("q").perform()
    wait(driver, lambda d: station.draft.rotation == 7, what="key rotation")
    ActionChains(driver).send_keys("e" * ((rot - 7) % 36)).perform()
    wait(driver, lambda d: station.draft.rotation == rot, what="rotation set to the oracle's")
    wait(driver, lambda d: "SAFE" in text(d, "verdict"), what="verdict shown")

    # the screenshot shows the heightmap and the overlay (pick orange, place blue, plan green)
    canvas = driver.find_element("id", "heightmap-color")
    time.sleep(0.3)
    img = screenshot_of(driver, canvas)
    assert img.std() > 20 and img.shape[0] > 2 * img.shape[1] * 0.9  # a tall, non-blank heightmap image
    w, h = canvas.size["width"], canvas.size["height"]
    at = lambda p: ((p[1] + 0.5) * w / 160, (p[0] + 0.5) * h / 320)  # noqa: E731
    assert near_color(img, at(pick), (255, 138, 0)) > 10, "pick marker missing"
    assert near_color(img, at(place), (73, 163, 255)) > 10, "place marker missing"
    mid = ((at(pick)[0] + at(place)[0]) / 2, (at(pick)[1] + at(place)[1]) / 2)
    assert near_color(img, mid, (40, 220, 120), radius=20, tol=60) > 3, "planned path missing"
    driver.save_screenshot(str(out / "step1.png"))

    confirm_and_wait(driver, station, 1)
    assert station.robot.state().holding is False  # released in the bowl, back home

    # reload mid-episode: the episode, the goal and control survive
    driver.refresh()
    open_page(driver, url)
    assert text(driver, "step-count") == "1" and len(driver.find_elements("css selector", "#steps li")) == 1

    # step 2: the oracle's next step if the goal is not met yet, else move the block into the bowl again
    if station.instance.goals:
        pick2, place2, rot2 = oracle_step(station)
    else:
        block = [o for o in station.instance.groups["blocks"]][0]
        xyz = station.twin.scene.pose(block.body)[0]
        pick2 = station.workspace.xyz_to_pix(xyz)
        place2, rot2 = pick2, 0
    click_cell(driver, pick2)
    wait(driver, lambda d: station.draft.pick == pick2 and station.draft.place is None, what="pick 2")
    click_cell(driver, place2)
    wait(driver, lambda d: station.draft.complete, what="place 2")
    station.rotate(bin=rot2)
    confirm_and_wait(driver, station, 2)
    driver.find_element("id", "btn-done").click()
    wait(driver, lambda d: "saved episode(s): 0" in text(d, "saved"), timeout=60, what="episode saved")

    ds = DemoDataset(out / "demos")
    assert ds.n_episodes == 1 and ds.view == "camera" and ds.episode_ids[0][1] == 3
    entries = ds.episode(0)
    assert len(entries) == 3 and entries[2][1] is None
    assert entries[0][3]["lang_goal"] == entries[2][3]["lang_goal"]
    # the first recorded step is what was clicked: the pick pose is the clicked cell on that frame's heightmap
    obs0 = entries[0][0]
    xyz = station.workspace.pix_to_xyz(pick, obs0["heightmap_height"])
    assert np.allclose(entries[0][1]["pose0"][0], xyz, atol=1e-6)
    assert entries[1][2] > 0.0  # the oracle's step completed the goal (reward after step 1)
    assert ds.image(obs0, entries[0][3]).shape == (320, 160, 6)


def test_stop_during_a_motion_stops_the_arm_and_records_nothing(twin_console):
    from sim2real.motion import Speeds

    station, url, driver, out = twin_console
    station.new_scene(seed=8).result(timeout=120)  # a fresh scene: the oracle has a step to offer
    open_page(driver, url)
    fast = station.motion
    station.motion = replace(fast, speeds=Speeds(*(0.03,) * 6))  # slow enough to press stop mid-way
    try:
        station.clear_draft()
        before = int(text(driver, "step-count"))
        pick, place, _ = oracle_step(station)
        click_cell(driver, pick)
        wait(driver, lambda d: station.draft.pick == pick, what="pick")
        click_cell(driver, place)
        wait(driver, lambda d: station.draft.complete, what="place")
        wait(driver, lambda d: d.find_element("id", "btn-confirm").is_enabled(), what="confirm enabled")
        driver.find_element("id", "btn-confirm").click()
        wait(driver, lambda d: station.busy == "moving", what="moving")
        time.sleep(0.3)
        t0 = time.monotonic()
        driver.find_element("id", "stop").click()
        wait(driver, lambda d: station.busy is None, timeout=10, what="the motion ended")
        stopped_after = time.monotonic() - t0
        wait(driver, lambda d: "STOP" in text(d, "message") or "stopped" in text(d, "message"), what="stop shown")
        assert stopped_after < 2.0
        assert int(text(driver, "step-count")) == before
        tcp = station.robot.state().tcp_xyz
        place_xyz = station.workspace.pix_to_xyz(place, station.snapshot.obs.height)
        assert np.linalg.norm(np.asarray(tcp[:2]) - np.asarray(place_xyz[:2])) > 0.02  # it never got there
        driver.save_screenshot(str(out / "stopped.png"))
    finally:
        station.motion = fast
        station.new_scene(seed=10).result(timeout=120)


def test_label_a_trial_in_the_browser_once_even_from_two_tabs(twin_console, tmp_path):
    from sim2real.console.campaign_runner import CampaignRunner
    from sim2real.tasks import resolve
    from sim2real.trials.campaign import Campaign
    from sim2real.trials.log import load_trials

    station, url, driver, out = twin_console
    campaign = Campaign(tasks=(TASK,), name="console", trials=1, order="blocked", seed=5)
    runner = CampaignRunner(station, campaign, tmp_path / "run", {TASK: resolve(TASK)}, "oracle", "dana").start()
    try:
        open_page(driver, url)
        wait(driver, lambda d: d.find_element("id", "btn-reset-done").is_displayed(), what="reset prompt")
        assert "trial 1/1" in text(driver, "trial-text")
        driver.find_element("id", "btn-reset-done").click()
        wait(driver, lambda d: d.find_element("id", "label-success").is_displayed(), timeout=180, what="label prompt")
        assert not driver.find_element("id", "btn-reset-done").is_displayed()  # one prompt at a time
        key = station.operator.pending()["key"]
        # a second tab watches the same prompt
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(url)
        wait(driver, lambda d: d.find_element("id", "label-success").is_displayed(), what="second tab shows it")
        assert "watching" in text(driver, "control-text")
        driver.switch_to.window(first)
        driver.find_element("id", "label-success").click()
        driver.find_element("id", "note").send_keys("clean")
        driver.find_element("id", "btn-label-submit").click()
        wait(driver, lambda d: "label saved" in text(d, "message"), what="label saved")
        # the same label sent again (a reload re-sending it) is a duplicate, not a second record
        from test_console_support import http
        again = http(url + "api/trial/answer", "POST", {"key": key, "outcome": "failure", "category": "other"},
                     {"X-Client-Id": driver.execute_script("return sessionStorage.getItem('sim2real_client')")})
        assert again[0] == 200 and again[1]["duplicate"] and again[1]["label"]["outcome"] == "success"
        t0 = time.monotonic()
        while runner.alive():
            assert time.monotonic() - t0 < 60
            time.sleep(0.1)
        wait(driver, lambda d: d.find_element("id", "progress-panel").is_displayed(), what="progress shown")
        wait(driver, lambda d: "1/1" in text(d, "progress"), what="progress updated")
        driver.save_screenshot(str(out / "labelled.png"))
        for h in driver.window_handles:
            if h != first:
                driver.switch_to.window(h)
                driver.close()
        driver.switch_to.window(first)
    finally:
        runner.stop()
        station.operator = None
        station.campaign_view = None
    records = load_trials(tmp_path / "run")
    assert len(records) == 1 and records[0]["label"] == {"outcome": "success", "category": None, "note": "clean",
                                                         "by": "dana"}
