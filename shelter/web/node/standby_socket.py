"""The /standby websocket of a node: its standby at the shelter enrolls here (a one-time
code from `shelter standby-code`) and follows the node's event log (sync/standby_serve.py).
With `shelter node --sync-standby`, every request that wrote is answered only once the
standby stored it, or when the node goes on alone (sync/standby_link.py); its answer says
which in the header ``X-Shelter-Standby`` (``stored`` or ``alone``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from shelter.domain.accounts import audit
from shelter.web.base import node, sock, websocket_view
from sync import protocol, standby, standby_link
from sync.standby_serve import Session

bp = Blueprint("standby_socket", __name__)
log = logging.getLogger("shelter.standby")
HELLO_SECONDS = 5.0
# Sockets that have not said who they are yet hold a server thread each: at most these at
# once (anyone on the Wi-Fi may open one), so the desks always have threads.
GREETING = threading.BoundedSemaphore(4)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def wait_seconds() -> float | None:
    """How long a write waits for the standby: None when the node does not wait."""
    value = current_app.config.get("STANDBY_WAIT_SECONDS")
    return None if value is None else float(value)


def link() -> standby_link.Link:
    return standby_link.link_for(node().data_dir,
                                 wait_seconds() or standby_link.DEFAULT_WAIT)


@sock.route("/standby", bp=bp)
@websocket_view
def standby_socket(ws: Any) -> None:
    """One standby's session: enroll, or hello and then the stream."""
    if current_app.config.get("HTTPS_PORT"):  # the plain-HTTP server of phones
        ws.send(standby.error("https_only", "a standby connects to the node over HTTPS"))
        return
    if not GREETING.acquire(blocking=False):
        ws.send(standby.error("busy", "too many connections are starting at once; try again"))
        return
    try:
        first = standby.decode(ws.receive(timeout=HELLO_SECONDS) or "")
    except protocol.ProtocolError as refused:
        ws.send(standby.error(refused.code, refused.message))
        return
    finally:
        GREETING.release()
    if first.get("protocol") != standby.PROTOCOL_VERSION:
        ws.send(standby.error("protocol_version", f"this node speaks the standby protocol "
                              f"{standby.PROTOCOL_VERSION}; update the older machine"))
        return
    ctx = node()
    if first["type"] == "standby_enroll":
        try:
            credential = standby.enroll(ctx.store, first["code"], first["standby_id"],
                                        first["proof"])
        except standby.StandbyError as refused:
            log.warning("standby enrollment refused: %s", refused.code)
            _audit("standby_refused", first["standby_id"], f"enroll:{refused.code}")
            ws.send(standby.error(refused.code, refused.message))
            return
        log.warning("enrolled standby %s", first["standby_id"][:40])
        _audit("standby_enrolled", first["standby_id"])
        ws.send(protocol.encode({"type": "standby_enrolled", "credential": credential,
                                 "node_id": ctx.node_id, "shelter_id": ctx.shelter_id}))
        return
    if first["type"] != "standby_hello":
        ws.send(standby.error("unexpected", "the first message must be standby_hello or "
                                            "standby_enroll"))
        return
    state = standby.credential_state(ctx.db, first["standby_id"], first["credential"])
    if state != "ok":
        _audit("standby_refused", first["standby_id"], f"hello:{state}")
        ws.send(standby.error("replaced" if state == "revoked" else "unauthorized",
                              "a newer standby replaced this one: enroll it again with a new "
                              "code" if state == "revoked"
                              else "unknown or wrong standby credential"))
        return
    the_link = link()
    the_link.on_change = ctx.watcher.poke  # the desks' live screens say so at once
    Session(ws, ctx.data_dir, the_link).serve(first)


def _audit(action: str, standby_id: str, detail: str = "") -> None:
    """Enrollments and refusals, in the node's audit log (a manager's page), with the
    address that asked: a run of refusals is someone trying."""
    audit(node().store, f"standby@{request.remote_addr}", action, standby_id[:40], detail)


@bp.before_app_request
def _note_writes() -> None:
    if request.method in WRITES and wait_seconds() is not None:
        g.standby_changes = node().db.conn.total_changes


@bp.after_app_request
def _wait_for_the_standby(response: Response) -> Response:
    """A request that wrote is answered once the standby stored it, or without it when
    the node is alone (it waits at most --standby-wait seconds)."""
    before = g.pop("standby_changes", None)
    seconds = wait_seconds()
    if before is None or seconds is None:
        return response
    db = node().db
    if db.conn.total_changes == before:
        return response  # it wrote nothing
    newest = standby.top(db)
    stored = standby_link.wait_stored(node().data_dir, newest, seconds)
    response.headers["X-Shelter-Standby"] = "stored" if stored else "alone"
    return response

