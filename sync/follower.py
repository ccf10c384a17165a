"""A standby at the shelter, the standby's side: enroll with the node's code, then follow
the node's event log row by row, whatever the LAN does: each frame is applied in one
transaction (rows stored with their ids, projected with the same projections, so a
promotion is instant) and acknowledged after its commit. sync/standby.py is the node's
side; sync/standby_dir.py the standby's data directory and its promotion.
"""

from __future__ import annotations

import random
import secrets
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simple_websocket import ConnectionClosed
from simple_websocket.errors import SimpleWebsocketError
from sqlite_utils import Database

from shelter.core import atrest, meta
from shelter.core import db as dbmod
from shelter.core.clock import HybridClock
from shelter.core.events import (
    EventStore,
    utc_now_iso,
)
from sync import hq_ca, protocol, standby
from sync.client import _transient, close_socket, open_socket
from sync.enrollment import EnrollmentError
from sync.standby_apply import CannotApply, Promoted, apply_frames
from sync.standby_dir import write_files

PRIMARY_CA_FILE = "primary-ca.crt"
CONNECT_TIMEOUT = 10.0
SILENT_SECONDS = 5.0  # the node pings every second: silent this long, it is gone
MAX_BACKOFF = 5.0
GROUP_FRAMES = 16  # frames already received, stored in one transaction


def _context(data_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(data_dir / PRIMARY_CA_FILE))


def _connect(data_dir: Path, primary_url: str) -> Any:
    ws = open_socket(f"wss://{urlsplit(primary_url).netloc}/standby", _context(data_dir),
                     8 * 1024 * 1024)
    # Blocking from now on (silence is told by ws.receive's own timeout). With a timeout the
    # socket is non-blocking underneath, and OpenSSL, reading in simple-websocket's thread
    # while this one writes an ack, now and then took a retry for the end of the stream:
    # the session dropped, every few thousand frames (seen with strace).
    ws.sock.settimeout(None)
    # Each ack is a few bytes: sent at once, not held back until the node acknowledges the
    # last one (Nagle), which with delayed ACKs added ~10 ms to every wait for the standby.
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ws


def _expect(ws: Any, wanted: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = ws.receive(timeout=left)
        if frame is None:
            break
        message = standby.decode(frame)
        if message["type"] == "error":
            raise standby.StandbyError(str(message["code"]), str(message["message"]))
        if message["type"] == wanted:
            return message
    raise TimeoutError(f"no {wanted} from the node within {timeout:.0f} s")


def enroll(db: Database, data_dir: Path, primary_url: str, code: str, attempts: int = 5,
           first_wait: float = 1.0) -> dict[str, Any]:
    """Redeem a standby code at the node: check the node's CA against the code's pin, keep
    it, and store the credential. Failures on the way are tried again (``attempts`` in all,
    the wait doubling); the node's answer (a used or unknown code) ends it at once."""
    secret, pin = standby.parse_code(code)
    proof = meta.once(db, "standby_proof", lambda: secrets.token_urlsafe(32))
    for attempt in range(attempts):
        try:
            return _enroll_once(db, data_dir, primary_url, secret, pin, proof)
        except (OSError, SimpleWebsocketError, standby.StandbyError) as error:
            busy = isinstance(error, standby.StandbyError) and error.code == "busy"
            if attempt == attempts - 1 or not (busy or _transient(error)):
                raise
        time.sleep(first_wait * 2 ** attempt * random.uniform(0.75, 1.25))
    raise AssertionError("unreachable")


def _enroll_once(db: Database, data_dir: Path, primary_url: str, secret: str, pin: str,
                 proof: str) -> dict[str, Any]:
    # The node's CA, read as a stranger's answer (capped, by a deadline), as HQ's is.
    try:
        pem = hq_ca.fetch(primary_url, pin, time.monotonic() + 2 * CONNECT_TIMEOUT,
                          CONNECT_TIMEOUT)
    except EnrollmentError:
        raise standby.StandbyError("wrong_node", f"the node at {primary_url} is not the one "
                                                 "that made this code (its certificate does "
                                                 "not match)") from None
    atrest.write_private(data_dir / PRIMARY_CA_FILE, pem.encode())
    ws = _connect(data_dir, primary_url)
    try:
        ws.send(protocol.encode({"type": "standby_enroll", "protocol": standby.PROTOCOL_VERSION,
                                 "standby_id": meta.get(db, "standby_id"), "code": secret,
                                 "proof": proof}))
        answer_message = _expect(ws, "standby_enrolled", CONNECT_TIMEOUT)
    finally:
        close_socket(ws)
    known = meta.get(db, "shelter_id")
    if known and known != answer_message["shelter_id"]:
        raise standby.StandbyError("wrong_shelter", f"this standby holds shelter {known}'s "
                                   "records; follow another shelter's node from a new "
                                   "directory")
    with writer(db).write():
        meta.put(db, "standby_credential", answer_message["credential"])
        meta.put(db, "standby_primary", primary_url)
        meta.put(db, "standby_state", "enrolled")
    return answer_message


def writer(db: Database) -> EventStore:
    """The standby's writer: the event store's lock and transactions, its projections."""
    return EventStore(db, "STANDBY", HybridClock("STANDBY"))


def status(store: EventStore, state: str) -> None:
    try:
        meta.commit(store, {"standby_state": state, "standby_state_at": utc_now_iso()})
    except Exception:  # noqa: BLE001, S110 - status is best effort, never fatal
        pass


class Follower(threading.Thread):
    """Runs in the `shelter standby` process beside its status page."""

    def __init__(self, data_dir: Path, stop: threading.Event) -> None:
        super().__init__(name="standby-follower", daemon=True)
        self.data_dir = Path(data_dir)
        self.stop_event = stop
        self.received = threading.Event()  # the node's state arrived (first start waits)
        self.applied = False  # this session stored something: reconnect soon

    def run(self) -> None:
        db = dbmod.connect(self.data_dir / "shelter.db", migrate=False)
        store = writer(db)
        delay = 0.5
        while not self.stop_event.is_set():
            self.applied = False
            try:
                self.session(store)
            except Promoted:
                return
            except standby.StandbyError as refused:
                if refused.code == "busy":  # the node at its limit: like a link down
                    status(store, "offline: busy")
                else:
                    status(store, f"refused: {refused.message}")
                    delay = MAX_BACKOFF
            except CannotApply as stuck:
                status(store, f"stopped: {stuck}")
                delay = MAX_BACKOFF
            except (OSError, ConnectionError, ConnectionClosed, TimeoutError,
                    SimpleWebsocketError, protocol.ProtocolError) as error:
                status(store, f"offline: {type(error).__name__}")
            except Exception as error:  # noqa: BLE001 - the thread must outlive any bug
                status(store, f"error: {type(error).__name__}")
            if self.applied:
                delay = 0.5
            self.stop_event.wait(delay * random.uniform(1.0, 1.3))
            delay = min(delay * 2, MAX_BACKOFF)

    def session(self, store: EventStore) -> None:
        """One connection to the node, until it ends (an exception says how)."""
        db = store.db
        if meta.get(db, "role") != "standby":
            raise Promoted
        primary, credential = meta.get(db, "standby_primary"), meta.get(db, "standby_credential")
        if not primary or not credential:
            raise standby.StandbyError("not_enrolled", "this standby is not enrolled yet")
        ws = _connect(self.data_dir, primary)
        try:
            ws.send(protocol.encode({
                "type": "standby_hello", "protocol": standby.PROTOCOL_VERSION,
                "standby_id": meta.get(db, "standby_id"), "credential": credential,
                "cursor": int(meta.get(db, "standby_cursor") or 0),
                "cursor_event": meta.get(db, "standby_cursor_event") or ""}))
            welcome = _expect(ws, "standby_welcome", CONNECT_TIMEOUT)
            known = meta.get(db, "shelter_id")
            if known and known != welcome["shelter_id"]:
                raise standby.StandbyError("wrong_shelter", f"the node at {primary} is shelter "
                                           f"{welcome['shelter_id']}'s; this standby holds "
                                           f"shelter {known}'s records")
            files = apply_frames(store, [{"rows": [], "top": 0, "state": welcome["state"]}],
                                 cursor=welcome["from"], rewind=True)
            write_files(self.data_dir, files)
            self.received.set()
            status(store, "following")
            while not self.stop_event.is_set():
                frame = ws.receive(timeout=SILENT_SECONDS)
                if frame is None:
                    raise TimeoutError("the node has been silent")
                frames = [frame]  # and those that came meanwhile: one commit for them all
                while len(frames) < GROUP_FRAMES and (more := ws.receive(timeout=0)):
                    frames.append(more)
                messages = [standby.decode(f) for f in frames]
                rows = [m for m in messages if m["type"] == "rows"]
                if rows:
                    write_files(self.data_dir, apply_frames(store, rows))
                    last = [m["rows"][-1]["rowid"] for m in rows if m["rows"]]
                    if last:
                        self.applied = True
                        ws.send(protocol.encode({"type": "standby_ack", "rowid": last[-1]}))
                for message in messages:
                    if message["type"] == "ping":
                        seen(store, message.get("top"))
                        ws.send(protocol.encode({"type": "pong"}))
                    elif message["type"] == "error":
                        raise standby.StandbyError(str(message["code"]),
                                                   str(message["message"]))
        except CannotApply as stuck:
            try:
                ws.send(standby.error("cannot_apply", str(stuck)[:200]))
            except (ConnectionClosed, OSError):
                pass
            raise
        finally:
            _end(ws)


def _end(ws: Any) -> None:
    """Close the session; a node gone without a word (its power cut) never answers the
    close, and its socket is blocking: shut it, so simple-websocket's reader ends too."""
    close_socket(ws, wait=1.0)
    reader = getattr(ws, "thread", None)
    if reader is not None and reader.is_alive():
        try:
            ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        reader.join(1.0)


def seen(store: EventStore, top: Any) -> None:
    """The node was heard from (a ping): how far its log goes, written at most once a
    second (the status page reads it)."""
    db = store.db
    last = meta.get(db, "standby_last_seen_at") or ""
    now = utc_now_iso()
    if now[:19] != last[:19] and type(top) is int:
        meta.commit(store, {"standby_last_seen_at": now, "standby_top": str(top)})
