"""The node's side of a websocket to HQ (or to the node a standby follows): opened with a
connect timeout, and closed without pulling the socket from under simple-websocket's
reader thread (``close_socket``)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from simple_websocket import Client, ConnectionClosed
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
    """End a websocket session; its socket is closed only once simple-websocket's reader
    thread is done with it.

    simple-websocket's ``Client.close`` sends the close frame and closes the socket at
    once, while the reader thread may still be inside the TLS connection. The descriptor
    it frees is soon another file's (a database another thread opens), and the TLS record
    the reader's side writes when it lets go of the connection then lands in that file:
    measured with a thread opening files meanwhile, 4 files of 300 sessions got 24 bytes of
    TLS appended. So only the close frame is sent here; the reader ends when the other side
    answers it, and closes the socket itself. If it has not ended after ``wait`` seconds,
    the connection is shut down under it (that wakes it, and frees no descriptor), and the
    socket is closed here only once the reader is gone.
    """
    reader: threading.Thread | None = getattr(ws, "thread", None)
    if reader is threading.current_thread():
        reader = None  # called by the reader itself: nothing to wait for
    try:
        if ws.connected:
            Base.close(ws)  # the close frame; the socket stays open
    except (ConnectionClosed, OSError):
        pass  # HQ closed it first
    if reader is not None:
        reader.join(wait)
        if reader.is_alive():
            try:
                socket.socket.shutdown(ws.sock, socket.SHUT_RDWR)
            except OSError:
                pass
            reader.join(wait)
        if reader.is_alive():
            return  # it closes the socket when it ends: never under it
    try:
        ws.sock.close()
    except OSError:
        pass
