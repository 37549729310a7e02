"""Run the console app under uvicorn in a background thread (the CLI, tests and the bench use it)."""
from __future__ import annotations

import threading
import time

from sim2real.errors import HardwareError


class ConsoleServer:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread.

    Args:
        app: the FastAPI app. host: address to bind. port: 0 = any free port (see ``.port``).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.host = host
        config = uvicorn.Config(app, host=host, port=int(port), log_level="warning", ws="websockets-sansio",
                                lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # the caller owns the signals
        self.thread = threading.Thread(target=self.server.run, name="sim2real-console-http", daemon=True)
        self.port = int(port)

    def start(self, timeout_s: float = 20.0) -> "ConsoleServer":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise HardwareError(f"the console could not listen on {self.host}:{self.port} "
                                    "(port in use? pick another with --port)")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
