"""A TCP proxy on loopback that does to a link what a disaster does: delays, stalls, cuts
and drops connections at random points, from a fixed seed so a failure can be replayed.

    proxy = FaultProxy(target_port, seed=7).start()
    proxy.chaos = True    # faults from now on (each new connection draws its fate)
    proxy.chaos = False   # healed: new connections pass untouched
    proxy.cut_all()       # cut every open connection now
    proxy.thin = (6000, 14000)  # a thin link: each connection cut after 6-14 KB (both ways)
    proxy.cut_points = [7000, 9000]  # or exactly these, connection after connection
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 16384
MAX_DELAY = 0.2
MAX_STALL = 3.0


@dataclass
class Fate:
    kind: str  # "pass", "delay", "stall", "cut", "drop", "thin" (cut after exactly N bytes)
    after_bytes: int = 0
    delay: float = 0.0
    stall: float = 0.0


@dataclass
class FaultProxy:
    target_port: int
    seed: int = 0
    chaos: bool = False
    port: int = 0
    log: list[str] = field(default_factory=list)
    # A thin link, whatever ``chaos`` says: every connection carries exactly N bytes (both
    # directions together), N drawn from ``thin`` or taken in turn from ``cut_points``.
    thin: tuple[int, int] | None = None
    cut_points: list[int] | None = None
    moved: list[int] = field(default_factory=list)  # bytes each ended connection carried

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]

    def start(self) -> FaultProxy:
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.cut_all()
        self._server.close()

    def cut_all(self) -> None:
        """Cut every connection: shut down, which wakes its pump, and the pump closes it.
        Closed from here, a descriptor freed under the pump could be another file's by the
        time the pump writes to it."""
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def _fate(self) -> Fate:
        with self._lock:
            if self.cut_points or self.thin:
                if self.cut_points:
                    after = self.cut_points[len(self.log) % len(self.cut_points)]
                else:
                    after = self._random.randint(*(self.thin or (0, 0)))
                self.log.append(f"thin after={after}")
                return Fate("thin", after_bytes=after)
            if not self.chaos:
                return Fate("pass")
            r = self._random
            kind = r.choice(["pass", "delay", "stall", "cut", "cut", "drop"])
            fate = Fate(kind, after_bytes=r.randint(0, 60_000), delay=r.uniform(0, MAX_DELAY),
                        stall=r.uniform(0.5, MAX_STALL))
            self.log.append(f"{fate.kind} after={fate.after_bytes}")
            return fate

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            fate = self._fate()
            if fate.kind == "drop":
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, fate),
                             daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, fate: Fate) -> None:
        moved = 0
        stalled = False
        deadline = time.monotonic() + 600  # no connection lives longer than a test
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for source in readable:
                    data = source.recv(CHUNK)
                    if not data:
                        return
                    if fate.kind == "thin" and moved + len(data) >= fate.after_bytes:
                        (b if source is a else a).sendall(data[:fate.after_bytes - moved])
                        moved = fate.after_bytes
                        return
                    moved += len(data)
                    if fate.kind in ("cut", "stall") and moved > fate.after_bytes:
                        if fate.kind == "cut":
                            return
                        if not stalled:
                            stalled = True
                            time.sleep(fate.stall)  # the link hangs, then comes back
                    if fate.kind == "delay":
                        time.sleep(fate.delay)
                    (b if source is a else a).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self.moved.append(moved)
                self._open = [s for s in self._open if s not in (a, b)]
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
