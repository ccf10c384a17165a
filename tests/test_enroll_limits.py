"""Enrolling reads one answer before it can tell who sent it: HQ's CA certificate, checked
against the code's pin only once it has arrived. Whatever answers at the HQ address (here a
small TLS server on loopback, with a certificate from shelter/core/tls.py) may send too
much, or send it a byte at a time: the node reads at most 64 KiB, and the enrollment has a
deadline (sync/hq_ca.py)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shelter.core import tls
from shelter.core.node import NodeContext
from shelter.core.server import free_loopback_port as free_port
from sync import client, enrollment, hq_ca

from .conftest import run_cli

Answer = Callable[[ssl.SSLSocket, threading.Event], None]
SHELTER = "E2710000007101"


class FakeHQ:
    """A TLS server on loopback that answers every request with what ``answer`` sends."""

    def __init__(self, tmp: Path, answer: Answer) -> None:
        cert, key = tls.ensure_certificates(tmp, "fake")
        self.ca_pem = (tmp / "tls" / "ca.crt").read_text()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.answer = answer
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 8192:
                    if not (data := conn.recv(4096)):
                        return
                    request += data
                self.answer(conn, self.stop)
        except OSError:
            return  # the node hung up: what it should do

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def huge_declared(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"A" * 1024 * 1024)


def huge_undeclared(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n-----BEGIN CERTIFICATE-----\n")
    for _ in range(100):
        conn.sendall(b"QUFB" * 256 * 1024)


def trickle_body(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n")
    for _ in range(2000):
        if stop.wait(0.05):
            return
        conn.sendall(b"A")


def trickle_headers(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(2000):
        if stop.wait(0.05):
            return
        conn.sendall(b"X-Slow: y\r\n"[_ % 11:_ % 11 + 1])


def not_a_certificate(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n<html>portal</html>\n")


@pytest.fixture
def fake(tmp_path) -> Iterator[Callable[[Answer], FakeHQ]]:
    made: list[FakeHQ] = []

    def make(answer: Answer) -> FakeHQ:
        made.append(FakeHQ(tmp_path / f"fake{len(made)}", answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def code_for(server: FakeHQ) -> str:
    """A well-formed code whose pin is the fake's own CA (so only the cap can refuse it)."""
    pin = enrollment.ca_pin(ssl.PEM_cert_to_DER_cert(server.ca_pem))
    return f"ENR1.{'A' * 20}.{pin}"


@pytest.mark.parametrize("answer", [huge_declared, huge_undeclared])
def test_a_huge_answer_for_the_certificate_ends_enrollment_at_once(fake, tmp_path, answer):
    server = fake(answer)
    ctx = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    started = time.monotonic()
    with pytest.raises(enrollment.EnrollmentError) as refused:
        client.enroll(ctx, server.url, code_for(server))
    assert time.monotonic() - started < 5  # refused, not tried again
    assert refused.value.code == "wrong_hq"
    assert "more than 64 KiB where its certificate should be" in str(refused.value)
    assert not (ctx.data_dir / client.HQ_CA_FILE).exists()


def test_the_node_says_why_and_exits(fake, tmp_path):
    server = fake(huge_undeclared)
    started = time.monotonic()
    result = run_cli("node", "--data", str(tmp_path / "n"), "--port", str(free_port()),
                     "--shelter-id", SHELTER, "--hq", server.url, "--enroll",
                     code_for(server), check=False)
    assert result.returncode == 1
    assert "enrollment failed" in result.stderr and "more than 64 KiB" in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("answer", [trickle_body, trickle_headers])
def test_an_answer_that_trickles_in_is_cut_off_at_the_deadline(fake, tmp_path, answer):
    """A byte every 50 ms restarts every socket timeout; the deadline still holds."""
    server = fake(answer)
    ctx = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not send its certificate"):
        client.enroll(ctx, server.url, code_for(server), deadline=1.5, first_wait=0.1)
    assert 1.4 < time.monotonic() - started < 4


def test_what_is_not_a_certificate_is_refused_and_a_small_one_is_read(fake, tmp_path):
    portal = fake(not_a_certificate)
    with pytest.raises(enrollment.EnrollmentError, match="did not answer with a certificate"):
        hq_ca.fetch(portal.url, "0" * 20, time.monotonic() + 10, 5)

    def the_ca(conn: ssl.SSLSocket, stop: threading.Event) -> None:
        body = server.ca_pem.encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = fake(the_ca)
    pin = code_for(server).rsplit(".", 1)[1]
    assert hq_ca.fetch(server.url, pin, time.monotonic() + 10, 5) == server.ca_pem
    with pytest.raises(enrollment.EnrollmentError, match="not the one that issued"):
        hq_ca.fetch(server.url, "0" * 20, time.monotonic() + 10, 5)
