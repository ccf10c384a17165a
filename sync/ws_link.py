"""Websockets, both sides: the node's to HQ (or to the node a standby follows), opened with
a connect timeout (``open_socket``) and closed without pulling the socket from under
simple-websocket's reader thread (``close_socket``); and every socket's reader thread
(``ReaderThread``), which never frees the socket's descriptor while another thread may still
write to it."""

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
        return Client.connect(url, ssl_context=context, max_message_size=max_size,
                              thread_class=ReaderThread)
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
    if isinstance(reader, ReaderThread):
        return reader.give_up()
    return not reader.is_alive()


class ReaderThread(threading.Thread):
    """simple-websocket's reader thread (its ``thread_class``, on both sides) that leaves
    the socket open when it ends: whoever ends the session closes it, after this thread
    (``close_socket``; gunicorn, for a server's socket, once the view has returned).

    The stock reader closes the socket as it ends, which it does as soon as the other side
    closes: HQ refusing a hello, a node dropping, a new session closing an old one. The
    thread that owns the session may be sending at that very moment, and OpenSSL writes by
    descriptor number: a number freed under it is soon another file's (a database another
    thread opens), and the TLS record lands there. Measured: a client's close frame appended
    to 1 of 50 files another thread kept opening, in 300 sessions HQ ended first, with two
    test workers loading the machine.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws = getattr(kwargs.get("target"), "__self__", None)  # Base(target=self._thread)
        self._lock = threading.Lock()
        self._abandoned = False  # the session's owner gave up waiting: this one closes
        self._left_open = False  # ended, its socket left for the owner to close

    def run(self) -> None:
        sock = getattr(self._ws, "sock", None)
        if sock is not None:
            sock.__class__ = _held(type(sock))
        super().run()

    def closing(self) -> bool:
        """The reader's own close of the socket, as it ends: whether to really close it."""
        with self._lock:
            self._left_open = not self._abandoned
            return self._abandoned

    def give_up(self) -> bool:
        """The owner stops waiting for this thread; whether it has ended (the owner then
        closes the socket). One still running closes the socket itself when it ends."""
        with self._lock:
            if self._left_open or not self.is_alive():
                return True
            self._abandoned = True
            return False


_HELD: dict[type[socket.socket], type] = {}


def _held(kind: type[socket.socket]) -> type:
    """``kind`` of socket whose ``close`` by its reader thread leaves it open (same layout:
    the class of a socket already made can be swapped for it)."""
    if getattr(kind, "_held_by_reader", False):
        return kind

    def close(self: Any) -> None:
        reader = threading.current_thread()
        if isinstance(reader, ReaderThread) and not reader.closing():
            return
        kind.close(self)

    if kind not in _HELD:
        _HELD[kind] = type(f"Held{kind.__name__}", (kind,),
                           {"__slots__": (), "close": close, "_held_by_reader": True})
    return _HELD[kind]
