"""The node's side of a websocket to HQ (or to the node a standby follows): opened with a
connect timeout, and closed without pulling the socket from under simple-websocket's
reader thread (``close_socket``)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from simple_websocket import Client
from simple_websocket.ws import Base

CONNECT_TIMEOUT = 15.0


def sync_url(hq_url: str) -> str:
    parts = urlsplit(hq_url)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return f"{scheme}://{parts.netloc}/sync"


def open_socket(url: str, context: ssl.SSLContext | None, max_size: int) -> Any:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(CONNECT_TIMEOUT)  # simple-websocket has no connect timeout
    try:
        return Client.connect(url, ssl_context=context, max_message_size=max_size)
    finally:
        socket.setdefaulttimeout(previous)


def close_socket(ws: Any, wait: float = 5.0) -> None:
    """End a websocket session of this side's (a ``Client``'s); its socket is closed only
    once simple-websocket's reader thread is done with it (``finish_session``).

    simple-websocket's ``Client.close`` sends the close frame and closes the socket at
    once, while the reader thread may still be inside the TLS connection. The descriptor
    it frees is soon another file's (a database another thread opens), and the TLS record
    the reader's side writes when it lets go of the connection then lands in that file:
    measured with a thread opening files meanwhile, 4 files of 300 sessions got 24 bytes of
    TLS appended.
    """
    if finish_session(ws, wait):
        try:
            ws.sock.close()
        except OSError:
            pass
    # else: the reader closes the socket when it ends, never anyone under it


def finish_session(ws: Any, wait: float) -> bool:
    """Send the close frame (the socket left open) and wait for the reader thread, which
    ends when the other side answers it and closes the socket itself; one that has not
    ended after ``wait`` seconds is woken by shutting the connection down under it, which
    frees no descriptor. Whether the reader is gone. Both sides' sessions end this way:
    a server's socket is then closed by gunicorn (shelter/web/base.py)."""
    reader: threading.Thread | None = getattr(ws, "thread", None)
    try:
        if ws.connected:
            Base.close(ws)
    except Exception:  # noqa: BLE001, S110 - the other side closed it first
        pass
    if reader is None or reader is threading.current_thread():
        return True  # called by the reader itself: nothing to wait for
    reader.join(wait)
    if reader.is_alive():
        try:
            socket.socket.shutdown(ws.sock, socket.SHUT_RDWR)
        except OSError:
            pass
        reader.join(wait)
    return not reader.is_alive()
