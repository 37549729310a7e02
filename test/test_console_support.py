"""Shared setup of the console tests (no tests here): a ray-cast camera, a station on it, a server.

The camera renders ``sim2real.sample_scene`` (a table with boxes at known places), so a click's
pose and height are predictable without PyBullet; the browser tests use the real twin instead.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from sim2real.camera import RGBDFrame
from sim2real.motion import MotionConfig
from sim2real.robot import DryRunRobot
from sim2real.safety import SafetyEnvelope
from sim2real.sample_scene import DEFAULT_INTRINSICS, render
from sim2real.workspace import GENSIM_WORKSPACE


class BoxesCamera:
    """CameraPort over the sample scene (rendered once; every read returns a fresh frame object)."""

    def __init__(self):
        self.color, self.depth, self.K, self.T = render()
        self.reads = 0

    def read(self, timeout_s: float = 1.0) -> RGBDFrame:
        self.reads += 1
        return RGBDFrame(self.color, self.depth, DEFAULT_INTRINSICS, T_base_camera=self.T, stamp=float(self.reads))

    def close(self) -> None:
        pass


def make_station(tmp_path=None, move_duration_s: float = 0.0, **kw):
    """A started Station: BoxesCamera + DryRunRobot (recording), GenSim workspace, default envelope."""
    from sim2real.console.station import Rig, Station

    robot = DryRunRobot(move_duration_s=move_duration_s)
    demos = None if tmp_path is None else tmp_path / "demos"
    station = Station(lambda: Rig(BoxesCamera(), robot, GENSIM_WORKSPACE, SafetyEnvelope(), MotionConfig()),
                      robot_kind="dry-run", frame_period_s=kw.pop("frame_period_s", 0.2), demos_out=demos, **kw)
    return station.start()


def http(url: str, method: str = "GET", body=None, headers=None, timeout: float = 30.0):
    """(status, parsed JSON or raw bytes) of one request; never raises on HTTP errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def pixel_center_click(pixel, shape, drawn=(160.0, 320.0)):
    """Canvas point at the centre of heightmap ``pixel`` for an image drawn at ``drawn`` = (width, height)."""
    rows, cols = shape
    w, h = drawn
    return {"x": (pixel[1] + 0.5) * w / cols, "y": (pixel[0] + 0.5) * h / rows, "width": w, "height": h}


def box_pixel(index: int = 0):
    """Heightmap (row, col) of the centre of sample-scene box ``index``."""
    from sim2real.sample_scene import DEFAULT_BOXES

    return GENSIM_WORKSPACE.xyz_to_pix(np.asarray(DEFAULT_BOXES[index].center))


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    import os

    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} not found: install Debian's chromium and chromium-driver "
                    "(sudo apt-get install -y chromium chromium-driver) to run the browser tests")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make venv installs requirements.txt)"
    return ""


def make_driver(width: int = 1600, height: int = 1000):
    """Headless system Chromium through the system chromedriver; Selenium Manager never downloads."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never go online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--no-proxy-server"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
