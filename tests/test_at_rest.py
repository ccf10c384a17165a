"""Data at rest: a data directory made and run by the real CLI is 0700 with every file in it
0600 (database, -wal, -shm, TLS keys and certificates, HQ's CA); an old one made with open
modes is tightened on start; backups are 0600 in directories made 0700."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from .conftest import (
    VALID_HOUSEHOLD,
    api,
    enrolled_node,
    run_cli,
    start_hq,
    start_node,
    wait_until,
)

SHELTER = "E2710000001111"


def modes(root: Path) -> dict[str, int]:
    """Every directory and file under ``root`` (itself included) and its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path) -> dict[str, int]:
    found = modes(root)
    for name, mode in found.items():
        wanted = 0o700 if (root / name).is_dir() else 0o600
        assert mode == wanted, (name, oct(mode), sorted((n, oct(m)) for n, m in found.items()))
    return found


def open_up(root: Path) -> None:
    """What a data directory made before the rule looks like: readable by everyone."""
    os.chmod(root, 0o755)
    for base, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(Path(base) / name, 0o755)
        for name in files:
            os.chmod(Path(base) / name, 0o644 if name.endswith((".db", ".crt")) else 0o755)


def test_a_node_and_hq_keep_their_data_private_and_tighten_an_old_directory(tmp_path):
    hq = start_hq(tmp_path / "hq")
    data = tmp_path / "node"
    try:
        node = enrolled_node(hq, data, SHELTER)
        try:
            token = node.token("kiosk")
            assert api(node, "POST", "/api/v1/households", token,
                       json=VALID_HOUSEHOLD).status_code == 201
            wait_until(lambda: (data / "shelter.db-wal").exists(), what="the WAL")
            made = assert_private(data)
            # The check covered what holds the secrets, and what enrollment wrote.
            assert {"shelter.db", "shelter.db-wal", "shelter.db-shm", "tls", "tls/ca.key",
                    "tls/ca.crt", "tls/server.key", "tls/server.crt", "hq-ca.crt"} <= set(made)
            assert_private(hq.data)
        finally:
            node.stop()

        # A directory from before: everything open, plus a log someone wrote beside it.
        (data / "logs").mkdir()
        (data / "logs" / "node.log").write_text("started\n")
        open_up(data)
        assert modes(data)["shelter.db"] == 0o644 and modes(data)["."] == 0o755
        node = start_node(data, "--hq", hq.url)  # enrolled already: no code needed
        try:
            assert api(node, "GET", "/api/v1/headcount", node.token("volunteer")).ok
            found = assert_private(data)
            assert found["logs/node.log"] == 0o600 and found["logs"] == 0o700
        finally:
            node.stop()
    finally:
        hq.stop()


def test_backups_are_private_and_so_is_what_a_restore_writes(tmp_path):
    data = tmp_path / "node"
    run_cli("token", "create", "--data", str(data), "--role", "manager")
    outside = tmp_path / "usb"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)  # the owner's own directory: left as it is
    target = outside / "backups" / "day1" / "shelter-backup.db"
    run_cli("backup", "--data", str(data), "--to", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    for made in (outside / "backups", outside / "backups" / "day1"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    assert not [p for p in target.parent.iterdir() if p != target]  # no -wal left beside it

    # Even from an old, open data directory.
    open_up(data)
    second = outside / "shelter-backup-2.db"
    run_cli("backup", "--data", str(data), "--to", str(second))
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert_private(data)

    restored = tmp_path / "restored"
    run_cli("restore", "--data", str(restored), "--from", str(target))
    assert_private(restored)
    open_up(restored)
    run_cli("restore", "--data", str(restored), "--from", str(second))  # moves the old aside
    found = assert_private(restored)
    assert any(".before-restore-" in name for name in found)


PROBE = """
import os, sqlite3, stat, sys
os.umask(0)  # the most careless process that could open the database
path = sys.argv[1]
if sys.argv[2] == "shelter":
    from shelter.core import db
    conn = db.connect(path).conn
    conn.execute("CREATE TABLE IF NOT EXISTS probe (x)")
else:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO probe VALUES (1)")
    conn.commit()
for suffix in ("", "-wal", "-shm"):
    print(suffix or "db", oct(stat.S_IMODE(os.stat(path + suffix).st_mode)))
conn.close()  # the last close removes -wal and -shm
"""


def probe(path: Path, how: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), how], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines())


def test_sqlite_gives_the_wal_and_shm_the_databases_mode_in_any_process(tmp_path):
    """A gunicorn listener (another process, any umask) that makes -wal/-shm later makes
    them 0600 because the database is 0600; and connect() makes a new database 0600."""
    path = tmp_path / "shelter.db"
    assert probe(path, "shelter") == {"db": "0o600", "-wal": "0o600", "-shm": "0o600"}
    assert not (tmp_path / "shelter.db-wal").exists()  # the last close removed them
    assert probe(path, "plain sqlite") == {"db": "0o600", "-wal": "0o600", "-shm": "0o600"}
    # And an old database with open companions is tightened by connect().
    os.chmod(path, 0o644)
    assert probe(path, "plain sqlite")["-wal"] == "0o644"  # what SQLite alone does
    assert probe(path, "shelter") == {"db": "0o600", "-wal": "0o600", "-shm": "0o600"}
