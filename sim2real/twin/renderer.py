"""PyBullet connection and renderer choice for the twin.

The EGL plugin renders offscreen with OpenGL (Mesa llvmpipe here, a GPU where there is one); when
it does not load, the CPU TinyRenderer is used. ``SIM2REAL_RENDERER=tiny|egl`` forces a choice.
Measured on the 2-core dev machine: see bench/RESULTS_twin.md.
"""
from __future__ import annotations

import os
import pkgutil
import sys
from dataclasses import dataclass

from sim2real.errors import HardwareError


@dataclass
class Connection:
    """A PyBullet client and how it renders.

    Attributes:
        client: ``pybullet_utils.bullet_client.BulletClient`` (pybullet API bound to one server).
        renderer: 'egl' or 'tiny' (or 'gui' with --gui).
        render_flag: the ``renderer=`` argument for ``getCameraImage``.
    """

    client: object
    renderer: str
    render_flag: int
    plugin_id: int = -1

    def close(self) -> None:
        """Disconnect (safe to call twice).

        An EGL server is not disconnected while another EGL server of this process is still in
        use: the plugin shares one GL context per process, and tearing one server down crashes
        the others' next frame. It is emptied and kept for the next :func:`connect` instead;
        the last EGL connection to close disconnects them all.
        """
        c, self.client = self.client, None
        if c is None:
            return
        if self.renderer == "egl":
            _EGL["active"] -= 1
            if _EGL["active"] > 0:
                c.resetSimulation()
                _EGL["idle"].append((c, self.plugin_id))
                return
            idle, _EGL["idle"] = _EGL["idle"], []
            for other, _ in idle:
                _disconnect(other)
        _disconnect(c)


_EGL = {"active": 0, "idle": []}
"""Process-wide bookkeeping of EGL servers (see Connection.close)."""


def _disconnect(client) -> None:
    try:
        with _quiet_stdout():
            client.disconnect()
    except Exception:  # noqa: BLE001 - the server may already be gone; nothing left to release
        pass


def connect(gui: bool = False, renderer: str | None = None) -> Connection:
    """Start a PyBullet server (DIRECT, or GUI) and pick the renderer.

    Args:
        gui: open the PyBullet window (needs a display).
        renderer: 'egl', 'tiny' or None (= $SIM2REAL_RENDERER, else EGL when it loads).
    """
    with _quiet_stdout():  # pybullet prints its build banner on import
        import pybullet as p
        from pybullet_utils import bullet_client

    if gui and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # PyBullet's GUI calls exit(1) from C when it cannot open a window: refuse first, clearly.
        raise HardwareError("--gui needs a display (DISPLAY is not set); drop --gui to run headless")
    choice = (renderer or os.environ.get("SIM2REAL_RENDERER") or "auto").lower()
    if choice not in ("auto", "egl", "tiny"):
        raise HardwareError(f"renderer {choice!r} is unknown; use egl, tiny or leave SIM2REAL_RENDERER unset")
    if not gui and choice in ("auto", "egl") and _EGL["idle"]:
        client, plugin_id = _EGL["idle"].pop()  # an emptied EGL server kept alive by Connection.close
        _EGL["active"] += 1
        return Connection(client, "egl", p.ER_BULLET_HARDWARE_OPENGL, plugin_id)
    try:
        with _quiet_stdout():  # pybullet prints its build banner and EGL probing on stdout
            client = bullet_client.BulletClient(connection_mode=p.GUI if gui else p.DIRECT)
    except Exception as e:  # noqa: BLE001 - pybullet raises a bare error when no display exists
        raise HardwareError(f"cannot start PyBullet ({'GUI' if gui else 'DIRECT'}): {e}; drop --gui on a headless machine") from None
    if gui:
        client.configureDebugVisualizer(p.COV_ENABLE_GUI, 0)
        return Connection(client, "gui", p.ER_BULLET_HARDWARE_OPENGL)
    if choice in ("auto", "egl"):
        plugin_id = _load_egl(client)
        if plugin_id >= 0:
            _EGL["active"] += 1
            return Connection(client, "egl", p.ER_BULLET_HARDWARE_OPENGL, plugin_id)
        if choice == "egl":
            client.disconnect()
            raise HardwareError("the EGL renderer plugin did not load (no libEGL / Mesa?); use SIM2REAL_RENDERER=tiny")
    return Connection(client, "tiny", p.ER_TINY_RENDERER)


def _load_egl(client) -> int:
    """Load the EGL plugin into ``client``; -1 when it is not available."""
    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return -1
    try:
        with _quiet_stdout():  # the plugin prints its GL vendor strings on stdout
            return int(client.loadPlugin(loader.get_filename(), "_eglRendererPlugin"))
    except Exception:  # noqa: BLE001 - any failure means "no EGL here"
        return -1


class _quiet_stdout:
    """Silence C-level stdout and stderr (fds 1, 2) for a block: pybullet prints its build banner,
    EGL probing and GL vendor strings there. Python exceptions are unaffected."""

    def __enter__(self):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        _flush_c_stdout()  # C stdio buffers a redirected stream: flush it while it still goes to /dev/null
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        return False


def _flush_c_stdout() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - best effort: at worst a banner line appears
        pass
