"""HQ's CA certificate, as a node fetches it to enroll: the one answer a node reads before it
can check who sent it (there is no public CA offline; the enrollment code's pin is the check).

Whoever answers at the HQ address may be anyone (a captive portal, a thief's laptop on the
shelter's Wi-Fi), so the answer is read as a stranger's: at most MAX_CA_BYTES, and by a
deadline. A watchdog cuts the connection when the deadline passes, so an answer that
trickles in a byte at a time cannot hold the enrollment (socket timeouts alone would not:
each byte restarts them). Only then is it compared with the pin.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.error
from urllib.parse import urlsplit

from sync import enrollment

PATH = "/trust/shelter-ca.crt"
MAX_CA_BYTES = 64 * 1024  # a CA certificate is about 1 KB; 64 KiB is more than any needs
CHUNK = 16 * 1024


def fetch(hq_url: str, pin: str, until: float, timeout: float) -> str:
    """HQ's CA certificate (PEM) from ``hq_url`` (over HTTPS), matching the code's ``pin``.

    EnrollmentError ``wrong_hq`` for an answer larger than MAX_CA_BYTES, one that is not a
    certificate, or another CA; TimeoutError when the answer is not complete by ``until``
    (``time.monotonic()``); an HTTP status other than 200 as urllib's HTTPError and a
    broken answer as ConnectionError (both OSError: the caller may try again)."""
    netloc = urlsplit(hq_url).netloc
    left = until - time.monotonic()
    if left <= 0:
        raise TimeoutError("no time left to fetch HQ's certificate")
    unverified = ssl._create_unverified_context()  # noqa: S323 - checked against the pin below
    conn = http.client.HTTPSConnection(netloc, context=unverified, timeout=min(timeout, left))
    cut = threading.Event()
    watchdog = threading.Timer(left, _cut, [conn, cut])
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("GET", PATH)
        answer = conn.getresponse()
        if answer.status != 200:
            raise urllib.error.HTTPError(f"https://{netloc}{PATH}", answer.status,
                                         answer.reason, answer.headers, None)
        declared = answer.headers.get("Content-Length", "")
        if declared.isdecimal() and int(declared) > MAX_CA_BYTES:
            raise _too_large(hq_url)
        body = bytearray()
        while chunk := answer.read1(CHUNK):
            body += chunk
            if len(body) > MAX_CA_BYTES:
                raise _too_large(hq_url)
        if cut.is_set():
            raise TimeoutError("cut off")  # what arrived before the cut is not the answer
    except (OSError, http.client.HTTPException) as error:
        if cut.is_set():
            raise TimeoutError(f"HQ at {hq_url} did not send its certificate within "
                               "the enrollment's time") from None
        if isinstance(error, OSError):
            raise
        raise ConnectionError(f"HQ's answer broke off ({type(error).__name__})") from None
    finally:
        watchdog.cancel()
        conn.close()
    try:
        pem = body.decode("ascii")
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError:  # not ASCII, not PEM, not base64
        raise enrollment.EnrollmentError(
            "wrong_hq", f"the HQ at {hq_url} did not answer with a certificate") from None
    if enrollment.ca_pin(der) != pin:
        raise enrollment.EnrollmentError(
            "wrong_hq", f"the HQ at {hq_url} is not the one that issued this code "
                        "(its certificate does not match)")
    return pem


def _too_large(hq_url: str) -> enrollment.EnrollmentError:
    return enrollment.EnrollmentError(
        "wrong_hq", f"the HQ at {hq_url} answered with more than {MAX_CA_BYTES // 1024} KiB "
                    "where its certificate should be: not the HQ that issued this code")


def _cut(conn: http.client.HTTPSConnection, cut: threading.Event) -> None:
    """The deadline passed: end the connection under whatever is reading it."""
    cut.set()
    sock = conn.sock
    if sock is not None:
        try:  # the plain socket's shutdown: the reader's TLS layer then meets the end
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass
