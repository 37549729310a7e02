"""Who may act on the console. Pure: a token check and a single control lease.

* Token: bound to 127.0.0.1 the console needs none (only this machine can reach it). Bound to any
  other address it requires one for every request and websocket; it is compared in constant time.
* Control lease: any number of browser tabs may watch, exactly one holds control (clicks,
  confirm, labels). A tab identifies itself with a random client id kept in its sessionStorage,
  so a reload keeps control. The lease lapses when its holder has not been heard from for
  ``ttl_s``; then another tab may take it. Stop is not leased: every authorised tab may stop.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from sim2real.errors import InputError

LOCALHOST = ("127.0.0.1", "localhost", "::1")


def needs_token(host: str) -> bool:
    """True unless the server binds only the loopback interface."""
    return host not in LOCALHOST


def new_token() -> str:
    """A fresh random token (32 url-safe characters)."""
    return secrets.token_urlsafe(24)


def read_token_file(path) -> str:
    """The token in ``path`` (first line, stripped). Raises InputError when missing or too short."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--token-file {p}: no such file; write a token (>= 16 characters) into it or drop the option")
    token = p.read_text(encoding="utf-8").strip().splitlines()[0].strip() if p.read_text().strip() else ""
    if len(token) < 16:
        raise InputError(f"--token-file {p}: the token must be at least 16 characters long")
    return token


def token_ok(given: Optional[str], expected: Optional[str]) -> bool:
    """Whether ``given`` matches ``expected`` (constant time); no expected token = open."""
    if expected is None:
        return True
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class ControlLease:
    """One holder of control at a time (thread-safe).

    Args:
        ttl_s: a holder not seen for this long loses the lease.
        clock: monotonic clock (injected in tests).
    """

    def __init__(self, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.clock = float(ttl_s), clock
        self._holder: Optional[str] = None
        self._seen = 0.0
        self._lock = threading.Lock()

    def _valid_id(self, client: str) -> str:
        if not isinstance(client, str) or not (8 <= len(client) <= 128) or not client.isprintable():
            raise InputError("client id must be 8-128 printable characters (the page makes one per tab)")
        return client

    def holder(self) -> Optional[str]:
        """The current holder, or None when free or lapsed."""
        with self._lock:
            return self._live_holder()

    def _live_holder(self) -> Optional[str]:
        if self._holder is not None and self.clock() - self._seen > self.ttl_s:
            self._holder = None
        return self._holder

    def acquire(self, client: str) -> bool:
        """Take control if free, lapsed or already held by ``client``; True when ``client`` holds it."""
        client = self._valid_id(client)
        with self._lock:
            if self._live_holder() in (None, client):
                self._holder, self._seen = client, self.clock()
                return True
            return False

    def touch(self, client: str) -> bool:
        """Heartbeat of ``client``; True when it holds control."""
        with self._lock:
            if self._live_holder() == client:
                self._seen = self.clock()
                return True
            return False

    def lapse_soon(self, client: str, grace_s: float = 2.0) -> None:
        """``client``'s page went away: its lease lapses in ``grace_s`` unless it is heard from again
        (a reloading tab reconnects within that time and keeps control; a closed tab frees it)."""
        with self._lock:
            if self._holder == client:
                self._seen = min(self._seen, self.clock() - self.ttl_s + grace_s)

    def release(self, client: str) -> None:
        with self._lock:
            if self._holder == client:
                self._holder = None

    def holds(self, client: Optional[str]) -> bool:
        with self._lock:
            return client is not None and self._live_holder() == client
