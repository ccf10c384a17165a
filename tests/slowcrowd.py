"""Slow clients on loopback: connections that open and then stall the way a starving server
meets them (nothing sent, half a TLS ClientHello, all of it and no more, a finished
handshake and then nothing, half a request line or head, a body cut short, a byte every
few seconds, half a second request on a kept-alive connection, a `Connection: close`
request never read or closed, the start of a 10 MB body that never comes).

Every connection is driven without blocking (TLS through memory BIOs), so opening 300
takes the same bounded time whether the server keeps up or is already starved.

    crowd = SlowCrowd(port, tls=True, sources=["127.0.0.2", "127.0.0.3"])
    crowd.open(300, seconds=8)   # round-robin over the kinds
    crowd.trickle()              # one more byte on each trickling connection
    crowd.still_open()           # how many the server has not closed
    crowd.close()

Traffic goes only to 127.0.0.1 (sources are other loopback addresses, so that a server's
cap on connections per client address is not what the crowd runs into).
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"

HEAD_HALF = (b"GET /api/v1/headcount HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Accept: application/json\r\nX-Slow: ")
BODY_HALF = (b"POST /api/v1/scans HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n{" + b" " * 999)
SEND_ONLY = {
    "line_half": b"POST /api/v1/scans HT",
    "head_half": HEAD_HALF,
    "trickle": HEAD_HALF,
    "body_half": BODY_HALF,
    "close_unread": b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "oversize": (b"POST /api/v1/scans HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 10000000\r\n\r\n" + b" " * 1000),
}
FIRST_REQUEST = b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

PLAIN_KINDS = ("silent", "line_half", "head_half", "trickle", "body_half", "kept_alive_half",
               "close_unread", "oversize")
TLS_KINDS = ("silent", "hello_half", "hello_only", "handshake_only", "line_half", "head_half",
             "trickle", "body_half", "kept_alive_half", "close_unread", "oversize")


@dataclass(eq=False)
class Slow:
    kind: str
    sock: socket.socket
    tls: ssl.SSLObject | None = None
    incoming: ssl.MemoryBIO | None = None
    outgoing: ssl.MemoryBIO | None = None
    stage: str = "connect"  # connect, handshake, response, stalled, gone
    out: bytearray = field(default_factory=bytearray)
    got: bytearray = field(default_factory=bytearray)
    watched: int = 0  # the selector events it is registered for


class SlowCrowd:
    def __init__(self, port: int, tls: bool, sources: list[str] | None = None,
                 kinds: tuple[str, ...] | None = None) -> None:
        self.port = port
        self.kinds = kinds or (TLS_KINDS if tls else PLAIN_KINDS)
        self.context: ssl.SSLContext | None = None
        if tls:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE  # stalled on purpose: nothing to trust
        self.sources = sources or [HOST]
        self.conns: list[Slow] = []
        self._selector = selectors.DefaultSelector()

    def __len__(self) -> int:
        return len(self.conns)

    # --- opening ---------------------------------------------------------------------------

    def open(self, count: int, seconds: float = 8.0) -> None:
        """Open ``count`` connections (kinds in turn) and drive each to its stall, for at most
        ``seconds``: one the server does not answer in time stays where it got to."""
        for n in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((self.sources[n % len(self.sources)], 0))
            sock.setblocking(False)
            conn = Slow(self.kinds[n % len(self.kinds)], sock)
            self.conns.append(conn)
            code = sock.connect_ex((HOST, self.port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, f"cannot connect to {HOST}:{self.port}")
            self._selector.register(sock, selectors.EVENT_WRITE, conn)
            conn.watched = selectors.EVENT_WRITE
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._selector.get_map():
            for key, events in self._selector.select(timeout=0.2):
                self._step(key.data, events)

    def _watch(self, conn: Slow) -> None:
        """Wait for what this connection needs next: to write what it holds, or to read."""
        if conn.stage == "gone" or (conn.stage == "stalled" and not conn.out):
            wanted = 0
        else:
            wanted = selectors.EVENT_WRITE if conn.out else selectors.EVENT_READ
        if wanted == conn.watched:
            return
        if not wanted:
            self._selector.unregister(conn.sock)
        elif conn.watched:
            self._selector.modify(conn.sock, wanted, conn)
        else:
            self._selector.register(conn.sock, wanted, conn)
        conn.watched = wanted

    def _step(self, conn: Slow, events: int) -> None:
        try:
            if conn.stage == "connect":
                if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    conn.stage = "gone"
                else:
                    self._connected(conn)
            elif events & selectors.EVENT_WRITE:
                self._flush(conn)
            elif events & selectors.EVENT_READ:
                data = conn.sock.recv(65536)
                if not data:
                    conn.stage = "gone"
                elif conn.tls and conn.incoming:
                    conn.incoming.write(data)
                    self._advance_tls(conn)
                else:
                    conn.got += data
                    self._read_response(conn)
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except OSError:
            conn.stage = "gone"
        self._watch(conn)

    def _connected(self, conn: Slow) -> None:
        if conn.kind == "silent":
            return self._stall(conn)
        if self.context is None:
            return self._send_script(conn)
        conn.incoming, conn.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn.tls = self.context.wrap_bio(conn.incoming, conn.outgoing, server_side=False)
        conn.stage = "handshake"
        try:
            conn.tls.do_handshake()
        except ssl.SSLWantReadError:
            hello = conn.outgoing.read()
            if conn.kind in ("hello_half", "hello_only"):
                conn.out += hello[:len(hello) // 2] if conn.kind == "hello_half" else hello
                self._flush(conn)
                return self._stall(conn)
            conn.out += hello
            self._flush(conn)

    def _advance_tls(self, conn: Slow) -> None:
        assert conn.tls and conn.outgoing
        if conn.stage == "handshake":
            try:
                conn.tls.do_handshake()
            except ssl.SSLWantReadError:
                conn.out += conn.outgoing.read()
                self._flush(conn)
                return
            conn.out += conn.outgoing.read()
            if conn.kind == "handshake_only":
                self._flush(conn)
                return self._stall(conn)
            return self._send_script(conn)
        try:
            while True:
                conn.got += conn.tls.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        self._read_response(conn)

    def _send_script(self, conn: Slow) -> None:
        if conn.kind == "kept_alive_half":
            conn.stage = "response"
            return self._send(conn, FIRST_REQUEST)
        self._send(conn, SEND_ONLY[conn.kind])
        self._stall(conn)

    def _read_response(self, conn: Slow) -> None:
        """A kept-alive connection sends half its second request once the first is answered."""
        if conn.stage != "response":
            return
        end = conn.got.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(conn.got[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(conn.got) >= end + 4 + length:
            self._send(conn, HEAD_HALF)
            self._stall(conn)

    def _send(self, conn: Slow, data: bytes) -> None:
        if conn.tls and conn.outgoing:
            conn.tls.write(data)
            conn.out += conn.outgoing.read()
        else:
            conn.out += data
        self._flush(conn)

    def _flush(self, conn: Slow) -> None:
        while conn.out:
            sent = conn.sock.send(conn.out)
            del conn.out[:sent]

    def _stall(self, conn: Slow) -> None:
        conn.stage = "stalled"

    # --- while stalled ---------------------------------------------------------------------

    def trickle(self) -> None:
        """One more byte of a header value on each trickling connection (never the end)."""
        for conn in self.conns:
            if conn.kind == "trickle" and conn.stage == "stalled":
                try:
                    self._send(conn, b"z")
                except BlockingIOError:
                    pass  # the server reads nothing: its buffers are full, the byte waits
                except OSError:
                    conn.stage = "gone"

    def stages(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for conn in self.conns:
            counts[conn.stage] = counts.get(conn.stage, 0) + 1
        return counts

    def closed_by_server(self, conn: Slow) -> bool:
        """Whether the server has closed (or reset) this connection."""
        if conn.sock.fileno() < 0:
            return True
        try:
            while True:
                data = conn.sock.recv(65536, socket.MSG_PEEK)
                if not data:
                    return True
                conn.sock.recv(len(data))  # an answer (close_unread): read it, look again
        except BlockingIOError:
            return False
        except OSError:
            return True

    def still_open(self, kinds: tuple[str, ...] | None = None) -> int:
        return sum(1 for conn in self.conns if (kinds is None or conn.kind in kinds)
                   and not self.closed_by_server(conn))

    def close(self) -> None:
        self._selector.close()
        for conn in self.conns:
            conn.sock.close()
        self.conns = []
