"""Running a node under gunicorn: HTTPS for staff and tablets, optionally plain HTTP for
evacuees' own phones (registration pages only), both on the same database.

Gunicorn's threaded worker serves many tablets at once and keeps websocket connections
(flask-sock) each on a thread of their own; our subclass of it (shelter/core/worker.py) reads
each request whole, without blocking, before a thread sees it, so slow or stalled clients
hold no thread. TLS is all-or-nothing per gunicorn master, so each listener is its own
master process; the `shelter node` process supervises them, restarts one that dies, and
takes them down with it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunicorn import glogging

# Threads run the app and hold websockets; a connection only reaches one with its request
# whole (WORKER_CLASS), so these count busy requests and open websockets, not clients.
THREADS = 48
# HQ: every connected shelter node holds one thread while its sync session is open.
HQ_THREADS = 320
WORKER_CLASS = "shelter.core.worker.GatedThreadWorker"
LOGGER_CLASS = "shelter.core.server.ServerLogger"


# The alerts a browser sends when it does not trust the server's certificate (the node's CA
# not installed on that tablet yet): every connection it opens then fails the same way.
_DISTRUST = ("CERTIFICATE_UNKNOWN", "UNKNOWN_CA", "BAD_CERTIFICATE")
_INVALID_TLS = re.compile(r"Invalid request from ip=(\S+): \[SSL: (\w+)\]")
UNTRUSTED_KEPT = 4096  # addresses remembered (the oldest forgotten first)


class UntrustedClients(logging.Filter):
    """One line per client address that does not trust this server's certificate, instead
    of one per connection (a tablet without the CA retries all day). The worker asks it
    about each failed handshake (``distrusts``); on gunicorn's error log it also turns the
    per-connection "Invalid request from ip=...: [SSL: ...]" warnings into that line."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self.log = log
        self.seen: dict[str, None] = {}
        self.lock = threading.Lock()

    def distrusts(self, address: str, error: BaseException) -> bool:
        """Whether ``error`` is a client refusing our certificate (said the first time)."""
        reason = str(getattr(error, "reason", "") or "")
        if not isinstance(error, ssl.SSLError) or not any(k in reason for k in _DISTRUST):
            return False
        self.say(address)
        return True

    def say(self, address: str) -> None:
        with self.lock:
            if address in self.seen:
                return
            if len(self.seen) >= UNTRUSTED_KEPT:
                self.seen.pop(next(iter(self.seen)))
            self.seen[address] = None
        self.log.warning("%s does not trust this server's certificate: install its CA on "
                         "that device (/trust); its connections that fail so are not logged "
                         "again", address or "a client")

    def filter(self, record: logging.LogRecord) -> bool:
        found = _INVALID_TLS.search(record.getMessage()) \
            if record.levelno >= logging.WARNING else None
        if found and any(k in found[2] for k in _DISTRUST):
            self.say(found[1])
            return False
        return True


class ServerLogger(glogging.Logger):  # gunicorn has no type hints: Logger is Any here
    """Gunicorn's logger (--logger-class), saying once per address that a client does not
    trust our certificate (UntrustedClients) instead of once per connection."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for old in [f for f in self.error_log.filters if isinstance(f, UntrustedClients)]:
            self.error_log.removeFilter(old)  # set up again on a reload
        self.untrusted = UntrustedClients(self.error_log)
        self.error_log.addFilter(self.untrusted)

    def closing(self, address: str, error: BaseException) -> None:
        """The worker closes a connection that failed before its request was whole."""
        if not self.untrusted.distrusts(address, error):
            self.debug("closing a connection: %s", type(error).__name__)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (tests, benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_https(port: int, seconds: float = 30.0) -> None:
    """Until our own server answers on loopback (certificate not checked: it is ours)."""
    import ssl
    import urllib.request
    context = ssl._create_unverified_context()  # noqa: S323 - our own server on loopback
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/trust",  # noqa: S310
                                        context=context, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {seconds:.0f} s")


def _die_with_parent() -> None:
    try:  # Linux: a listener must not outlive its supervisor, even after kill -9
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Listener:
    name: str
    bind: str
    env: dict[str, str]
    tls: tuple[Path, Path] | None = None
    threads: int = THREADS
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restart: bool = True  # False: one that dies stays down (the demo's HQ, to fail over)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gunicorn", "--worker-class", WORKER_CLASS,
               "--workers", "1", "--threads", str(self.threads), "--bind", self.bind,
               "--timeout", "60", "--graceful-timeout", "10", "--keep-alive", "30",
               "--log-level", "warning", "--logger-class", LOGGER_CLASS,
               # gunicorn 27's control socket is one path per user (~/.gunicorn): each of
               # our masters would take it from the last, and unlink it when it stops
               "--no-control-socket", "--worker-tmp-dir", "/dev/shm"
               if Path("/dev/shm").is_dir() else "/tmp"]
        if self.tls:
            cmd += ["--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])]
        return cmd + ["shelter.wsgi:application"]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), env={**os.environ, **self.env},
                                        preexec_fn=_die_with_parent)  # noqa: PLW1509 (no threads here)


def app_env(data_dir: Path, **config: Any) -> dict[str, str]:
    env = {"SHELTER_DATA_DIR": str(data_dir)}
    for key, value in config.items():
        if value is not None:
            env[f"SHELTER_{key}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def supervise(listeners: list[Listener], until: Callable[[], bool] | None = None) -> int:
    """Run the listeners until SIGTERM/SIGINT (or ``until()`` says so: a standby promoted,
    which then serves as the node); restart one that dies (at most once a second)."""
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for listener in listeners:
        if listener.process is None or listener.process.poll() is not None:
            listener.start()
    last_restart: dict[str, float] = {}
    try:
        while not stopping and not (until is not None and until()):
            time.sleep(0.2)
            for listener in listeners:
                assert listener.process is not None
                if listener.process.poll() is not None and not stopping and listener.restart:
                    if time.monotonic() - last_restart.get(listener.name, 0) < 1.0:
                        time.sleep(1.0)
                    print(f"{listener.name} listener exited "
                          f"({listener.process.returncode}); restarting", file=sys.stderr)
                    last_restart[listener.name] = time.monotonic()
                    listener.start()
    finally:
        for listener in listeners:
            if listener.process and listener.process.poll() is None:
                listener.process.terminate()
        for listener in listeners:
            if listener.process:
                try:
                    listener.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    listener.process.kill()
    return 0
