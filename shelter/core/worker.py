"""Gunicorn's threaded worker, with the waiting for a request moved out of its threads.

Stock gthread hands each new connection to a pool thread, which does the TLS handshake and
reads the request with blocking reads; and it closes a finished connection by lingering on
it for up to 2 s in its main loop. So a client that sends nothing, half a handshake, half a
request or a byte every few seconds holds a thread for as long as it likes (48 of them
leave a node's desk waiting, 320 do it to HQ), and one that does not close after
`Connection: close` stops the whole worker for 2 s.

Here the main loop (gunicorn's poller) does that part without blocking, each connection
against a deadline: the TLS handshake and the request head within HEAD_SECONDS of the
connection (or of its next request arriving, when kept alive); a body of up to the app's
MAX_CONTENT_LENGTH within BODY_SECONDS of its head, plus its length at BODY_RATE. Only a
request that is whole in memory reaches a thread, which parses it with gunicorn's own
parser from the buffered bytes (handed to the parser's unreader, as gunicorn gives back
bytes it read ahead). A stalled connection then costs a file descriptor and a few
kilobytes, never a thread.

* A body over the limit is not buffered: its head goes to the app with the input ending
  there (the app answers 413 without reading it), and the poller reads the rest while it
  closes the connection, so the client still sees that answer.
* Websocket upgrades are GETs without a body: handed over after the head, they keep their
  thread and the real socket (environ['gunicorn.socket']) for their life, as before.
* Closing after an answer (RFC 9112 9.6: FIN, then read what the client still sends) is
  done by the poller too, and a request pipelined behind another goes through the poller
  again instead of straight to a thread.
* One client address holds at most PER_ADDRESS incomplete connections, and all of them
  together at most BUFFER_BUDGET bytes: past either, and when the worker is at
  --worker-connections, the oldest incomplete connection is closed to make room.

Selected by `--worker-class shelter.core.worker.GatedThreadWorker` (shelter/core/server.py).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import resource
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.errors import ConfigError
from gunicorn.workers.gthread import TConn, ThreadWorker

from shelter.core.framing import ENDED, HEAD_OVER, READY, WAIT, RequestScan

HEAD_SECONDS = 10.0  # TLS handshake and request head
BODY_SECONDS = 10.0  # the body, after its head: this, plus its length at BODY_RATE
BODY_RATE = 8 * 1024  # bytes a second: a very poor link (256 KiB in 42 s)
LINGER_SECONDS = 5.0  # reading what a client still sends after our answer and FIN
LINGER_BYTES = 4 * 1024 * 1024  # as much as the app reads of an oversize body (app.py)
STOP_SECONDS = 2.0  # what an incomplete request still gets when the worker stops
BODY_LIMIT = 256 * 1024  # when the app says no MAX_CONTENT_LENGTH
PER_ADDRESS = 64
BUFFER_BUDGET = 64 * 1024 * 1024
ACCEPT_BATCH = 64
RECV_SIZE = 65536

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                  b"Content-Length: 0\r\n\r\n")
_TOO_LARGE_JSON = b'{"error": {"code": "too_large", "message": "What was sent is too large."}}'
BODY_TOO_LARGE = (b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: "
                  + str(len(_TOO_LARGE_JSON)).encode() + b"\r\n\r\n" + _TOO_LARGE_JSON)
class _Source:
    """What gunicorn's parser reads from: the connection's socket, except that when the
    poller handed over a request whose input ends with what it buffered, it ends there."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ended = False

    def recv(self, size: int) -> bytes:
        return b"" if self.ended else self.sock.recv(size)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)


@dataclass(eq=False)
class _Gate:
    """A connection the poller holds: in its handshake, reading a request, or lingering."""
    conn: TConn
    seq: int
    address: str
    deadline: float
    stage: str  # "handshake", "request", "linger"
    scan: RequestScan
    buf: bytearray = field(default_factory=bytearray)
    watched: int = 0  # the poller events it is registered for
    continued: bool = False  # 100 Continue sent
    drained: int = 0
    done: bool = False


class GatedThreadWorker(ThreadWorker):  # gunicorn has no type hints: ThreadWorker is Any here
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gates: dict[int, _Gate] = {}  # oldest first
        self.gates_by_address: dict[str, dict[int, _Gate]] = {}
        self.deadlines: list[tuple[float, int]] = []  # a heap of (deadline, gate seq)
        self.buffered = 0
        self.body_limit = BODY_LIMIT
        self.ssl_context: ssl.SSLContext | None = None
        self._seq = itertools.count()
        self._stop_capped = False

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.http_protocols != ["h1"] or cfg.http2_cleartext != "off" or \
                getattr(cfg, "protocol", "http") != "http" or not hasattr(log, "closing"):
            raise ConfigError("shelter.worker: HTTP/1.1 only, --logger-class ServerLogger")

    def init_process(self) -> None:
        _raise_open_file_limit(self.worker_connections + 1024)
        if self.cfg.is_ssl:  # one context for every connection (gunicorn made one each)
            self.ssl_context = gunicorn_sock.ssl_context(self.cfg)
        super().init_process()  # loads the app, then run()

    def run(self) -> None:
        limit = getattr(self.wsgi, "config", {}).get("MAX_CONTENT_LENGTH")
        if isinstance(limit, int):
            self.body_limit = limit
        super().run()

    # --- connections in --------------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                client, address = listener.accept()
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    self._evict(self.gates)  # the oldest incomplete one makes room
                elif error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    raise
                return
            self.nr_conns += 1
            conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
            stage = "request"
            if self.ssl_context is not None:
                stage = "handshake"
                try:
                    conn.sock = self.ssl_context.wrap_socket(
                        client, server_side=True, do_handshake_on_connect=False,
                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
                except OSError:
                    self._close(conn)
                    continue
            self._admit(conn, b"", stage)
            if self.nr_conns >= self.worker_connections and not self._evict(self.gates):
                return

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection's next request is coming: read it here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._admit(conn, b"", "request")

    def finish_request(self, conn: TConn, fs: Any) -> None:
        try:
            keep = not fs.cancelled() and fs.result() is True
            if not keep:
                return self._linger(conn)
            # Bytes read ahead (a pipelined request) or still inside TLS: to the poller
            # again, not straight to a thread as gunicorn would.
            ahead = conn.parser.unreader.take_buffered()
            if ahead or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                conn.sock.setblocking(False)
                return self._admit(conn, ahead, "request")
        except Exception:  # noqa: BLE001 - a broken connection must not stop the loop
            self._close(conn)
            return
        super().finish_request(conn, fs)  # kept alive: gunicorn's poller, its timeout

    def handle_request(self, req: Any, conn: TConn) -> Any:
        if getattr(conn, "continued", False):
            req._expected_100_continue = False  # the poller has sent it already
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        source = getattr(conn.parser.unreader, "sock", None)
        if isinstance(source, _Source) and source.ended:
            return False  # the rest of its body is on the socket: close (the poller drains)
        return bool(super()._keepalive_after(conn, keepalive))

    def murder_pending(self) -> None:
        """Runs every loop: also close the poller's connections past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and not self._stop_capped:
            self._stop_capped = True
            for gate in self.gates.values():
                if gate.deadline > now + STOP_SECONDS:
                    gate.deadline = now + STOP_SECONDS
                    heapq.heappush(self.deadlines, (gate.deadline, gate.seq))
        while self.deadlines and self.deadlines[0][0] <= now:
            deadline, seq = heapq.heappop(self.deadlines)
            due = self.gates.get(seq)
            if due is not None and due.deadline == deadline:
                self._drop(due)

    # --- the gate --------------------------------------------------------------------------

    def _admit(self, conn: TConn, data: bytes, stage: str,
               seconds: float = HEAD_SECONDS) -> None:
        address = conn.client[0] if isinstance(conn.client, tuple) and conn.client else ""
        if len(self.gates_by_address.get(address, ())) >= PER_ADDRESS:
            self._evict(self.gates_by_address[address])
        gate = _Gate(conn, next(self._seq), address, self._deadline(seconds), stage,
                     RequestScan(self.body_limit), bytearray(data))
        self.gates[gate.seq] = gate
        self.gates_by_address.setdefault(address, {})[gate.seq] = gate
        heapq.heappush(self.deadlines, (gate.deadline, gate.seq))
        self.buffered += len(data)
        self._step(gate)

    def _step(self, gate: _Gate, _fileobj: Any = None) -> None:
        if gate.done:
            return  # pushed out while an event for it was already on its way
        try:
            if gate.stage == "linger":
                self._drain(gate)
            else:
                self._read(gate)
        except Exception as error:  # noqa: BLE001 - a broken connection must not stop the loop
            self.log.closing(gate.address, error)  # server.py: ServerLogger
            if not gate.done:
                self._drop(gate)

    def _read(self, gate: _Gate) -> None:
        sock = gate.conn.sock
        if gate.stage == "handshake":
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                return self._watch(gate, READ)
            except ssl.SSLWantWriteError:
                return self._watch(gate, WRITE)
            gate.stage = "request"
        verdict = self._scan(gate)
        while verdict == WAIT:
            if gate.scan.expects_continue and not gate.continued:
                gate.continued = True
                if sock.send(CONTINUE) != len(CONTINUE):
                    raise OSError(errno.EAGAIN, "100 Continue not sent")
            try:
                data = sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return self._watch(gate, READ)
            except ssl.SSLWantWriteError:
                return self._watch(gate, WRITE)
            if not data:
                return self._drop(gate)  # the client went away before finishing
            gate.buf += data
            self.buffered += len(data)
            if self.buffered > BUFFER_BUDGET and self._over_budget(gate):
                return
            verdict = self._scan(gate)
        if verdict in (READY, ENDED):
            self._hand_over(gate, ended=verdict == ENDED)
        else:
            self._refuse(gate, HEAD_TOO_LARGE if verdict == HEAD_OVER else BODY_TOO_LARGE)

    def _scan(self, gate: _Gate) -> str:
        had_head = gate.scan.head_end is not None
        verdict = gate.scan.scan(gate.buf)
        if verdict == WAIT and not had_head and gate.scan.head_end is not None:
            # The head is in: now the body, with time for its length (chunked: the limit).
            length = gate.scan.body_length if gate.scan.body_length is not None \
                else self.body_limit
            gate.deadline = self._deadline(BODY_SECONDS + length / BODY_RATE)
            heapq.heappush(self.deadlines, (gate.deadline, gate.seq))
        return verdict

    def _deadline(self, seconds: float) -> float:
        return time.monotonic() + (seconds if self.alive else min(seconds, STOP_SECONDS))

    def _hand_over(self, gate: _Gate, ended: bool) -> None:
        """To a pool thread, which parses the buffered request as if it read it itself."""
        self._forget(gate)
        conn = gate.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, _Source(conn.sock), conn.client)
        conn.parser.unreader.sock.ended = ended
        conn.parser.unreader.unread(bytes(gate.buf))
        conn.initialized = conn.data_ready = True  # no handshake, no waiting in the thread
        # ENDED (the head only, the body refused as too large): no 100 Continue either, or
        # the client would upload the whole body for the app's 413.
        conn.continued = gate.continued or ended
        try:
            self.enqueue_req(conn)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            self._close(conn)

    def _refuse(self, gate: _Gate, answer: bytes) -> None:
        self._forget(gate)
        try:
            gate.conn.sock.send(answer)
        except OSError:
            pass
        self._linger(gate.conn)

    def _linger(self, conn: TConn) -> None:
        """Close after the answer without blocking anyone (RFC 9112 9.6): FIN, then read and
        drop what the client still sends until it closes, or for LINGER_SECONDS at most."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return self._close(conn)
        self._admit(conn, b"", "linger", LINGER_SECONDS)

    def _drain(self, gate: _Gate) -> None:
        while gate.drained <= LINGER_BYTES:
            try:
                data = gate.conn.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return self._watch(gate, READ)
            if not data:
                break
            gate.drained += len(data)
        self._drop(gate)

    def _watch(self, gate: _Gate, events: int) -> None:
        if gate.watched == events:
            return
        if gate.watched:
            self.poller.modify(gate.conn.sock, events, partial(self._step, gate))
        else:
            self.poller.register(gate.conn.sock, events, partial(self._step, gate))
        gate.watched = events

    def _forget(self, gate: _Gate) -> None:
        if gate.done:
            return
        gate.done = True
        del self.gates[gate.seq]
        peers = self.gates_by_address[gate.address]
        del peers[gate.seq]
        if not peers:
            del self.gates_by_address[gate.address]
        self.buffered -= len(gate.buf)
        if gate.watched:
            try:
                self.poller.unregister(gate.conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            gate.watched = 0

    def _drop(self, gate: _Gate) -> None:
        self._forget(gate)
        self._close(gate.conn)

    def _close(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()

    def _evict(self, gates: dict[int, _Gate]) -> bool:
        """Close the oldest of ``gates``; False when there is none."""
        for gate in gates.values():
            self._drop(gate)
            return True
        return False

    def _over_budget(self, current: _Gate) -> bool:
        """Push out the oldest until the buffers fit again; True if ``current`` went too."""
        while self.buffered > BUFFER_BUDGET and self.gates:
            oldest = next(iter(self.gates.values()))
            self._drop(oldest)
            if oldest is current:
                return True
        return False


def _raise_open_file_limit(wanted: int) -> None:
    """Every held connection is a descriptor: a soft limit of 1024 (common on laptops)
    would run out before --worker-connections does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError):
        pass
