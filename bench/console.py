"""Operator console on the twin: frame -> display latency, and operator time per demonstration step.

    .venv/bin/python bench/console.py [--seconds 20] [--steps 4] [--frame-period 0.3]

1. Latency. The page (headless Debian Chromium, ``?latency=1``) reports when each frame is on
   screen (after its three images are decoded and drawn, at the next animation frame). For every
   frame: capture -> ready (heightmap projection + JPEG/PNG encoding, server side) and ready ->
   displayed (websocket push + image fetch + decode + draw). Baseline, side by side on the same
   frames: a plain websocket client in this process, i.e. ready -> state received, with no page.
2. Operator time per demonstration step, scripted: click pick, click place, set the rotation with
   keys, confirm, wait until the step is recorded (the twin arm executes the plan and goes home).
   Reported: click -> verdict shown, and the whole step. Baseline: the same steps sent straight to
   the HTTP API (no browser), so the ratio is what the page adds.

Needs chromium + chromium-driver (Debian). Binds 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


def row(name, values, unit="ms", scale=1000.0):
    if not values:
        return f"| {name} | - | - | - | 0 |"
    return (f"| {name} | {statistics.median(values) * scale:.1f} | {pct(values, 90) * scale:.1f} | "
            f"{max(values) * scale:.1f} | {len(values)} |")


def start(frame_period, seed=0, tmp=None):
    from sim2real.console.app import create_app
    from sim2real.console.server import ConsoleServer
    from sim2real.console.station import Rig, Station
    from sim2real.tasks import resolve
    from sim2real.twin import Twin, load_twin_config

    def connect():
        twin = Twin(load_twin_config())
        return Rig(twin.camera, twin.robot, twin.workspace, twin.envelope, twin.config.motion, twin.reachable, twin,
                   twin.close)

    station = Station(connect, frame_period_s=frame_period, task=resolve("put-block-in-bowl"), policy="oracle",
                      seed=seed, demos_out=tmp).start()
    app = create_app(station)
    server = ConsoleServer(app, "127.0.0.1", 0).start()
    return station, app, server


def ws_baseline(url, seconds, received):
    """A websocket client with no page: (seq, t_received) of each new frame's state."""
    import websockets

    async def run():
        async with websockets.connect(url.replace("http", "ws") + "ws?client=bench-baseline", open_timeout=5) as c:
            t_end = time.monotonic() + seconds
            seen = set()
            while time.monotonic() < t_end:
                try:
                    msg = json.loads(await asyncio.wait_for(c.recv(), 1.0))
                except asyncio.TimeoutError:
                    continue
                seq = msg["frame"]["seq"]
                if seq not in seen:
                    seen.add(seq)
                    received.append((seq, time.time()))

    asyncio.run(run())


def bench_latency(args, station, app, server):
    from test_console_support import make_driver

    driver = make_driver()
    try:
        driver.get(server.url + "?latency=1")
        time.sleep(2.0)  # first frames, page warm
        app.state.latency.clear()
        received = []
        t = threading.Thread(target=ws_baseline, args=(server.url, args.seconds, received))
        t.start()
        t.join()
        time.sleep(0.5)
    finally:
        driver.quit()
    times = {seq: (tc, tr) for seq, tc, tr in station.frame_times}
    shown = {seq: td for seq, td in app.state.latency}
    got = {seq: tw for seq, tw in received}
    common = sorted(s for s in shown if s in times and s in got)
    server_side = [times[s][1] - times[s][0] for s in common]
    page = [shown[s] - times[s][1] for s in common]
    baseline = [got[s] - times[s][1] for s in common]
    total = [shown[s] - times[s][0] for s in common]
    return server_side, page, baseline, total, len(shown), len(times)


def bench_steps(args, station, server):
    from selenium.webdriver.common.action_chains import ActionChains

    from sim2real.oracle import OraclePolicy
    from test_console_support import http, make_driver

    def next_step():
        if not station.instance.goals:
            station.new_scene().result(timeout=120)
        a = OraclePolicy(station.instance).act(station.snapshot.obs, station.episode.goal)
        return tuple(a.pick.pixel), tuple(a.place.pixel), int(round(a.place.theta / 0.17453292519943295)) % 36

    def wait(cond, timeout=120):
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError
            time.sleep(0.005)

    # baseline: straight to the HTTP API
    hdr = {"X-Client-Id": "bench-api-client"}
    wait(lambda: http(server.url + "api/control/acquire", "POST", {"client": hdr["X-Client-Id"]})[0] == 200, 20)
    api_steps, api_plan = [], []
    for _ in range(args.steps):
        station.new_scene().result(timeout=120)
        pick, place, rot = next_step()
        seq = station.snapshot.seq
        t0 = time.monotonic()
        for p in (pick, place):
            http(server.url + "api/demo/click", "POST", {"x": p[1] + 0.5, "y": p[0] + 0.5, "width": 160,
                                                          "height": 320, "seq": seq}, hdr)
        http(server.url + "api/demo/rotate", "POST", {"bin": rot}, hdr)
        api_plan.append(time.monotonic() - t0)
        status, body = http(server.url + "api/demo/confirm", "POST", {}, hdr, timeout=120)
        api_steps.append(time.monotonic() - t0)
        if status != 200:
            print("api step refused:", body)
    http(server.url + "api/control/release", "POST", {"client": hdr["X-Client-Id"]})

    driver = make_driver()
    page_steps, page_plan = [], []
    try:
        driver.get(server.url)
        wait(lambda: driver.execute_script("return Number(document.body.dataset.shownSeq || 0)") > 0)
        wait(lambda: "you control" in driver.find_element("id", "control-text").text)
        canvas = driver.find_element("id", "heightmap-color")
        for _ in range(args.steps):
            station.new_scene().result(timeout=120)
            pick, place, rot = next_step()
            n0 = len(station.episode.steps)
            w, h = canvas.size["width"], canvas.size["height"]
            off = lambda p: (int((p[1] + 0.5) * w / 160 - w / 2), int((p[0] + 0.5) * h / 320 - h / 2))  # noqa
            t0 = time.monotonic()
            for p in (pick, place):
                ActionChains(driver).move_to_element_with_offset(canvas, *off(p)).click().perform()
            keys = (rot - station.draft.rotation) % 36
            ActionChains(driver).send_keys("e" * keys).perform()
            wait(lambda: station.draft.complete and station.draft.rotation == rot)
            wait(lambda: "SAFE" in driver.find_element("id", "verdict").text
                 or "REFUSED" in driver.find_element("id", "verdict").text)
            page_plan.append(time.monotonic() - t0)
            driver.find_element("id", "btn-confirm").click()
            wait(lambda: driver.find_element("id", "step-count").text == str(n0 + 1))
            page_steps.append(time.monotonic() - t0)
    finally:
        driver.quit()
    return api_plan, api_steps, page_plan, page_steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="latency measurement window")
    p.add_argument("--steps", type=int, default=4, help="demonstration steps per mode")
    p.add_argument("--frame-period", type=float, default=0.3, help="live view period while idle (s)")
    args = p.parse_args(argv)
    station, app, server = start(args.frame_period)
    renderer = station.twin.renderer
    try:
        server_side, page, baseline, total, n_shown, n_frames = bench_latency(args, station, app, server)
        api_plan, api_steps, page_plan, page_steps = bench_steps(args, station, server)
    finally:
        server.stop()
        station.close()
    print(f"twin renderer {renderer}, frame period {args.frame_period} s; "
          f"{n_shown} frames displayed of {n_frames} captured\n")
    print("| frame latency | median ms | p90 ms | max ms | frames |\n|---|---|---|---|---|")
    print(row("capture -> ready (project + encode)", server_side))
    print(row("ready -> state at a bare websocket client (baseline)", baseline))
    print(row("ready -> displayed in Chromium", page))
    print(row("capture -> displayed", total))
    if baseline and page:
        print(f"\nready -> displayed / baseline: {statistics.median(page) / statistics.median(baseline):.1f}x")
    print("\n| demo step (twin, scripted) | median s | p90 s | max s | steps |\n|---|---|---|---|---|")
    print(row("API: clicks + rotation -> plan checked (baseline)", api_plan, scale=1.0))
    print(row("page: clicks + keys -> verdict shown", page_plan, scale=1.0))
    print(row("API: whole step (plan, execute, home, record)", api_steps, scale=1.0))
    print(row("page: whole step (clicks, keys, confirm, recorded)", page_steps, scale=1.0))
    if api_steps and page_steps:
        print(f"\npage / API per step: {statistics.median(page_steps) / statistics.median(api_steps):.2f}x; "
              f"to the verdict: {statistics.median(page_plan) / statistics.median(api_plan):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
