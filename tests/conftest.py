"""Shared fixtures: an app on a temp database, real node servers on free loopback ports,
a real Chromium, and independent decoders for what the project prints."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import shelter.hq  # noqa: F401  (the domain's projections, HQ's store hooks)
from shelter.core.server import free_loopback_port as free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SHELTER = str(Path(sys.executable).parent / "shelter")


class GiveUp(Exception):
    """Raised by a predicate when waiting longer cannot help."""


def _read_only(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    import sqlite3
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def hq_projected(data: Path, timeout: float = 60.0) -> int:
    """Wait until HQ (its data directory ``data``, its server running) has projected
    everything its log holds (HQ acknowledges what it stored, and projects after);
    returns the position."""
    def caught_up() -> int | None:
        head = _read_only(data / "log.db", "SELECT coalesce(max(log_id), 0) FROM log")[0][0]
        through = _read_only(data / "shelter.db", "SELECT value FROM meta WHERE key = "
                                                  "'projected_log_id'")
        return head or -1 if through and int(through[0][0]) >= head else None
    return wait_until(caught_up, timeout=timeout, what="HQ projects its log")


def projected_ack(data: Path, ack: dict, events: list[dict]) -> dict:
    """``ack`` (HQ stored the batch ``events``) with what came of it once projected: how
    many of them HQ applied, and those it quarantined (refused among them), in order."""
    hq_projected(data)
    ids = [e["event_id"] for e in events]
    marks = ",".join("?" * len(ids))
    applied = _read_only(data / "shelter.db", f"SELECT count(*) FROM events WHERE event_id "
                                              f"IN ({marks})", tuple(ids))[0][0]
    quarantined = [{"event_id": r[0], "seq": r[1], "reason": r[2]} for r in _read_only(
        data / "shelter.db", f"SELECT event_id, seq, reason FROM sync_quarantine WHERE "
                             f"event_id IN ({marks}) ORDER BY seq, quarantine_id", tuple(ids))]
    return {**ack, "applied": applied, "quarantined": quarantined}


def pytest_collection_modifyitems(items) -> None:
    """Every test its own id. Schemathesis names each API operation's test
    ``test_x[GET /path]`` but gives them all the function's id, and pytest-xdist schedules
    by id: under ``scripts/test`` only one operation of each document was tested."""
    for item in items:
        named = getattr(item, "originalname", item.name)
        if item._id.params is None and item.name.startswith(f"{named}[") \
                and item.name.endswith("]"):  # test_x[GET /path], its id test_x
            item._id = item._id.with_params(item.name[len(named) + 1:-1])
    ids = [item.nodeid for item in items]
    assert len(ids) == len(set(ids)), "two tests share an id: pytest-xdist would run one"


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = ""):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as error:  # noqa: BLE001 - keep polling until the deadline
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}: {last_error!r}")


@pytest.fixture
def app(tmp_path):
    from shelter.app import create_app
    return create_app(tmp_path / "node", test_config={"TESTING": True,
                                                      "SHELTER_ID": "E2710000001111"})


@pytest.fixture
def client(app):
    return app.test_client()


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHELTER, *args], capture_output=True, text=True, check=check,
                          timeout=60)


def stop_group(process: subprocess.Popen[str]) -> None:
    """Stop a server and everything it started (TERM, then KILL after 20 s)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout:
        process.stdout.close()


@dataclass
class Served:
    """A `shelter` server process on loopback: its data directory, HTTPS port, process."""
    data: Path
    port: int
    process: subprocess.Popen[str]

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def verify(self) -> str:
        """The server's own CA: tests check the certificate instead of ignoring it."""
        return str(self.data / "tls" / "ca.crt")

    def stop(self) -> None:
        stop_group(self.process)


@dataclass
class NodeServer(Served):
    http_port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def card_keys(self) -> dict[str, str]:
        import sqlite3
        conn = sqlite3.connect(self.data / "shelter.db")
        try:
            return dict(conn.execute("SELECT node_id, public_key FROM card_keys").fetchall())
        finally:
            conn.close()

    def token(self, role: str) -> str:
        return run_cli("token", "create", "--data", str(self.data), "--role", role).stdout.strip()


def api(server: NodeServer, method: str, path: str, token: str | None = None,
        **kwargs) -> requests.Response:
    """One request to a node over HTTPS (checked against its own CA), with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, f"{server.https}{path}", headers=headers,
                            verify=server.verify, timeout=10, **kwargs)


def start_node(data: Path, *extra: str) -> NodeServer:
    port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [SHELTER, "node", "--data", str(data), "--port", str(port), "--http-port",
         str(http_port), "--host", "127.0.0.1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    server = NodeServer(data, port, process, http_port)

    def ready() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"node exited: {process.stdout.read() if process.stdout else ''}")
        return (requests.get(f"{server.https}/register", verify=server.verify, timeout=2).ok
                and requests.get(f"{server.http}/register", timeout=2).ok)

    try:
        wait_until(ready, timeout=30, what="node server")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class HQServer(Served):
    @property
    def url(self) -> str:
        return self.https

    def get(self, path: str, token: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"},
                            verify=self.verify, timeout=10)


def start_hq(data: Path, port: int | None = None, *extra: str) -> HQServer:
    port = port or free_port()
    process = subprocess.Popen([SHELTER, "hq", "--data", str(data), "--port", str(port),
                                "--host", "127.0.0.1", *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    hq = HQServer(data, port, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"HQ exited: {process.stdout.read() if process.stdout else ''}")
        return requests.get(f"{hq.url}/trust", verify=hq.verify, timeout=2).ok

    wait_until(ready, timeout=30, what="HQ server")
    return hq


def enrolled_node(hq: HQServer, data: Path, shelter_id: str, *extra: str,
                  via: str | None = None) -> NodeServer:
    """A node enrolled with ``hq`` (through ``via``, a proxy URL, when given) and syncing."""
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", shelter_id
                   ).stdout.strip()
    assert code.startswith("ENR1."), code
    return start_node(data, "--shelter-id", shelter_id, "--hq", via or hq.url, "--enroll",
                      code, *extra)


@pytest.fixture(scope="module")
def hq(tmp_path_factory) -> Iterator[HQServer]:
    """A real HQ for the module (a test module may define its own)."""
    server = start_hq(tmp_path_factory.mktemp("hq"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hq_token(hq: HQServer) -> str:
    return run_cli("token", "create", "--data", str(hq.data), "--role", "operator").stdout.strip()


@pytest.fixture(scope="module")
def node_server(tmp_path_factory) -> Iterator[NodeServer]:
    data = tmp_path_factory.mktemp("node")
    run_cli("user", "add", "--data", str(data), "--username", "manager", "--role", "manager",
            "--password", "manager-pass-1")
    run_cli("user", "add", "--data", str(data), "--username", "volunteer", "--role",
            "volunteer", "--password", "volunteer-pass-1")
    server = start_node(data, "--shelter-id", "E2710000001111", "--shelter-name",
                        "大阪市立テスト小学校")
    yield server
    server.stop()


# --- independent decoding of what the project prints -------------------------------------

def decode_png(data: bytes) -> list[str]:
    """Decode QR codes with zxing-cpp (the project encodes with `qrcode`).

    QR only: with every format on, zxing-cpp now and then also "finds" a short linear
    barcode in a QR's modules (about 1 card in 250), as the node's camera decoder would."""
    import zxingcpp
    from PIL import Image
    return [r.text for r in zxingcpp.read_barcodes(
        Image.open(io.BytesIO(data)), formats=zxingcpp.barcode_formats_from_str("QRCode"))]


def render_pdf(pdf: bytes, tmp_path: Path, dpi: int = 150) -> list[bytes]:
    """Render every page with poppler's pdftoppm (not reportlab)."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.fail("pdftoppm is missing: .ci/run installs poppler-utils")
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf)
    subprocess.run([pdftoppm, "-r", str(dpi), "-png", str(source), str(tmp_path / "page")],
                   check=True, timeout=60)
    return [p.read_bytes() for p in sorted(tmp_path.glob("page*.png"))]


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    source = tmp_path / "text.pdf"
    source.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(source), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout


# --- a real browser ------------------------------------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-gpu",
                 "--no-first-run"]


CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def playwright_driver():
    """One Playwright for the whole run (a second sync_playwright() inside it is refused)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_driver):
    b = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


def sign_in(page, base: str, username: str, password: str, landing: str) -> None:
    """Sign in on the staff page and land on ``landing`` (a path)."""
    page.goto(f"{base}/staff/login?next={landing}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"**{landing}")


VALID_HOUSEHOLD = {
    "address": "大阪市中央区大手前2丁目", "postal_code": "5400008", "phone": "06-1234-5678",
    "whereabouts": "shelter", "consent": "relatives", "language": "ja",
    "members": [{"family_name": "山田", "given_name": "太郎", "family_name_kana": "やまだ",
                 "given_name_kana": "たろう", "birth_date": "1948-04-02", "sex": "male",
                 "needs": ["elderly"]}],
}


@pytest.fixture
def headers(monkeypatch):
    """The header row of every table the PDF reports draw (render/report.py's _Pdf.table)."""
    from shelter.render import report

    seen: list[list[str]] = []
    table = report._Pdf.table

    def recording(self, rows, widths=None):
        seen.append([str(cell) for cell in rows[0]])
        return table(self, rows, widths)

    monkeypatch.setattr(report._Pdf, "table", recording)
    return seen


def sync_socket(hq):
    """A raw websocket to a test HQ's /sync (its CA trusted) and ``ask(message)``: send one
    frame, get HQ's answer decoded (within 30 s). For tests that speak the protocol by hand."""
    import ssl

    from simple_websocket import Client

    from sync import protocol

    ws = Client.connect(f"wss://127.0.0.1:{hq.port}/sync",
                        ssl_context=ssl.create_default_context(cafile=hq.verify))

    def ask(message: dict) -> dict:
        ws.send(protocol.encode(message))
        answer = ws.receive(timeout=30)
        assert answer is not None, "HQ did not answer within 30 s"
        return protocol.decode(answer)

    return ws, ask
