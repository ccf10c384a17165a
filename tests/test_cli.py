"""The `shelter` command: demo, accounts, tokens, clear errors instead of tracebacks."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import requests

from .conftest import SHELTER, free_port, run_cli, wait_until


def free_ports_in_a_row(n: int) -> int:
    """The first of n consecutive loopback ports nothing listens on."""
    import socket
    for _ in range(50):
        base = free_port()
        sockets = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no run of free ports")


def _meta(data: Path, key: str) -> str | None:
    conn = sqlite3.connect(f"file:{data / 'shelter.db'}?mode=ro", uri=True, timeout=15)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def kill_9_listening_on(port: int) -> int:
    """kill -9 of every process whose command line binds ``port`` (a gunicorn master and
    its worker: HQ's site lost); returns how many."""
    killed = 0
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if entry.name.isdigit() and f"--bind 127.0.0.1:{port} ".encode() in line:
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
    return killed


def test_demo_starts_hq_and_three_synced_shelters_and_prints_logins(tmp_path):
    port, http_port, hq_port = free_ports_in_a_row(3), free_ports_in_a_row(3), \
        free_ports_in_a_row(2)
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen([SHELTER, "demo", "--data", str(tmp_path / "demo"),
                                    "--port", str(port), "--http-port", str(http_port),
                                    "--hq-port", str(hq_port), "--minutes", "0", "--standby"],
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        base = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: requests.get(f"{base}/register", timeout=2).ok, timeout=30,
                   what="demo node")
        printed = wait_until(lambda: "demo-manager-1" in log.read_text() and log.read_text(),
                             what="demo banner")
        assert f"http://localhost:{http_port}/kiosk" in printed
        user, password = re.search(r"manager\s+(\S+) / (\S+)", printed).groups()
        session = requests.Session()
        login = session.get(f"{base}/staff/login", timeout=5).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
        home = session.post(f"{base}/staff/login", data={
            "csrf": csrf, "username": user, "password": password}, timeout=10)
        assert home.ok and "山田" in home.text and "Nguyễn" in home.text
        duplicates = session.get(f"{base}/staff/duplicates", timeout=5).text
        assert duplicates.count('class="duplicate"') == 1
        # The families who said they stay in the shelter are checked in already.
        headcount = session.get(f"{base}/desk/headcount", timeout=5).text
        assert re.search(r'data-count="present">3<', headcount)
        stock = session.get(f"{base}/supplies", timeout=5).text
        assert 'data-item="water"' in stock and "2000" in stock
        poster = session.get(f"{base}/staff/poster.pdf", timeout=10)
        assert poster.headers["Content-Type"] == "application/pdf"
        # HQ hears from all three shelters.
        assert f"https://localhost:{hq_port}/hq" in printed and "demo-admin-1" in printed
        token = run_cli("token", "create", "--data", str(tmp_path / "demo" / "hq"), "--role",
                        "operator").stdout.strip()

        def three_shelters():
            answer = requests.get(f"https://127.0.0.1:{hq_port}/api/v1/shelters",
                                  headers={"Authorization": f"Bearer {token}"},
                                  verify=str(tmp_path / "demo" / "hq" / "tls" / "ca.crt"),
                                  timeout=5).json()["shelters"]
            return len([s for s in answer if s["present"] > 0]) == 3

        wait_until(three_shelters, timeout=60, what="HQ to hear from the three shelters")
        # --standby: HQ's site lost; the standby restored from the replica takes over, and
        # the three shelters move to it (they were given both addresses).
        assert f"pkill -9 -f 'bind 127.0.0.1:{hq_port}'" in printed
        assert kill_9_listening_on(hq_port) >= 1
        wait_until(lambda: "is gone; standby HQ" in log.read_text(), timeout=60,
                   what="the standby HQ restored and answering")
        hq_port += 1
        token = run_cli("token", "create", "--data", str(tmp_path / "demo" / "standby-hq"),
                        "--role", "operator").stdout.strip()
        standby_ca = tmp_path / "demo" / "standby-hq" / "tls" / "ca.crt"
        assert standby_ca.read_bytes() == (tmp_path / "demo" / "hq" / "tls" / "ca.crt"
                                           ).read_bytes()  # what the shelters pinned
        # three_shelters asks again, now the standby (hq_port, token) with the same CA
        wait_until(three_shelters, timeout=60, what="the standby to hear from the shelters")

        def moved() -> bool:
            nodes = list((tmp_path / "demo").glob("node-*"))
            return len(nodes) == 3 and all(_meta(n, "hq_url_current") ==
                                           f"https://127.0.0.1:{hq_port}" for n in nodes)

        wait_until(moved, timeout=60, what="the three shelters to move to the standby")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_user_add_refuses_clearly(tmp_path):
    data = str(tmp_path / "n")
    run_cli("user", "add", "--data", data, "--username", "sato", "--role", "manager",
            "--password", "long-enough-1")
    again = run_cli("user", "add", "--data", data, "--username", "sato", "--role", "manager",
                    "--password", "long-enough-1", check=False)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    short = run_cli("user", "add", "--data", data, "--username", "ito", "--role", "volunteer",
                    "--password", "short", check=False)
    assert short.returncode == 1 and "8 characters" in short.stderr
    role = run_cli("token", "create", "--data", data, "--role", "king", check=False)
    assert role.returncode == 2 and "king" in role.stderr


def test_shelter_id_is_fixed_once_cards_exist(tmp_path):
    from shelter.core.node import NodeContext
    from shelter.domain.households import register_household

    from .conftest import VALID_HOUSEHOLD
    data = tmp_path / "n"
    ctx = NodeContext(data, shelter_id="E2710000001111")
    register_household(ctx.store, ctx.identity, VALID_HOUSEHOLD)
    bad = run_cli("node", "--data", str(data), "--port", str(free_port()), "--shelter-id",
                  "E2710000009999", check=False)
    assert bad.returncode == 1 and "E2710000001111" in bad.stderr
