"""Backups that happen by themselves (`shelter node --backup-dir DIR`), against a real node:
the copies appear, pass their check, are private, hold what was registered before them
and restore; the rotation keeps the newest N of its own files and touches nothing else;
the desk and the API show the last good one; a pulled stick is warned about while the node
serves on, and a stick put back gets a new backup and the warning goes."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sqlite3
import ssl
import stat
from datetime import UTC, datetime, timedelta

import pytest
import requests
from simple_websocket import Client

from shelter.core import backups, meta
from shelter.core.node import NodeContext
from sync.client import close_socket

from .conftest import VALID_HOUSEHOLD, api, run_cli, start_node, wait_until

KEEP = 3
OURS = re.compile(r"shelter-(\d{8}T\d{6}Z)\.db")
FOREIGN = "shelter-20000101T000000Z.db"  # named as ours, but another node wrote it
JST = timedelta(hours=9)


@pytest.fixture(scope="module")
def stick(tmp_path_factory):
    """A "USB stick" with a backup directory on it, holding things the node must not touch
    and a copy of its kind made by another node (the laptop it replaced), and one half copy
    of its own kind."""
    root = tmp_path_factory.mktemp("usb")
    target = root / "stick" / "shelter-backups"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("the manager's notes")
    (target / "shelter-manual.db").write_bytes(b"a copy someone made by hand")
    (target / FOREIGN).write_bytes(b"another node's copy")
    (target / ".shelter-20000101T000001Z.db.partial").write_bytes(b"half a copy")
    elsewhere = root / "kept-elsewhere.db"
    elsewhere.write_bytes(b"not on the stick")
    (target / "shelter-19990101T000000Z.db").symlink_to(elsewhere)
    return target


@pytest.fixture(scope="module")
def node(tmp_path_factory, stick):
    server = start_node(tmp_path_factory.mktemp("node"), "--shelter-id", "E2710000004545",
                        "--backup-dir", str(stick), "--backup-every", "0.02",  # 1.2 s
                        "--backup-keep", str(KEEP))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(node):
    return {role: node.token(role) for role in ("kiosk", "volunteer")}


def register(node, token, name):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"][0]["given_name"] = name
    return api(node, "POST", "/api/v1/households", token, json=body)


def own_files(directory):
    return sorted(p.name for p in directory.iterdir()
                  if OURS.fullmatch(p.name) and not p.is_symlink() and p.name != FOREIGN)


def backup_status(node, tokens):
    answer = api(node, "GET", "/api/v1/sync-status", tokens["volunteer"])
    assert answer.status_code == 200
    return answer.json()["backup"]


def desk_page(node, tokens, path="/desk", lang="ja"):
    return requests.get(f"{node.https}{path}?lang={lang}", verify=node.verify, timeout=10,
                        headers={"Authorization": f"Bearer {tokens['volunteer']}"}).text


def backup_line(page):
    """The desk's backup line: its classes and its text (None when there is none)."""
    found = re.search(r'<p class="([^"]*)" id="backup-status"[^>]*>(.*?)</p>', page, re.S)
    return (found[1].split(), " ".join(found[2].split())) if found else None


def integrity(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_a_backup_appears_checked_private_and_restores_what_came_before(node, tokens,
                                                                      stick, tmp_path):
    for name in ("一郎", "二郎", "三郎"):
        assert register(node, tokens["kiosk"], name).status_code == 201
    after = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    copied = tmp_path / "copy.db"

    def a_later_backup():  # copied at once: the rotation deletes it within seconds
        later = [n for n in own_files(stick) if OURS.fullmatch(n)[1] > after]
        if not later:
            return None
        mode = stat.S_IMODE(os.stat(stick / later[-1]).st_mode)
        shutil.copyfile(stick / later[-1], copied)
        return mode

    mode = wait_until(a_later_backup, timeout=20, what="a backup made after the arrivals")
    assert mode == 0o600
    assert integrity(copied) == "ok"
    restored = run_cli("restore", "--data", str(tmp_path / "restored"), "--from", str(copied))
    assert "new epoch" in restored.stdout
    conn = sqlite3.connect(tmp_path / "restored" / "shelter.db")
    try:
        assert conn.execute("SELECT count(*) FROM persons").fetchone()[0] == 3
    finally:
        conn.close()


def test_the_rotation_keeps_the_newest_and_touches_nothing_else(node, stick):
    seen: set[str] = set()
    crowded: list[list[str]] = []

    def several_made():
        now = own_files(stick)
        seen.update(now)
        if len(now) > KEEP + 1:  # the new one is renamed in before the oldest goes
            crowded.append(now)
        return len(seen) >= KEEP + 3 and len(now) == KEEP

    wait_until(several_made, timeout=25, what="several rotations")
    assert not crowded, crowded
    assert not (stick / ".shelter-20000101T000001Z.db.partial").exists()  # a half copy
    for other in ("notes.txt", "shelter-manual.db", "shelter-19990101T000000Z.db", FOREIGN):
        assert os.path.lexists(stick / other), other
    assert (stick / "notes.txt").read_text() == "the manager's notes"


def test_the_desk_and_the_api_show_the_last_good_backup(node, tokens, stick):
    status = wait_until(lambda: (s := backup_status(node, tokens)) and s["last_ok_at"] and s,
                        what="a backup recorded")
    assert status["dir"] == str(stick)
    assert (status["missing"], status["stale"], status["error"]) == (False, False, None)
    assert OURS.fullmatch(status["last_file"])
    answer = api(node, "GET", "/api/v1/sync-status", tokens["volunteer"]).json()
    assert answer["enabled"] is False  # the fields that were there stay as they were
    for path in ("/desk", "/desk/headcount"):
        classes, text = backup_line(desk_page(node, tokens, path))
        shown = re.fullmatch(r"最終バックアップ (\d\d:\d\d)( · この端末と同じディスク上です："
                             r"端末をなくしたり壊れたりすると.*)?", text)
        assert shown, (path, text)
        now = datetime.now(UTC) + JST
        assert shown[1] in {(now - timedelta(minutes=m)).strftime("%H:%M") for m in (0, 1)}
        assert "backup-warn" not in classes
        # a stick on the node's own disk (tmp here) is no green: it is yellow, and says why
        assert ("backup-caution" in classes) == bool(shown[2]) != ("sync-on" in classes)
    assert backup_line(desk_page(node, tokens, lang="en"))[1].startswith("Last backup ")


def test_a_pulled_stick_is_warned_about_and_the_node_serves_on(node, tokens, stick):
    context = ssl.create_default_context(cafile=node.verify)
    ws = Client.connect(f"wss://127.0.0.1:{node.port}/desk/live", ssl_context=context,
                        headers={"Authorization": f"Bearer {tokens['volunteer']}"})
    pulled = stick.parent.with_name("stick-pulled")
    try:
        first = json.loads(ws.receive(timeout=10))
        assert first["backup"]["last_ok_at"] and not first["backup"]["missing"]
        stick.parent.rename(pulled)  # the stick is pulled out
        pulled_at = datetime.now(UTC)

        def pushed_missing():
            state = json.loads(ws.receive(timeout=5))
            return "backup" in state and state["backup"]["missing"] and state["backup"]
        live = wait_until(pushed_missing, timeout=15, what="the desk told of the stick")
        assert live["stale"] is False and live["last_ok_at"]  # the last good one stays known
    finally:
        close_socket(ws)
    status = backup_status(node, tokens)
    assert status["missing"] and status["error"] == "missing"
    classes, text = backup_line(desk_page(node, tokens))
    assert text.startswith("バックアップ先が見つかりません") and "backup-warn" in classes
    assert register(node, tokens["kiosk"], "四郎").status_code == 201  # the door stays open

    def tried_since():  # the schedule went on trying; it made no directory in its place
        conn = sqlite3.connect(node.data / "shelter.db")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = "
                               "'backup_last_attempt_at'").fetchone()
        finally:
            conn.close()
        return row and datetime.fromisoformat(row[0]) > pulled_at + timedelta(seconds=1)
    wait_until(tried_since, timeout=10, what="a try with the stick out")
    assert not stick.exists()

    pulled.rename(stick.parent)  # put back
    back = wait_until(lambda: (s := backup_status(node, tokens)) and not s["missing"]
                      and s["error"] is None and s["last_ok_at"] > pulled_at.isoformat()
                      and s, timeout=15, what="a new backup once the stick is back")
    newest = own_files(stick)[-1]  # that one, or one made since
    assert newest >= back["last_file"] and integrity(stick / newest) == "ok"
    classes, text = backup_line(desk_page(node, tokens))
    assert "backup-warn" not in classes and text.startswith("最終バックアップ")


def test_backup_options_are_checked(tmp_path):
    data = str(tmp_path / "node")
    for options, says in [(["--backup-dir", str(tmp_path / "b"), "--backup-every", "0"],
                           "'--backup-every': 0.0 is not in the range 0<x<=60"),
                          (["--backup-dir", str(tmp_path / "b"), "--backup-every", "61"],
                           "'--backup-every': 61.0 is not"),
                          (["--backup-dir", str(tmp_path / "b"), "--backup-keep", "0"],
                           "'--backup-keep': 0 is not in the range x>=1"),
                          (["--backup-every", "5"], "--backup-dir"),
                          (["--backup-dir", str(tmp_path / "node" / "b")], "outside")]:
        result = run_cli("node", "--data", data, "--port", "1", *options, check=False)
        assert result.returncode == 2 and says in result.stderr, (options, result.stderr)
    assert not (tmp_path / "b").exists() and not (tmp_path / "node").exists()


def test_status_goes_stale_after_an_hour_and_a_run_never_makes_the_directory(tmp_path):
    ctx = NodeContext(tmp_path / "node")
    target = tmp_path / "usb" / "backups"
    backups.configure(ctx, target)
    assert backups.status(ctx.db)["last_ok_at"] is None
    since = datetime.fromisoformat(meta.get(ctx.db, "backup_since"))
    assert backups.status(ctx.db, since + timedelta(minutes=59))["stale"] is False
    assert backups.status(ctx.db, since + timedelta(minutes=61))["stale"] is True  # none yet
    assert backups.run_once(ctx, target, 2) == "missing"
    assert not target.exists() and backups.status(ctx.db)["missing"]
    target.mkdir(parents=True)
    assert backups.run_once(ctx, target, 2) is None
    status = backups.status(ctx.db)
    made = datetime.fromisoformat(status["last_ok_at"])
    assert (status["missing"], status["error"]) == (False, None)
    assert backups.status(ctx.db, made + timedelta(minutes=59))["stale"] is False
    assert backups.status(ctx.db, made + timedelta(minutes=61))["stale"] is True
    # A clock set back: the copy just made sorts first, and is still not the one to go.
    later = [f"shelter-{stamp}.db" for stamp in ("20990101T000000Z", "20990102T000000Z")]
    for name in later:
        (target / name).write_bytes(b"")
    assert backups.rotate(target, 2, status["last_file"], [*later, status["last_file"]]
                          ) == ["shelter-20990101T000000Z.db"]
    assert (target / status["last_file"]).exists()
    # Started again without --backup-dir: nothing about backups is shown any more.
    backups.configure(ctx, None)
    assert backups.status(ctx.db) is None


def test_a_node_without_a_backup_dir_shows_nothing_about_backups(app, tmp_path):
    from shelter.domain import accounts
    ctx = NodeContext(app.config["DATA_DIR"])
    token = accounts.create_token(ctx.store, "volunteer", "")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    page = client.get("/desk?lang=ja", headers=headers).get_data(as_text=True)
    assert backup_line(page) is None and "data-backup" not in page
    assert client.get("/api/v1/sync-status", headers=headers).get_json()["backup"] is None
    # Asked for, with the last good copy two hours old: the line warns.
    stick = tmp_path / "stick"
    stick.mkdir()
    backups.configure(ctx, stick)
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    meta.commit(ctx.store, {"backup_last_ok_at": two_hours_ago})
    classes, text = backup_line(client.get("/desk?lang=ja", headers=headers
                                           ).get_data(as_text=True))
    assert "backup-warn" in classes
    assert text.endswith(" · 1時間以上、正常なバックアップがありません：責任者に伝えてください")
