"""The console's FastAPI application: built by :func:`create_app` from its dependencies.

Routers per concern: live view (``/api/state``, ``/api/frame``, ``/ws``), demonstrations
(``/api/demo/*``), trials (``/api/trial/*``), control and stop (``/api/control``, ``/api/stop``).
Handlers only translate HTTP <-> the station's calls; what a click means, whether a motion is
allowed and what is recorded is decided in the pure core (see :mod:`sim2real.console`).

Access: with a token, every request and websocket must carry it (``Authorization: Bearer``, the
``sim2real_token`` cookie the page sets, or ``?token=``); without it the answer is an empty 401 and
nothing is called. Every call that changes anything but stop needs the control lease
(``X-Client-Id`` header): other tabs watch.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

from fastapi import (APIRouter, BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request, WebSocket,
                     WebSocketDisconnect)
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sim2real.console.access import ControlLease, token_ok
from sim2real.console.schemas import Answer, Click, Client, Goal, Latency, Rotate, Scene
from sim2real.errors import InputError, MotionStopped, SafetyError, Sim2RealError

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "sim2real_token"
WS_POLL_S = 0.01
"""How often a websocket checks for a new state version (seconds)."""


def create_app(station, *, token: Optional[str] = None, lease: Optional[ControlLease] = None):
    """The FastAPI app over ``station`` (a :class:`~sim2real.console.station.Station`).

    Args:
        station: the hardware and console state.
        token: required on every request and websocket when not None.
        lease: the control lease (default: a fresh one, 10 s without a heartbeat lapses).
    """
    lease = lease or ControlLease()
    app = FastAPI(title="sim2real console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.station, app.state.lease, app.state.latency = station, lease, []

    def _given_token(headers, cookies, query) -> Optional[str]:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return cookies.get(COOKIE) or query.get("token")

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token is not None and not token_ok(_given_token(request.headers, request.cookies,
                                                           request.query_params), token):
            return Response(status_code=401)
        return await call_next(request)

    @app.exception_handler(Sim2RealError)
    async def sim2real_error(request: Request, exc: Sim2RealError):
        status = 409 if isinstance(exc, (SafetyError, MotionStopped)) else 400
        return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=status)

    def controller(x_client_id: Annotated[Optional[str], Header()] = None) -> str:
        if not x_client_id or not lease.holds(x_client_id):
            holder = lease.holder()
            raise HTTPException(409, "another tab holds control; this one watches (take control when it is free)"
                                if holder else "take control first")
        lease.touch(x_client_id)
        return x_client_id

    async def _wait(fut, timeout: float = 600.0):
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)

    # -- page -----------------------------------------------------------------------------------
    page = APIRouter()

    @page.get("/", response_class=HTMLResponse)
    def index(request: Request):
        resp = HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))
        if token is not None:  # the page's later requests (images, scripts) carry the cookie
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    @page.get("/static/{name}")
    def static(name: str):
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise HTTPException(404)
        kind = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "application/octet-stream")
        return Response(path.read_bytes(), media_type=kind, headers={"Cache-Control": "no-cache"})

    # -- live view ------------------------------------------------------------------------------
    live = APIRouter(prefix="/api")

    @live.get("/state")
    def get_state(x_client_id: Annotated[Optional[str], Header()] = None):
        return _with_control(station.state(), x_client_id)

    @live.get("/frame/{seq}/{kind}")
    def frame(seq: int, kind: str):
        data = station.image(seq, kind)
        if data is None:
            raise HTTPException(404, f"frame {seq} {kind} is gone")
        media = "image/jpeg" if kind == "camera" else "image/png"
        return Response(data, media_type=media, headers={"Cache-Control": "max-age=60"})

    @live.post("/latency")
    def latency(body: Latency):
        """The page reports when it displayed a frame (bench/console.py reads app.state.latency)."""
        app.state.latency.append((body.seq, body.t_display))
        del app.state.latency[:-1000]
        return {"ok": True}

    def _with_control(state: dict, client: Optional[str]) -> dict:
        holder = lease.holder()
        state["control"] = {"held": holder is not None, "you": client is not None and holder == client}
        return state

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        if token is not None and not token_ok(_given_token(websocket.headers, websocket.cookies,
                                                           websocket.query_params), token):
            await websocket.close(code=4401)
            return
        await websocket.accept()
        client = websocket.query_params.get("client")
        sent = -1
        try:
            while True:
                if client:
                    lease.touch(client)
                v = station.version
                if v != sent:
                    sent = v
                    await websocket.send_text(json.dumps(_with_control(station.state(), client)))
                await asyncio.sleep(WS_POLL_S)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:  # a closed tab frees control within seconds; a reloading tab keeps it
            if client:
                lease.lapse_soon(client)
                station.bump()

    # -- control and stop -----------------------------------------------------------------------
    control = APIRouter(prefix="/api")

    @control.post("/control/acquire")
    def acquire(body: Client):
        if not lease.acquire(body.client):
            raise HTTPException(409, "another tab holds control; it lapses 10 s after that tab closes")
        station.bump()
        return {"control": True}

    @control.post("/control/release")
    def release(body: Client):
        lease.release(body.client)
        station.bump()
        return {"control": False}

    @control.post("/stop")
    def stop(after_reply: BackgroundTasks):
        """Any authorised tab may stop the arm (no lease needed: stopping is always allowed)."""
        station.stop()
        after_reply.add_task(station.after_stop_reply)  # Starlette runs it once the reply is sent
        return {"stopped": True}

    # -- demonstrations -------------------------------------------------------------------------
    demo = APIRouter(prefix="/api/demo", dependencies=[Depends(controller)])

    @demo.post("/click")
    def click(body: Click):
        return station.click(body.x, body.y, body.width, body.height, body.seq)

    @demo.post("/rotate")
    def rotate(body: Rotate):
        drag = None if body.drag_to is None else (body.drag_to.x, body.drag_to.y, body.drag_to.width,
                                                  body.drag_to.height)
        return station.rotate(delta=body.delta, bin=body.bin, drag_to=drag)

    @demo.post("/clear")
    def clear():
        station.clear_draft()
        return {"ok": True}

    @demo.post("/goal")
    def goal(body: Goal):
        station.set_goal(body.goal)
        return {"goal": station.episode.goal}

    @demo.post("/confirm")
    async def confirm():
        return await _wait(station.confirm())

    @demo.post("/undo")
    def undo():
        return station.undo()

    @demo.post("/done")
    async def done():
        return await _wait(station.done())

    @demo.post("/discard")
    async def discard():
        return await _wait(station.discard())

    @demo.post("/scene")
    async def scene(body: Scene):
        return await _wait(station.new_scene(body.seed))

    @demo.post("/suggest")
    async def suggest():
        return await _wait(station.suggest())

    # -- trials ---------------------------------------------------------------------------------
    trials = APIRouter(prefix="/api/trial", dependencies=[Depends(controller)])

    @trials.post("/answer")
    def answer(body: Answer):
        if station.operator is None:
            raise InputError("no campaign is running in this console (start it with --campaign/--out)")
        result = station.operator.answer(body.key, reset=body.reset, outcome=body.outcome,
                                         category=body.category or None, note=body.note)
        station.bump()
        return result

    @trials.post("/stop-campaign")
    def stop_campaign():
        if station.operator is None:
            raise InputError("no campaign is running in this console")
        station.operator.stop()
        return {"stopping": True}

    routers = [page, live, control, trials]
    if hasattr(station, "click"):  # a station with its own camera and robot (not a `sim2real run` operator)
        routers.append(demo)
    for router in routers:
        app.include_router(router)
    return app
