"""A standby's session at the node, after its hello: the node streams its event log from
where the standby stands, the standby acknowledges each frame once it has committed it.

Two threads: this one sends (it notices a new commit at once when it was made in this
process, ``Link.poke``, and within ``POLL_SECONDS`` when another process made it, by
``PRAGMA data_version``), and a reader takes the acknowledgements as they come, so that a
waiting request is answered the moment its rows are stored. Up to ``WINDOW`` frames may
be unacknowledged, so that new rows go out while the standby commits the previous ones.
A standby silent for ``SILENT_SECONDS`` (it answers the node's ping every second) is gone.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from simple_websocket import ConnectionClosed

from shelter.core import db as dbmod
from sync import protocol, standby
from sync.standby_link import Link

log = logging.getLogger("shelter.standby")
WINDOW = 8
POLL_SECONDS = 0.005
PING_SECONDS = 1.0
SILENT_SECONDS = 5.0


class Session:
    def __init__(self, ws: Any, data_dir: Path, link: Link) -> None:
        self.ws, self.data_dir, self.link = ws, data_dir, link
        self.id = secrets.token_hex(8)
        self.sent = 0  # the last row sent
        self.heard = time.monotonic()
        self._send_lock = threading.Lock()

    def send(self, data: str | bytes) -> None:
        with self._send_lock:  # the reader answers too: one frame at a time on the socket
            self.ws.send(data)

    def serve(self, hello: dict[str, Any]) -> None:
        try:  # small frames go at once (Nagle would hold each until the last is ACKed)
            self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass
        db = dbmod.connect(self.data_dir / "shelter.db", migrate=False)
        try:
            stream = standby.Stream(db, self.data_dir)
            self.sent = standby.start_from(db, hello["cursor"], hello["cursor_event"])
            identity = stream.state(progress=False)
            stream.changed(identity)
            self.send(protocol.encode({
                "type": "standby_welcome", "protocol": standby.PROTOCOL_VERSION,
                "node_id": identity["meta"].get("node_id", ""),
                "shelter_id": identity["meta"].get("shelter_id", ""),
                "from": self.sent, "state": identity}))
            self.link.begin(self.id, self.sent, standby.top(db))
            reader = threading.Thread(target=self._read, name="standby-acks", daemon=True)
            reader.start()
            try:
                self._stream(db, stream)
            finally:
                self.link.end(self.id)
                reader.join(2.0)
        finally:
            db.conn.close()

    def _stream(self, db: Any, stream: standby.Stream) -> None:
        link = self.link
        conn = db.conn
        version = None
        pokes = -1
        in_flight: deque[int] = deque()  # the last row of each unacknowledged frame
        last_send = time.monotonic()
        dirty = True  # something may have changed: read again
        while self.ws.connected and link.session == self.id:
            now_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if now_version != version or link.pokes != pokes:
                version, pokes, dirty = now_version, link.pokes, True
                link.saw(self.id, standby.top(db))
            while in_flight and in_flight[0] <= link.acked:
                in_flight.popleft()
            if dirty and len(in_flight) < WINDOW:
                frame, last = stream.next_frame(self.sent)
                if frame is not None:
                    self.sent = last  # first: its ack may come back before send returns
                    self.send(frame)
                    last_send = time.monotonic()
                    in_flight.append(last)
                    continue  # more may be waiting
                dirty = False
            now = time.monotonic()
            if now - last_send >= PING_SECONDS:
                self.send(protocol.encode({"type": "ping", "top": link.top}))
                last_send = now
            if now - self.heard > SILENT_SECONDS:
                log.warning("standby silent for %.0f s: session closed", SILENT_SECONDS)
                return
            link.check(self.id)
            with link.cond:
                if link.pokes == pokes:
                    link.cond.wait(POLL_SECONDS)

    def _read(self) -> None:
        """The standby's acknowledgements (and pongs); a bad frame is answered with the
        reason and the session goes on."""
        while self.ws.connected and self.link.session == self.id:
            try:
                frame = self.ws.receive(timeout=1.0)
            except ConnectionClosed:
                return
            self.link.check(self.id)  # also while the sender is stuck in a send
            if frame is None:
                if time.monotonic() - self.heard > SILENT_SECONDS:
                    self._cut()  # a standby that stopped reading: break the stuck send
                    return
                continue
            self.heard = time.monotonic()
            try:
                message = standby.decode(frame)
            except protocol.ProtocolError as refused:
                self._answer(standby.error(refused.code, refused.message))
                continue
            kind = message["type"]
            if kind == "standby_ack":
                if message["rowid"] > self.sent:
                    self._answer(standby.error("malformed", "an ack for rows not sent"))
                else:
                    self.link.ack(self.id, message["rowid"])
            elif kind == "ping":
                self._answer(protocol.encode({"type": "pong"}))
            elif kind == "error":  # the standby cannot go on (it says why)
                log.warning("the standby stopped: %s", str(message["code"])[:60])
            elif kind != "pong":
                self._answer(standby.error("unexpected", f"{kind} is not expected now"))

    def _cut(self) -> None:
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass

    def _answer(self, text: str) -> None:
        try:
            self.send(text)
        except (ConnectionClosed, OSError):
            pass
